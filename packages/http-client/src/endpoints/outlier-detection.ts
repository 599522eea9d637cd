import type { OutlierDetectionOptions } from '../config/options.js';
import type { AttemptObserver, AttemptOutcome } from '../shared/attempt-outcome.js';

/**
 * One endpoint's passive outlier-detection state (Envoy's consecutive-failure
 * detector): counts consecutive failures; the n-th ejection in a row lasts
 * `n × baseEjectionTimeMs` (capped), and the multiplier decays by one for
 * every `maxEjectionTimeMs` spent healthy.
 * @internal
 */
export class OutlierState implements AttemptObserver {
  readonly #options: Required<OutlierDetectionOptions> | false;
  readonly #onThreshold: (() => void) | undefined;
  consecutiveFailures = 0;
  ejected = false;
  /** Consecutive ejections (the duration multiplier). */
  ejections = 0;
  /** When the current ejection ends (epoch ms), or when the last one ended. */
  ejectedUntil = 0;
  timer: NodeJS.Timeout | undefined;

  /** @param onThreshold - called when consecutive failures reach the threshold (the set decides whether to eject). */
  constructor(options: Required<OutlierDetectionOptions> | false = false, onThreshold?: () => void) {
    this.#options = options;
    this.#onThreshold = onThreshold;
  }

  started(): void {
    // Only outcomes count.
  }

  ended(outcome: AttemptOutcome): void {
    if (outcome === 'cancelled' || this.#options === false) return;
    if (outcome === 'success') this.success();
    else if (this.failure(this.#options)) this.#onThreshold?.();
  }

  /** Records a success: resets the consecutive-failure count. */
  success(): void {
    this.consecutiveFailures = 0;
  }

  /** Records a failure; true when the threshold is reached (and the endpoint not ejected yet). */
  failure(options: Required<OutlierDetectionOptions>): boolean {
    this.consecutiveFailures++;
    return !this.ejected && this.consecutiveFailures >= options.consecutiveFailures;
  }

  /** Marks the endpoint ejected; returns the ejection duration in ms. */
  eject(options: Required<OutlierDetectionOptions>, nowMs: number): number {
    if (this.ejections > 0 && this.ejectedUntil > 0) {
      const healthyFor = Math.max(0, nowMs - this.ejectedUntil);
      this.ejections = Math.max(0, this.ejections - Math.floor(healthyFor / options.maxEjectionTimeMs));
    }
    this.ejections++;
    const duration = Math.min(options.maxEjectionTimeMs, options.baseEjectionTimeMs * this.ejections);
    this.ejected = true;
    this.ejectedUntil = nowMs + duration;
    this.consecutiveFailures = 0;
    return duration;
  }

  /** Returns the endpoint to service. */
  restore(nowMs: number): void {
    this.ejected = false;
    this.ejectedUntil = nowMs;
    this.consecutiveFailures = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Clears timers. */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** May one more of `total` endpoints be ejected when `ejected` already are? At least one always may. @internal */
export function mayEject(ejected: number, total: number, maxEjectionPercent: number): boolean {
  if (total <= 0 || maxEjectionPercent <= 0) return false;
  if (ejected === 0) return true;
  return ((ejected + 1) * 100) / total <= maxEjectionPercent;
}

/** Is the available share below the panic threshold? @internal */
export function isPanic(available: number, total: number, panicThresholdPercent: number): boolean {
  return total > 0 && panicThresholdPercent > 0 && (available * 100) / total < panicThresholdPercent;
}
