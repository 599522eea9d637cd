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
  readonly #a: Float64Array;
  readonly #b: Float64Array;
  #sumA = 0;
  #sumB = 0;
  /** The bucket number (`floor(now / bucketMs)`) last advanced to; -1 before the first use. */
  #epoch = -1;

  /** @param windowMs - the window's length; @param buckets - how many buckets it holds (a count leaves the window `buckets` bucket-lengths after its own bucket began). */
  constructor(windowMs: number, buckets: number) {
    this.#bucketMs = windowMs / buckets;
    this.#a = new Float64Array(buckets);
    this.#b = new Float64Array(buckets);
  }

  /** Clears the buckets that left the window since the last use; returns the current bucket's slot. */
  #advance(nowMs: number): number {
    const n = this.#a.length;
    const epoch = Math.floor(nowMs / this.#bucketMs);
    if (epoch !== this.#epoch) {
      const steps = this.#epoch < 0 ? n : Math.min(n, epoch - this.#epoch);
      for (let i = 1; i <= steps; i++) {
        const j = (((this.#epoch + i) % n) + n) % n;
        this.#sumA -= this.#a[j] ?? 0;
        this.#sumB -= this.#b[j] ?? 0;
        this.#a[j] = 0;
        this.#b[j] = 0;
      }
      this.#epoch = epoch;
    }
    return ((epoch % n) + n) % n;
  }

  /** Adds `a` and `b` to the current bucket. `nowMs` is any monotonic clock in ms. */
  add(nowMs: number, a: number, b: number): void {
    const i = this.#advance(nowMs);
    this.#a[i] = (this.#a[i] ?? 0) + a;
    this.#b[i] = (this.#b[i] ?? 0) + b;
    this.#sumA += a;
    this.#sumB += b;
  }

  /** The first count over the window. */
  sumA(nowMs: number): number {
    this.#advance(nowMs);
    return this.#sumA;
  }

  /** The second count over the window. */
  sumB(nowMs: number): number {
    this.#advance(nowMs);
    return this.#sumB;
  }
}
