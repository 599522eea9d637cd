import type { AttemptOutcome } from '../shared/attempt-outcome.js';
import type { Endpoint } from './endpoint.js';
import type { HealthState, HealthTransition } from './health.js';

/**
 * The result of a pick: the endpoint for one attempt, and `done(outcome)`
 * to call exactly once when the attempt ends (later calls are ignored).
 * The endpoint's load hears the start at pick time and the end at `done`;
 * its health hears the outcome, as evidence about the state the attempt
 * was picked in.
 * @internal
 */
export class PickHandle {
  readonly kind = 'handle';
  readonly endpoint: Endpoint;
  readonly startedAt: number;
  /** The health state the attempt was picked in. */
  readonly #startedIn: HealthState;
  #open = true;

  /** @param nowMs - when the attempt starts (the set's clock). */
  constructor(endpoint: Endpoint, nowMs: number) {
    this.endpoint = endpoint;
    this.startedAt = nowMs;
    this.#startedIn = endpoint.health.state;
    endpoint.load.started(nowMs);
  }

  /**
   * Ends the attempt; the first call counts. Returns the health transition
   * the outcome caused, if any (the set has reported it to its listeners
   * too): the caller's narrow path to put it on the attempt's span.
   * @param loadReport - the answer's `endpoint-load-metrics` value, if any (fed to the endpoint's reported load).
   */
  done(outcome: AttemptOutcome, loadReport?: string | readonly string[]): HealthTransition | undefined {
    if (!this.#open) return undefined;
    this.#open = false;
    const ep = this.endpoint;
    const now = ep.owner.clockMs();
    const inFlight = ep.load.inFlight;
    ep.load.ended(outcome, now - this.startedAt, now, this.startedAt);
    const limit = ep.limit;
    // A cancelled attempt says nothing about the endpoint; a timeout, a failure status or a shed is a drop (Netflix's onDropped).
    if (limit !== undefined && outcome !== 'cancelled' && limit.sample(now - this.startedAt, inFlight, outcome === 'timeout' || outcome === 'status' || outcome === 'shed', now)) ep.owner.limitChanged(ep);
    if (loadReport !== undefined) {
      const report = ep.reported.received(loadReport, now);
      if (report !== undefined) ep.owner.loadReported(ep, report);
    }
    return ep.owner.attemptEnded(ep, outcome, this.#startedIn, now);
  }
}
