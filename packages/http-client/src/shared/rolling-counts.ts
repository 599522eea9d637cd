/**
 * Two counts over a sliding window of time buckets, advanced lazily from the
 * clock when they are read or written: no rotation timer, no tick over every
 * owner. The retry budget (requests, retries) and an endpoint's failure-rate
 * window (calls, failures) both count this way.
 * @internal
 * @module
 */

/** @internal */
export class RollingCounts {
  readonly #bucketMs: number;
  /** The closed buckets' counts, the first count's at `[0, n)` and the second's at `[n, 2n)` (one array per owner); the current bucket's slot holds 0 until it closes. */
  readonly #slots: Float64Array;
  readonly #n: number;
  /** The current bucket's counts: plain fields, so a write touches this object only (not two arrays per owner). */
  #curA = 0;
  #curB = 0;
  /** Sums of the closed buckets still in the window. */
  #closedA = 0;
  #closedB = 0;
  /** The current bucket's number (`floor(now / bucketMs)`); -1 before the first use. */
  #epoch = -1;

  /** @param windowMs - the window's length; @param buckets - how many buckets it holds (a count leaves the window `buckets` bucket-lengths after its own bucket began). */
  constructor(windowMs: number, buckets: number) {
    this.#bucketMs = windowMs / buckets;
    this.#n = buckets;
    this.#slots = new Float64Array(2 * buckets);
  }

  /** Moves to the bucket of `nowMs`: closes the current one and drops those that left the window. */
  #advance(nowMs: number): void {
    const epoch = Math.floor(nowMs / this.#bucketMs);
    const last = this.#epoch;
    if (epoch === last) return;
    this.#epoch = epoch;
    if (last < 0) return; // first use: every slot is still 0
    const n = this.#n;
    const slots = this.#slots;
    const j = last % n;
    slots[j] = this.#curA;
    slots[n + j] = this.#curB;
    this.#closedA += this.#curA;
    this.#closedB += this.#curB;
    this.#curA = 0;
    this.#curB = 0;
    // Buckets last+1 … epoch begin; the slots they reuse held buckets that are now out of the window.
    const steps = Math.min(n, epoch - last);
    for (let i = 1; i <= steps; i++) {
      const k = (last + i) % n;
      this.#closedA -= slots[k] ?? 0;
      this.#closedB -= slots[n + k] ?? 0;
      slots[k] = 0;
      slots[n + k] = 0;
    }
  }

  /** Adds `a` and `b` to the current bucket. `nowMs` is any monotonic clock in ms, never negative. */
  add(nowMs: number, a: number, b: number): void {
    this.#advance(nowMs);
    this.#curA += a;
    this.#curB += b;
  }

  /** The first count over the window. */
  sumA(nowMs: number): number {
    this.#advance(nowMs);
    return this.#closedA + this.#curA;
  }

  /** The second count over the window. */
  sumB(nowMs: number): number {
    this.#advance(nowMs);
    return this.#closedB + this.#curB;
  }
}
