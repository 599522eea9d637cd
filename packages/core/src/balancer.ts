import type { LoadReport } from './load-report.js';
import type { ServiceInstance } from './service-instance.js';

/**
 * What an endpoint last reported about its own load (ORCA
 * `endpoint-load-metrics`), as balancers read it. The transport gives it only
 * while gRPC A58 allows a balancer to use it: after the endpoint has reported
 * for the blackout period (10 s) and before the last report expires (3 min).
 * One object per report (no allocation per read); `ageMs` alone moves with time.
 */
export interface ReportedLoadView {
  /**
   * The utilisation to weigh by, as A58 does: `application_utilization` when
   * > 0, else `cpu_utilization` (in Node, event-loop utilisation). ≥ 0, may
   * exceed 1; undefined when the report has neither.
   */
  readonly utilization: number | undefined;
  /** Requests per second the endpoint serves (`rps_fractional`), ≥ 0; undefined if not reported. */
  readonly rps: number | undefined;
  /** Errors per second the endpoint serves (`eps`), ≥ 0; undefined if not reported. */
  readonly eps: number | undefined;
  /** Requests in flight at the server (named metric `rif`, as `@proxyless/load-report` writes it); undefined if not reported. */
  readonly rif: number | undefined;
  /** Latency of the server's recent requests at its current load, ms (named metric `latency_ms`); undefined if not reported. */
  readonly latencyMs: number | undefined;
  /** Time since the report arrived, ms (read live). */
  readonly ageMs: number;
  /** The whole report as parsed (frozen; every number finite and ≥ 0). */
  readonly report: LoadReport;
}

/**
 * Live load statistics of one endpoint, read by balancers at pick time.
 * The transport (e.g. `@proxyless/http-client`) owns and updates them.
 */
export interface EndpointLoad {
  /** Requests in flight on this endpoint now. */
  readonly inFlight: number;
  /** Peak-EWMA latency estimate in ms (0 when unknown). */
  readonly ewmaMs: number;
  /** When the endpoint joined the ready set (epoch ms), for slow start. */
  readonly readySince: number;
  /**
   * The server's own report of its load, only while usable under gRPC A58
   * (past the blackout, not expired); undefined for an endpoint that does not
   * report (balancers then behave as without reports), or when the transport
   * does not read reports.
   */
  readonly reported?: ReportedLoadView | undefined;
}

/** An endpoint as balancers see it: an instance plus its live load. */
export interface BalancerEndpoint {
  readonly instance: ServiceInstance;
  readonly load: EndpointLoad;
  /**
   * `false` while the transport has taken the endpoint out of rotation
   * (breaker open, ejected): pickers skip it at pick time, so such a change
   * needs no new picker. Absent or `true`: available. Unlike
   * `PickContext.exclude`, this is strict: a picker whose every endpoint is
   * unavailable returns `undefined`.
   */
  readonly available?: boolean;
}

/**
 * The signal that decided a pick, for explanations (`PickContext.signals`):
 * - `latency`: the latency estimates (peak EWMA's `ewmaMs`) differed most;
 * - `in-flight`: the requests in flight this client has on each;
 * - `reported-utilization`: the utilisation the servers reported;
 * - `reported-rif`: the requests in flight the servers reported (all clients');
 * - `reported-weight`: a weight computed from the server's reports (load-weighted round robin);
 * - `mean-weight`: the mean of the reported weights, given to an endpoint without a usable report;
 * - `weight`: a configured weight (Consul `Weights`);
 * - `rotation`: equal turns (round robin, or weighted round robin with equal weights);
 * - `probe-latency`, `probe-in-flight`: a probe's answer (probing balancers);
 * - `random`, `hash`: a random draw, a hash key;
 * - `only-choice`: no other endpoint was eligible.
 */
export type PickSignal =
  | 'latency'
  | 'in-flight'
  | 'reported-utilization'
  | 'reported-rif'
  | 'reported-weight'
  | 'mean-weight'
  | 'weight'
  | 'rotation'
  | 'probe-latency'
  | 'probe-in-flight'
  | 'random'
  | 'hash'
  | 'only-choice';

/** Per-request facts a picker may use (e.g. the hash key for affinity). */
export interface PickContext {
  /** Key for consistent hashing (e.g. a user id or session cookie). */
  readonly hashKey?: string | undefined;
  /** Endpoints to avoid if any other is available (e.g. those a retry already tried). */
  readonly exclude?: ReadonlySet<BalancerEndpoint> | undefined;
  /**
   * Set only to explain a pick: choice-of-N pickers (P2C) push every
   * candidate they compared, in order. Costs nothing when absent.
   */
  readonly candidates?: BalancerEndpoint[] | undefined;
  /**
   * Set only to explain a pick, with `candidates`: pickers that compare by a
   * score (peak EWMA) push the score of each candidate as they compared it,
   * in the same order. Read later, a score may have moved (latency estimates
   * decay with time), so the choice could look wrong. Costs nothing when absent.
   */
  readonly scores?: number[] | undefined;
  /**
   * Set only to explain a pick: a picker that knows which signal decided its
   * choice pushes it here (one entry per pick). Costs nothing when absent.
   */
  readonly signals?: PickSignal[] | undefined;
}

/**
 * What a probe of an endpoint (or a report on one of its answers) said: the
 * server's requests in flight and its latency at that load (the
 * `named_metrics.rif` and `named_metrics.latency_ms` of an ORCA report).
 */
export interface ProbeResult {
  /** Requests in flight at the server, ≥ 0. */
  readonly rif: number;
  /** The server's latency at its current load, ms; undefined when it has none yet. */
  readonly latencyMs?: number | undefined;
}

/** How the transport probes for a probing picker (the picker does no I/O itself). */
export interface ProbeSettings {
  /** Path of the probe (`GET`). */
  readonly path: string;
  /** A probe's deadline, ms; a probe that misses it counts as failed. */
  readonly timeoutMs: number;
  /** Probes in flight at once, at most, per set of endpoints. */
  readonly maxConcurrent: number;
}

/**
 * The probing side of a picker that balances on probes (`prequal()`): it
 * says which endpoints it wants probed and hears the answers; the transport
 * sends the probes, bounded by {@link ProbeSettings}. Pure: no timers, no I/O.
 */
export interface PickerProbing<E extends BalancerEndpoint = BalancerEndpoint> {
  readonly settings: ProbeSettings;
  /** Endpoints to probe now, at most `max` (the transport's free slots); never more in total than the probe rate allows per pick. */
  targets(max: number): E[];
  /** A probe answered (or an answer carried a report). `undefined`: it answered without a usable report (the endpoint does not report). */
  result(endpoint: E, result: ProbeResult | undefined): void;
  /** A probe failed (no answer by its deadline, connection error): the endpoint's last probe is not trusted any more. */
  failed(endpoint: E): void;
  /** Probes in the pool now. */
  readonly poolSize: number;
  /**
   * The transport calls this on a new picker's probing side when the set of
   * endpoints changed (an instance joined or left), with the old picker's:
   * the new picker takes over what the old one learnt about the endpoints
   * still present (same endpoint object, or same instance key and address),
   * so picks right after a change are not blind. Optional: a picker without
   * it starts over.
   */
  inherit?(previous: PickerProbing<E>): void;
}

/**
 * A choice function over one set of endpoints, fixed when it is built.
 * `pick()` is synchronous and cheap; it skips endpoints whose `available` is
 * `false`, and returns `undefined` only when no endpoint is available.
 */
export interface Picker<E extends BalancerEndpoint = BalancerEndpoint> {
  readonly endpoints: readonly E[];
  pick(context?: PickContext): E | undefined;
  /**
   * The transport calls this after changing the `available` flag of any of
   * `endpoints`, so a picker that derives state from availability (e.g.
   * `locality()`'s tier sizes) can refresh it. Optional: most pickers
   * read the flag at pick time and need nothing.
   */
  availabilityChanged?(): void;
  /** Present on pickers that balance on probes: what to probe, and where answers go. */
  readonly probing?: PickerProbing<E>;
}

/**
 * A balancing strategy, as a value: builds a new {@link Picker} whenever the
 * set of endpoints changes (instances added or removed). Availability changes
 * (breakers opening and closing, ejections) reach existing pickers through
 * `BalancerEndpoint.available`, without a rebuild.
 */
export interface Balancer {
  /** Strategy name, e.g. `peak-ewma`. */
  readonly name: string;
  /** Builds a picker over `endpoints` (which may be empty). */
  createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E>;
  /** The score a choice-of-N strategy compares (lower wins), to explain a pick. */
  score?(endpoint: BalancerEndpoint): number;
}
