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

  /** Counts one attempt and decides whether it may go out; false: reject it locally. */
  admit(nowMs: number): boolean {
    const p = this.probability(nowMs);
    this.#counts.add(nowMs, 1, 0);
    if (p > 0 && this.#random() < p) {
      this.rejected++;
      return false;
    }
    return true;
  }

  /** An admitted attempt was not sent after all (no endpoint could take it): uncounted, so local refusals do not read as the service's. */
  notSent(nowMs: number): void {
    this.#counts.add(nowMs, -1, 0);
  }

  /** An admitted attempt was accepted by the service (answered, and not with an overload answer). */
  accepted(nowMs: number): void {
    this.#counts.add(nowMs, 0, 1);
  }

  stats(nowMs: number): AdmissionStats {
    return { requests: this.#counts.sumA(nowMs), accepts: this.#counts.sumB(nowMs), rejectProbability: this.probability(nowMs), rejected: this.rejected };
  }
}
