import type { ServiceInstance } from './service-instance.js';

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
