import type { FailureKind } from './errors.js';
import type { Endpoint } from './endpoint.js';

/**
 * How an attempt ended, as the per-endpoint observers see it: `success`
 * (any answer not counted as a failure), a {@link FailureKind}, or
 * `cancelled` (the caller gave up, the client was destroyed, or a timeout
 * fired long after it was due because this process stalled: the endpoint is
 * not blamed).
 */
export type AttemptOutcome = 'success' | FailureKind | 'cancelled';

/**
 * A per-endpoint piece that follows attempts (grpc-js `onCallStarted` /
 * `onCallEnded`): in-flight count and latency, breaker, outlier detection.
 * @internal
 */
export interface AttemptObserver {
  started(nowMs: number): void;
  ended(outcome: AttemptOutcome, elapsedMs: number, nowMs: number, startedAt: number): void;
}

/**
 * The result of a pick: the endpoint for one attempt, and `done(outcome)`
 * to call exactly once when the attempt ends (later calls are ignored).
 * Every observer of the endpoint hears the start at pick time and the end at
 * `done`.
 * @internal
 */
export class PickHandle {
  readonly endpoint: Endpoint;
  readonly startedAt: number;
  #open = true;

  /** @param nowMs - when the attempt starts (`performance.now()`). */
  constructor(endpoint: Endpoint, nowMs: number) {
    this.endpoint = endpoint;
    this.startedAt = nowMs;
    for (const o of endpoint.observers) o.started(nowMs);
  }

  /** Ends the attempt; the first call counts. */
  done(outcome: AttemptOutcome): void {
    if (!this.#open) return;
    this.#open = false;
    const now = performance.now();
    const elapsed = now - this.startedAt;
    for (const o of this.endpoint.observers) o.ended(outcome, elapsed, now, this.startedAt);
  }
}
