import type { ConfigWarning, ServiceSnapshot } from '@proxyless/core';
import type { DiscoveryStale } from './discovery-stale.js';
import type { EndpointInfo } from './endpoint-info.js';
import type { ConcurrencyLimitStats } from './limit-types.js';

/** Events of a {@link ProxylessClient}, for every endpoint state change. */
export interface ClientEvents {
  /** An instance appeared in the resolver's snapshot; its pool is ready. */
  endpointAdded: [endpoint: EndpointInfo];
  /** An instance left the snapshot; its pool drains its in-flight requests, then closes. */
  endpointRemoved: [endpoint: EndpointInfo];
  /** The endpoint's breaker opened: it leaves the pick set. */
  breakerOpen: [endpoint: EndpointInfo];
  /** The reset timeout passed: the next call to the endpoint is a trial. */
  breakerHalfOpen: [endpoint: EndpointInfo];
  /** A trial succeeded: the endpoint is back. */
  breakerClose: [endpoint: EndpointInfo];
  /** Outlier detection ejected the endpoint for `durationMs`. */
  eject: [endpoint: EndpointInfo, durationMs: number];
  /** An ejected endpoint returned to the pick set. */
  restore: [endpoint: EndpointInfo];
  /**
   * The endpoint shed an attempt (answered `503` with `x-proxyless-shed`: overloaded, the handler did not run).
   * Not a failure of the endpoint; the request goes to another endpoint if retries allow. Counted in `stats().endpoints[].shed`.
   */
  shed: [endpoint: EndpointInfo];
  /** An endpoint's adaptive concurrency limit changed (`concurrencyLimit` option): the new limit and its inputs. */
  concurrencyLimit: [endpoint: EndpointInfo, limit: ConcurrencyLimitStats];
  /** Panic mode entered (`true`: too few endpoints available, balancing over all) or left (`false`). */
  panic: [active: boolean];
  /**
   * A hedged request sent another copy to `endpoint` (`copy` 1 for the first
   * hedge), `afterMs` after its first copy, none of the copies in flight
   * having answered (see the `hedge` field of a policy).
   */
  hedge: [endpoint: EndpointInfo, copy: number, afterMs: number];
  /**
   * A request that sent hedges got its answer from `winner` (`copy` 0 is
   * the first copy, 1 the first hedge…); the `cancelled` copies were stopped
   * (their endpoints are not charged a failure).
   */
  hedgeSettled: [winner: EndpointInfo, copy: number, cancelled: readonly EndpointInfo[]];
  /** The resolver published a snapshot the client applied. */
  update: [snapshot: ServiceSnapshot];
  /** Discovery turned stale (registry unreachable or silent, no leader, reset grace): the client keeps serving its last known endpoints. */
  discoveryStale: [stale: DiscoveryStale];
  /** Discovery is fresh again after `durationMs` stale (`stale` is what {@link ClientEvents.discoveryStale} reported). */
  discoveryFresh: [stale: DiscoveryStale, durationMs: number];
  /** The configuration doctor found a setting that hurts in production (once per code); the warning names the fix. */
  configWarning: [warning: ConfigWarning];
  /** The resolver reported an error (the last good endpoints stay in use). */
  error: [error: Error];
}

/** How a piece of the client reports an event: this one function, never the client itself. @internal */
export type EmitClientEvent = <K extends keyof ClientEvents>(event: K, ...args: ClientEvents[K]) => void;
