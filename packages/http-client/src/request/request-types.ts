import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { EndpointInfo } from '../shared/endpoint-info.js';
import type { BreakerState, EndpointHealthState } from '../endpoints/health.js';
import type { PickExplanation } from '../shared/pick-explanation-types.js';
import type { EndpointLoadReport } from '../shared/load-report-types.js';
import type { AdmissionStats, ConcurrencyLimitStats } from '../shared/limit-types.js';

export type { RequestBody, RequestOptions, ProxylessRequestInit } from '../config/call-options.js';

/** A response; `body` is undici's readable body (consume or dump it). */
export interface ClientResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** undici body: `.text()`, `.json()`, `.arrayBuffer()`, `.dump()`, or a Readable. */
  body: Dispatcher.ResponseData['body'];
  /** Endpoint that answered. */
  endpoint: EndpointInfo;
  /** Attempts made, including this one. */
  attempts: number;
  /** With `explain: true`: one explanation per attempt. */
  picks?: readonly PickExplanation[];
}

/** A buffered response (from {@link ProxylessClient.text} / {@link ProxylessClient.json}). */
export interface BufferedResponse<T> {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: T;
  endpoint: EndpointInfo;
  attempts: number;
  /** With `explain: true`: one explanation per attempt. */
  picks?: readonly PickExplanation[];
}

/** Per-endpoint statistics in {@link ClientStats}. */
export interface EndpointStats {
  key: string;
  /** `address:port`. */
  label: string;
  inFlight: number;
  /** Peak-EWMA latency estimate as balancers see it now, ms. */
  ewmaMs: number;
  /** Attempts that succeeded since the endpoint appeared. */
  successes: number;
  /** Attempts that failed since the endpoint appeared. */
  failures: number;
  /** Attempts the endpoint shed since it appeared (`503` + `x-proxyless-shed`: overloaded; neither a success nor a failure). */
  shed: number;
  /** The endpoint's health state: one state machine for the breaker and outlier ejection. */
  health: EndpointHealthState;
  /** The breaker's public state, read from `health` (`probing` is `halfOpen`). */
  breaker: BreakerState;
  /** `health === 'ejected'`. */
  ejected: boolean;
  /** The endpoint's last ORCA load report (`endpoint-load-metrics`), if it sends one and it has not expired. */
  loadReport: EndpointLoadReport | undefined;
  /** `endpoint-load-metrics` values that did not parse (or came twice in one answer): ignored, never trusted. */
  malformedLoadReports: number;
  /** The adaptive concurrency limit and its inputs; undefined when `concurrencyLimit` is off. */
  concurrencyLimit: ConcurrencyLimitStats | undefined;
}

/** Discovery of a client's service in {@link ClientStats}. */
export interface DiscoveryStats {
  /**
   * The resolver's snapshot is stale (registry unreachable or silent, no leader, reset grace):
   * the client keeps serving its last known endpoints (see the `discoveryStale` event).
   */
  stale: boolean;
  /** While stale: since when (epoch ms). */
  staleSince: number | undefined;
  /** When the registry last confirmed the set (epoch ms); undefined before the first snapshot. */
  lastConfirmedAt: number | undefined;
  /** The snapshot's source (`consul`, `etcd`, `dns`…); undefined before the first snapshot. */
  source: string | undefined;
}

/** Hedged requests of a client since it was created, in {@link ClientStats}. */
export interface HedgeStats {
  /** Hedges sent (copies after the first). */
  sent: number;
  /** Requests whose answer came from a hedge rather than the first copy. */
  won: number;
  /** Copies stopped because another copy answered first (their endpoints are not charged). */
  cancelled: number;
  /** Hedges the retry budget refused (none sent for that request after it). */
  refused: number;
}

/** Subsetting in {@link ClientStats} (see `subset` in the client options). */
export interface SubsetStats {
  /** `rendezvous` (no coordinate) or `aperture` (a coordinate given, or read from the peers). */
  mode: 'rendezvous' | 'aperture';
  /** The configured subset size. */
  size: number;
  /** This client's place among its peers in use now (aperture); `undefined` in rendezvous mode (with `peers`: until their first snapshot). */
  coordinate: { index: number; count: number } | undefined;
  /** Instances the client holds endpoints for now: the subset, plus backups (and aperture's widening when peers are few). */
  members: number;
  /** Members beyond the base subset that back up members not ready (breaker open or probing, ejected). */
  backups: number;
  /** Instances of the service the subset is chosen from. */
  candidates: number;
  /** Members that joined the subset since the client started (the first snapshot's members included; backups too). */
  joined: number;
  /** Members that left the subset since the client started (an instance gone, a member replaced, a backup no longer needed). */
  left: number;
}

/** The probes of a probing balancer (`prequal()`), since the client started. */
export interface ProbeStats {
  /** Probes sent (`GET` of the balancer's probe path). */
  sent: number;
  /** Probes without an answer by their deadline, or with a connection error (ignored for picking; the endpoint's last probe is dropped). */
  failed: number;
  /** Probes answered without a report carrying `rif` (the endpoint does not report; it is balanced by least-request). */
  unreported: number;
  /** Probes in flight now. */
  inFlight: number;
  /** Probes in the picker's pool now. */
  poolSize: number;
}

/** A point-in-time view of a client. */
export interface ClientStats {
  service: string;
  /** Balancer name. */
  balancer: string;
  /** Panic mode (balancing over every endpoint because too few are available). */
  panic: boolean;
  /** Endpoints in the current pick set. */
  ready: number;
  /** Retries the budget allows right now (the budget exists even with `retry: false`: per-request policies draw on it). */
  retryBudget: number;
  /** Subsetting, when on (`subset` option); `undefined`: the client uses every instance. */
  subset: SubsetStats | undefined;
  /** Admission control's window and rejection probability; undefined when `admissionControl` is off. */
  admission: AdmissionStats | undefined;
  /** The freshness of the endpoints' source. */
  discovery: DiscoveryStats;
  /** Hedged requests (all 0 unless a policy sets `hedge`). */
  hedges: HedgeStats;
  /** Present when the balancer probes (`prequal()`). */
  probes?: ProbeStats;
  endpoints: EndpointStats[];
}
