/**
 * An endpoint's adaptive concurrency limit: how many attempts it may have in
 * flight, learnt from its latency. Two algorithms, both after Netflix's
 * concurrency-limits (Apache-2.0; `VegasLimit.java` and `Gradient2Limit.java`,
 * re-expressed here, fed one window of samples at a time as their `WindowedLimit` does):
 * - **vegas** (default): TCP Vegas. The no-load RTT is the least sample over
 *   the last one to two spans of `30 × limit × U(0.5, 1)` windows (BBR's
 *   min-RTT filter), so it follows a backend that got slower for good. Netflix
 *   instead takes one window's RTT as the new no-load RTT at that interval;
 *   under load it is a queued one, and a test saw a 1-slot backend's limit
 *   climb from ~5 to 22 after such a probe. The queue at the endpoint is
 *   estimated as `limit × (1 − rttNoLoad / rtt)`; below `threshold` the limit
 *   grows by `beta`, below `alpha` by one step, above `beta` it shrinks by the
 *   excess over `beta` (Netflix: by one step), and any drop (timeout, overload
 *   answer) shrinks it by one step. alpha = 3·l,
 *   beta = 6·l, threshold = step = l, with l = max(1, ⌊log10 limit⌋).
 * - **gradient2**: the limit follows `limit × clamp(longRtt / shortRtt, 0.5, 1)
 *   + queueSize` (queueSize 4), smoothed by 0.2; the long RTT is an EMA over
 *   600 windows (cut by 10 % when it is over twice the short one, so it
 *   recovers after a long overload).
 * Samples are taken in windows, as Netflix's `WindowedLimit` does: a window
 * closes once it holds 10 samples and lasts at least twice the no-load RTT
 * (10 ms – 1 s; Netflix: 1 s, Envoy: 100 ms updates); the algorithm sees its
 * mean RTT, its largest in-flight count and whether anything dropped. Per
 * sample, one fast answer after a lull read as "no queue" and grew the limit
 * by 6 (a 1-slot test backend's limit reached 13–24 instead of ~5).
 * Both leave the limit alone while fewer than half of it is in use (an idle
 * client learns nothing about capacity) and keep it within `[minLimit, maxLimit]`.
 * Envoy's `adaptive_concurrency` gradient controller is the same idea as
 * gradient2 with a periodic min-RTT re-measurement at a pinned low limit;
 * Vegas's probe of the no-load RTT plays that part here.
 * @internal
 * @module
 */

import type { ResolvedConcurrencyLimit } from '../config/options.js';
import type { ConcurrencyLimitAlgorithm, ConcurrencyLimitStats } from '../shared/limit-types.js';

/** Netflix's `Log10RootFunction`: ⌊log10 limit⌋, at least 1. */
function log10Root(limit: number): number {
  return Math.max(1, Math.floor(Math.log10(Math.max(1, limit))));
}

/** Windows over which the long RTT averages (Netflix's Gradient2 `longWindow`). */
const LONG_WINDOW = 600;
/** Windows averaged plainly before the EMA starts (Netflix's `ExpAvgMeasurement` warm-up). */
const LONG_WARMUP = 10;
const LONG_FACTOR = 2 / (LONG_WINDOW + 1);
/** Gradient2: headroom added to the limit each window (Netflix's default `queueSize`). */
const GRADIENT_QUEUE = 4;
/** Gradient2: how much of the new estimate each window moves the limit (Netflix's default `smoothing`). */
const GRADIENT_SMOOTHING = 0.2;
/** Samples a window holds at least (Netflix's `WindowedLimit` `windowSize`). */
const WINDOW_SAMPLES = 10;
const WINDOW_MIN_MS = 10;
const WINDOW_MAX_MS = 1_000;
/** Vegas: windows between no-load RTT probes, per unit of limit (Netflix's `probeMultiplier`). */
const PROBE_MULTIPLIER = 30;

/**
 * One endpoint's concurrency limit. `sample()` is called once per ended
 * attempt (a few arithmetic operations, no allocation); `limit` is read at
 * every pick.
 * @internal
 */
export class ConcurrencyLimit {
  readonly algorithm: ConcurrencyLimitAlgorithm;
  /** The whole limit picks compare `inFlight` with. */
  limit: number;
  rttNoLoadMs = 0;
  shortRttMs = 0;
  longRttMs = 0;
  changes = 0;
  drops = 0;
  atLimit = 0;
  readonly #min: number;
  readonly #max: number;
  readonly #random: () => number;
  /** The estimate, a real number (the limit is its floor). */
  #estimate: number;
  #longCount = 0;
  #probeCount = 0;
  #probeJitter: number;
  /** Least RTT of the current window of samples, and of the window before it. */
  #windowMin = Infinity;
  #previousMin = Infinity;
  /** The sample window in progress: its start, samples, RTT sum, most in flight, any drop. */
  #windowStart = -1;
  #count = 0;
  #rttSum = 0;
  #maxInFlight = 0;
  #dropped = false;

  constructor(settings: ResolvedConcurrencyLimit, random: () => number = Math.random) {
    this.algorithm = settings.algorithm;
    this.#min = settings.minLimit;
    this.#max = settings.maxLimit;
    this.#random = random;
    this.#estimate = Math.min(this.#max, Math.max(this.#min, settings.initialLimit));
    this.limit = Math.floor(this.#estimate);
    this.#probeJitter = 0.5 + 0.5 * random();
  }

  /**
   * One attempt ended at `nowMs` after `rttMs` with `inFlight` attempts
   * outstanding (itself included); `dropped` when it timed out or the endpoint
   * answered with a failure status. Returns true when the whole limit changed
   * (only ever when a window closes).
   */
  sample(rttMs: number, inFlight: number, dropped: boolean, nowMs: number): boolean {
    if (dropped) this.drops++;
    if (this.#windowStart < 0) this.#windowStart = nowMs;
    this.#count++;
    const rtt = Math.max(rttMs, 1e-3);
    this.#rttSum += rtt;
    // The no-load RTT is the least single sample (a window's mean is already queued when the limit starts too high).
    if (rtt < this.#windowMin) this.#windowMin = rtt;
    if (this.rttNoLoadMs === 0 || rtt < this.rttNoLoadMs) this.rttNoLoadMs = rtt;
    if (inFlight > this.#maxInFlight) this.#maxInFlight = inFlight;
    if (dropped) this.#dropped = true;
    const spanMs = Math.min(WINDOW_MAX_MS, Math.max(WINDOW_MIN_MS, 2 * this.rttNoLoadMs));
    if (this.#count < WINDOW_SAMPLES || nowMs - this.#windowStart < spanMs) return false;
    const changed = this.#update(this.#rttSum / this.#count, this.#maxInFlight, this.#dropped);
    this.#windowStart = nowMs;
    this.#count = 0;
    this.#rttSum = 0;
    this.#maxInFlight = 0;
    this.#dropped = false;
    return changed;
  }

  /** One window's aggregate: mean RTT, most in flight, any drop. */
  #update(rtt: number, inFlight: number, dropped: boolean): boolean {
    this.shortRttMs = rtt;
    if (this.#longCount < LONG_WARMUP) {
      this.#longCount++;
      this.longRttMs += (rtt - this.longRttMs) / this.#longCount;
    } else {
      this.longRttMs += (rtt - this.longRttMs) * LONG_FACTOR;
    }
    const next = this.algorithm === 'vegas' ? this.#vegas(rtt, inFlight, dropped) : this.#gradient2(rtt, inFlight);
    if (next === undefined) return false;
    this.#estimate = Math.min(this.#max, Math.max(this.#min, next));
    const whole = Math.floor(this.#estimate);
    if (whole === this.limit) return false;
    this.limit = whole;
    this.changes++;
    return true;
  }

  /** The next estimate, or undefined to keep it (VegasLimit `_update`/`updateEstimatedLimit`). */
  #vegas(rtt: number, inFlight: number, dropped: boolean): number | undefined {
    const estimate = this.#estimate;
    if (++this.#probeCount >= this.#probeJitter * PROBE_MULTIPLIER * estimate) {
      // A window ends: the no-load RTT forgets what is older than the window before, so it can rise.
      this.#probeCount = 0;
      this.#probeJitter = 0.5 + 0.5 * this.#random();
      this.#previousMin = this.#windowMin;
      this.#windowMin = Infinity;
      this.rttNoLoadMs = Math.min(this.#previousMin, this.#windowMin);
      return undefined;
    }
    const l = log10Root(estimate);
    if (dropped) return estimate - l;
    if (inFlight * 2 < estimate) return undefined; // app-limited: no evidence about capacity
    const queue = Math.ceil(estimate * (1 - this.rttNoLoadMs / rtt));
    if (queue <= l) return estimate + 6 * l;
    if (queue < 3 * l) return estimate + l;
    // Netflix steps down by l; a queue far above beta is cut at once to beta (one step per window took
    // 1–2 s to bring a 1-slot backend from 20 to its ~6, with every request meanwhile queued behind up to 20).
    if (queue > 6 * l) return estimate - Math.max(l, queue - 6 * l);
    return undefined;
  }

  /** The next estimate, or undefined to keep it (Gradient2Limit `_update`). */
  #gradient2(rtt: number, inFlight: number): number | undefined {
    if (this.longRttMs / rtt > 2) this.longRttMs *= 0.9;
    const estimate = this.#estimate;
    if (inFlight < estimate / 2) return undefined;
    const gradient = Math.max(0.5, Math.min(1, this.longRttMs / rtt));
    const next = estimate * gradient + GRADIENT_QUEUE;
    return estimate * (1 - GRADIENT_SMOOTHING) + next * GRADIENT_SMOOTHING;
  }

  /** A copy for `stats()` and events. */
  stats(): ConcurrencyLimitStats {
    return {
      algorithm: this.algorithm,
      limit: this.limit,
      rttNoLoadMs: this.rttNoLoadMs,
      shortRttMs: this.shortRttMs,
      longRttMs: this.longRttMs,
      changes: this.changes,
      drops: this.drops,
      atLimit: this.atLimit,
    };
  }
}
