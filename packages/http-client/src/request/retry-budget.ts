import { clientDefaults } from '../config/defaults.js';
import type { RetryBudgetOptions } from '../config/options.js';
import { RollingCounts } from '../shared/rolling-counts.js';

const BUCKETS = 10;

/**
 * A retry budget in the style of Finagle and Linkerd: over a sliding window,
 * `retries ≤ ratio × requests + minRetriesPerSecond × windowSeconds`.
 *
 * Requests are counted in ten time buckets; `deposit()` is a few arithmetic
 * operations on the hot path (no allocation, no timer; the buckets advance lazily from the clock).
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #floor: number;
  /** Requests (first attempts) and retries over the window. */
  readonly #counts: RollingCounts;

  /**
   * @param options - ratio (default 0.2), windowMs (default 10 000), minRetriesPerSecond (default 10).
   */
  constructor(options: RetryBudgetOptions = {}) {
    const d = clientDefaults.retry.budget;
    this.#ratio = options.ratio ?? d.ratio;
    const windowMs = options.windowMs ?? d.windowMs;
    this.#floor = (options.minRetriesPerSecond ?? d.minRetriesPerSecond) * (windowMs / 1000);
    this.#counts = new RollingCounts(windowMs, BUCKETS);
  }

  /** Counts one request (first attempts only). `nowMs` is any monotonic clock in ms. */
  deposit(nowMs: number): void {
    this.#counts.add(nowMs, 1, 0);
  }

  /** Takes one retry from the budget if it allows; false when exhausted. */
  tryWithdraw(nowMs: number): boolean {
    if (this.#counts.sumB(nowMs) + 1 > this.#ratio * this.#counts.sumA(nowMs) + this.#floor) return false;
    this.#counts.add(nowMs, 0, 1);
    return true;
  }

  /** Retries still allowed in the current window. */
  available(nowMs: number): number {
    return Math.max(0, Math.floor(this.#ratio * this.#counts.sumA(nowMs) + this.#floor - this.#counts.sumB(nowMs)));
  }
}
