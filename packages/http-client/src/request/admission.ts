/**
 * Client-side admission control for one service: the Google SRE book's
 * adaptive throttling (ch. 21, "Handling Overload"), with Envoy's
 * `admission_control` filter's bounds.
 * @internal
 * @module
 */
import type { ResolvedAdmissionControl as AdmissionSettings } from '../config/options.js';
import type { AdmissionStats } from '../shared/limit-types.js';
import { RollingCounts } from '../shared/rolling-counts.js';

const BUCKETS = 10;

/**
 * Adaptive throttling: over a sliding window, each attempt is rejected
 * locally with probability `max(0, (requests − K·accepts) / (requests + 1))`,
 * where `requests` counts every attempt the client made (those rejected here
 * too) and `accepts` those the service accepted. K = 2 lets the client send
 * twice what the service accepts, so the service still sees traffic to show
 * that it recovered. From Envoy's `admission_control`: no rejection before
 * `minRequests` in the window (its `rps_threshold`), and never above
 * `maxRejectProbability` (its `max_rejection_probability`, default 80 %).
 * `K = 1 / sr_threshold` in Envoy's terms; its `aggression` exponent is 1 here.
 * Counting is two adds into {@link RollingCounts}; `Math.random()` is drawn
 * only while the probability is above 0.
 * @internal
 */
export class AdmissionControl {
  readonly #settings: AdmissionSettings;
  /** A = attempts, B = accepts. */
  readonly #counts: RollingCounts;
  readonly #random: () => number;
  rejected = 0;

  constructor(settings: AdmissionSettings, random: () => number = Math.random) {
    this.#settings = settings;
    this.#counts = new RollingCounts(settings.windowMs, BUCKETS);
    this.#random = random;
  }

  /** The SRE probability now, within Envoy's bounds. */
  probability(nowMs: number): number {
    const s = this.#settings;
    const requests = this.#counts.sumA(nowMs);
    if (requests < s.minRequests) return 0;
    const p = (requests - s.k * this.#counts.sumB(nowMs)) / (requests + 1);
    return p <= 0 ? 0 : Math.min(p, s.maxRejectProbability);
  }

  /**
   * Decides whether an attempt may go out; false: reject it locally, and that
   * rejection is counted at once (a request the service did not accept). An
   * admitted attempt is counted when it completes ({@link completed}), as
   * Envoy counts both at completion: counted when sent, every attempt in
   * flight would read as not accepted, and a burst of concurrent first
   * requests to a healthy service was rejected (615 of 75,000 at 64 in flight).
   */
  admit(nowMs: number): boolean {
    const p = this.probability(nowMs);
    if (p > 0 && this.#random() < p) {
      this.rejected++;
      this.#counts.add(nowMs, 1, 0);
      return false;
    }
    return true;
  }

  /** An admitted attempt completed: `accepted` when the service took it (answered, and not with an overload answer or a timeout). */
  completed(nowMs: number, accepted: boolean): void {
    this.#counts.add(nowMs, 1, accepted ? 1 : 0);
  }

  stats(nowMs: number): AdmissionStats {
    return { requests: this.#counts.sumA(nowMs), accepts: this.#counts.sumB(nowMs), rejectProbability: this.probability(nowMs), rejected: this.rejected };
  }
}
