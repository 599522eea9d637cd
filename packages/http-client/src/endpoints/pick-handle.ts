import type { AttemptOutcome } from '../shared/attempt-outcome.js';
import type { Endpoint } from './endpoint.js';


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
