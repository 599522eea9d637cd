import type { RetryBudgetOptions } from '../config/options.js';

const BUCKETS = 10;

/**
 * A retry budget in the style of Finagle and Linkerd: over a sliding window,
 * `retries ≤ ratio × requests + minRetriesPerSecond × windowSeconds`.
 *
 * Requests are counted in ten time buckets; `deposit()` is a few arithmetic
 * operations on the hot path (no allocation, no timer).
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #floor: number;
  readonly #bucketMs: number;
  readonly #requests = new Float64Array(BUCKETS);
  readonly #retries = new Float64Array(BUCKETS);
  #requestSum = 0;
  #retrySum = 0;
  #epoch = -1;

  /**
   * @param options - ratio (default 0.2), windowMs (default 10 000), minRetriesPerSecond (default 10).
   */
  constructor(options: RetryBudgetOptions = {}) {
    this.#ratio = options.ratio ?? 0.2;
    const windowMs = options.windowMs ?? 10_000;
    this.#floor = (options.minRetriesPerSecond ?? 10) * (windowMs / 1000);
    this.#bucketMs = windowMs / BUCKETS;
  }

  #advance(nowMs: number): number {
    const epoch = Math.floor(nowMs / this.#bucketMs);
    if (epoch !== this.#epoch) {
      const steps = this.#epoch < 0 ? BUCKETS : Math.min(BUCKETS, epoch - this.#epoch);
      for (let i = 1; i <= steps; i++) {
        const idx = (this.#epoch + i) % BUCKETS;
        const j = idx < 0 ? idx + BUCKETS : idx;
        this.#requestSum -= this.#requests[j] ?? 0;
        this.#retrySum -= this.#retries[j] ?? 0;
        this.#requests[j] = 0;
        this.#retries[j] = 0;
      }
      this.#epoch = epoch;
    }
    return epoch % BUCKETS;
  }

  /** Counts one request (first attempts only). `nowMs` is any monotonic clock in ms. */
  deposit(nowMs: number): void {
    const i = this.#advance(nowMs);
    this.#requests[i] = (this.#requests[i] ?? 0) + 1;
    this.#requestSum++;
  }

  /** Takes one retry from the budget if it allows; false when exhausted. */
  tryWithdraw(nowMs: number): boolean {
    const i = this.#advance(nowMs);
    if (this.#retrySum + 1 > this.#ratio * this.#requestSum + this.#floor) return false;
    this.#retries[i] = (this.#retries[i] ?? 0) + 1;
    this.#retrySum++;
    return true;
  }

  /** Retries still allowed in the current window. */
  available(nowMs: number): number {
    this.#advance(nowMs);
    return Math.max(0, Math.floor(this.#ratio * this.#requestSum + this.#floor - this.#retrySum));
  }
}
