/**
 * The client's recent answer latencies, for a hedge delay set as a
 * percentile (tower's `hedge` keeps a rotating histogram for the same
 * purpose). Created on the first hedged call that asks for a percentile:
 * a client that never hedges never records.
 * @internal
 * @module
 */

/** Answers kept: the percentile is over the last this many. */
const SIZE = 1000;
/** New samples between recomputations of the percentile (a sort of ≤ 1 000 numbers, ~20 µs: ~0.3 µs per answer). */
const RECOMPUTE_EVERY = 64;

/** @internal */
export class LatencyWindow {
  readonly #samples = new Float64Array(SIZE);
  readonly #scratch = new Float64Array(SIZE);
  #next = 0;
  #count = 0;
  #fresh = 0;
  #percentile = NaN;
  #value = 0;

  /** Samples held (at most 1 000). */
  get count(): number {
    return this.#count;
  }

  /** Records one answer's time to headers, ms. */
  record(ms: number): void {
    this.#samples[this.#next] = ms;
    this.#next = this.#next === SIZE - 1 ? 0 : this.#next + 1;
    if (this.#count < SIZE) this.#count++;
    this.#fresh++;
  }

  /** The `p`-th percentile (nearest rank) of the samples held, or undefined before `minSamples` were seen. */
  percentile(p: number, minSamples: number): number | undefined {
    const n = this.#count;
    if (n < minSamples || n === 0) return undefined;
    if (p !== this.#percentile || this.#fresh >= RECOMPUTE_EVERY) {
      const sorted = this.#scratch.subarray(0, n);
      sorted.set(this.#samples.subarray(0, n));
      sorted.sort();
      this.#value = sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))] ?? 0;
      this.#percentile = p;
      this.#fresh = 0;
    }
    return this.#value;
  }
}
