/**
 * The shape of a pick explanation, apart from the code that builds one
 * (pick-explanation.ts), so errors and request types can name it without
 * importing the endpoint set.
 * @module
 */
import type { PickSignal } from '@proxyless/core';
import type { EndpointLoadReport } from './load-report-types.js';

/** Why an endpoint could not be picked for an attempt. */
export type ExclusionReason = 'breakerOpen' | 'ejected' | 'draining' | 'alreadyTried' | 'hedgeInFlight';

/** One candidate a choice-of-N strategy compared. */
export interface PickCandidate {
  /** `address:port`. */
  readonly endpoint: string;
  /** The score the strategy compared (lower wins; peak EWMA: `ewmaMs × (inFlight + 1)`), or for `loadWeightedRoundRobin()` the endpoint's weight (higher gets more turns); undefined for strategies without one. */
  readonly score: number | undefined;
  readonly inFlight: number;
  /** Latency estimate as the balancer saw it, ms. */
  readonly ewmaMs: number;
  /** The candidate's health state: `ready`, `probing` (its trial), or `ejected` (a panic pick). */
  readonly health: 'ready' | 'open' | 'probing' | 'ejected';
  /** The candidate's last ORCA load report, if it sends one (`usable` says whether a load-aware balancer could read it). */
  readonly loadReport: EndpointLoadReport | undefined;
}

/** Why one attempt went where it went. */
export interface PickExplanation {
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** Set on a hedge: a copy sent while earlier copies were in flight (their endpoints are excluded as `hedgeInFlight`). */
  readonly hedge?: true;
  /** The balancer's name, e.g. `peak-ewma`. */
  readonly strategy: string;
  /** `address:port` of the endpoint picked. */
  readonly chosen: string;
  /**
   * The signal that decided the pick, for strategies that name one (core's
   * `PickSignal`): `latency` or `in-flight` for peak EWMA;
   * `reported-utilization` or `reported-rif` for `peakEwma({ reportedLoad: true })`;
   * `reported-weight`, `mean-weight` or `rotation` for `loadWeightedRoundRobin()`;
   * `prequal()` says `probe-latency` (hot–cold: the latency of a cold
   * endpoint), `probe-in-flight` (every probed endpoint hot: the fewest
   * requests in flight) or `in-flight` (no usable probe: least-request on this
   * client's in-flight counts). Absent for strategies that do not say.
   */
  readonly signal?: PickSignal;
  /** What the strategy compared (two for P2C); just the chosen one for strategies that do not compare. */
  readonly candidates: readonly PickCandidate[];
  /** Endpoints that were not eligible, and why. */
  readonly excluded: readonly { readonly endpoint: string; readonly reason: ExclusionReason }[];
  /** Whether the set was in panic mode (balancing over every endpoint whose breaker is not open). */
  readonly panic: boolean;
  /** Whether discovery was stale: the set picked from is the last known one, maybe out of date. */
  readonly discoveryStale: boolean;
}
