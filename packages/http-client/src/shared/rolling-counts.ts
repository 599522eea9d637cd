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
  /** The closed buckets' counts (the current bucket's slot holds 0 until it closes). */
  readonly #a: Float64Array;
  readonly #b: Float64Array;
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
    this.#a = new Float64Array(buckets);
    this.#b = new Float64Array(buckets);
  }

  /** Moves to the bucket of `nowMs`: closes the current one and drops those that left the window. */
  #advance(nowMs: number): void {
    const epoch = Math.floor(nowMs / this.#bucketMs);
    if (epoch === this.#epoch) return;
    const n = this.#a.length;
    const last = this.#epoch;
    if (last >= 0) {
      const j = last % n;
      this.#a[j] = this.#curA;
      this.#b[j] = this.#curB;
      this.#closedA += this.#curA;
      this.#closedB += this.#curB;
    }
    // Buckets last+1 … epoch begin; the slots they reuse held buckets that are now out of the window.
    const steps = last < 0 ? n : Math.min(n, epoch - last);
    for (let i = 1; i <= steps; i++) {
      const j = (((last + i) % n) + n) % n;
      this.#closedA -= this.#a[j] ?? 0;
      this.#closedB -= this.#b[j] ?? 0;
      this.#a[j] = 0;
      this.#b[j] = 0;
    }
    this.#curA = 0;
    this.#curB = 0;
    this.#epoch = epoch;
  }

  /** Adds `a` and `b` to the current bucket. `nowMs` is any monotonic clock in ms. */
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
