import type { EventEmitter } from 'eventemitter3';
import type { InstanceDiff, ServiceInstance } from './service-instance.js';
import type { ResolutionFailedError } from './errors.js';

/** Per-call controls accepted by {@link Resolver.resolve}. */
export interface CallOptions {
  /** Caller cancellation. */
  signal?: AbortSignal;
  /** Time limit for the call, in ms. */
  timeoutMs?: number;
}

/** An immutable view of a service's healthy instances at one moment. */
export interface ServiceSnapshot {
  readonly service: string;
  /** Healthy instances, frozen. */
  readonly instances: readonly ServiceInstance[];
  /**
   * True when this may not be the registry's current answer: the source is failing and this is the
   * last good one (stale-if-error: unreachable, timed out, a silent long poll past `watchIdleMs`), the
   * answering server knows no leader or lags beyond `maxStaleMs` (Consul), or instances are held
   * after a registry reset (reset grace). The set is kept, never emptied, while stale.
   */
  readonly stale: boolean;
  /** When this data was last confirmed by its source (epoch ms). Age = `Date.now() - updatedAt`. */
  readonly updatedAt: number;
  /** Which resolver produced it, e.g. `consul`, `dns`, `static`. */
  readonly source: string;
  /** Source-specific freshness details (Consul consistency headers, DNS TTL), when known. */
  readonly info?: SnapshotSourceInfo | undefined;
}

/** Freshness details a source may attach to a snapshot. */
export interface SnapshotSourceInfo {
  /** Consul `X-Consul-Index` of the answer. */
  readonly index?: number;
  /** Consul `X-Consul-KnownLeader`: false means the answering server has no leader (data may be old). */
  readonly knownLeader?: boolean;
  /** Consul `X-Consul-LastContact`: ms since the answering server last heard from the leader (`stale` reads). */
  readonly lastContactMs?: number;
  /** Consul agent cache (`?cached`): `X-Cache` was `HIT`. */
  readonly cacheHit?: boolean;
  /** Consul agent cache: `Age` header, in seconds. */
  readonly cacheAgeSeconds?: number;
  /** Consul: the datacenter that served the snapshot (the one asked, or a failover datacenter). */
  readonly datacenter?: string;
  /** Consul `X-Consul-Query-Backend` (`blocking-query` or `streaming`). */
  readonly queryBackend?: string;
  /** DNS: the TTL applied (after floor and ceiling), in ms. */
  readonly ttlMs?: number;
}

/** Events of a {@link ServiceWatch}. */
export interface ServiceWatchEvents {
  /**
   * A new snapshot; emitted only when the set really changed, or its staleness did. Never synchronously from `watch()`.
   * `change` is what changed since the snapshot this subscriber last heard (from empty for its first one), computed
   * once per change by the watch and shared, frozen, by every subscriber: apply it rather than diff the lists again.
   */
  update: [snapshot: ServiceSnapshot, change: InstanceDiff];
  /**
   * The source failed; the last good snapshot stays (marked stale). Never thrown at subscribers.
   * Before the first snapshot, a balancing client fails the calls waiting for it at once on this
   * event: a watch still trying another source (a fallback) should report only once that one fails.
   */
  error: [error: Error];
}

/**
 * One subscriber's view of a shared watch.
 *
 * ## Events
 *
 * Subscribe with `on(name, listener)`; the listener's arguments are typed by {@link ServiceWatchEvents}.
 *
 * - {@link ServiceWatchEvents.update | `update`} `(snapshot, change)`: A new snapshot; emitted only when the set really changed, or its staleness did. Never synchronously from `watch()`. `change` ({@link InstanceDiff}) is relative to what this subscriber last heard, computed once and shared by every subscriber.
 * - {@link ServiceWatchEvents.error | `error`} `(error)`: The source failed; the last good snapshot stays (marked stale). Never thrown at subscribers. Before the first snapshot, a balancing client fails the calls waiting for it at once on this event.
 */
export interface ServiceWatch extends EventEmitter<ServiceWatchEvents> {
  readonly service: string;
  /** The latest snapshot, once one arrived. */
  readonly current: ServiceSnapshot | undefined;
  /** The last error from the source, cleared on the next success. */
  readonly lastError: Error | undefined;
  /** Resolves with the first snapshot (or the current one). Rejects if the watch is closed first or the signal aborts. */
  ready(options?: CallOptions): Promise<ServiceSnapshot>;
  /** Unsubscribes. The underlying poll stops when the last subscriber leaves. Idempotent. */
  close(): Promise<void>;
}

/**
 * Turns a service name into healthy instances, once or continuously.
 * `Query` carries resolver-specific query options (tags, datacenter…).
 */
export interface Resolver<Query extends object = object> {
  /**
   * Resolves once.
   * @throws `ERR_NO_HEALTHY_INSTANCES` when none, `ERR_RESOLUTION_FAILED` (with `cause`), `ERR_INVALID_SERVICE_NAME`, `ERR_CLOSED`.
   */
  resolve(service: string, options?: Query & CallOptions): Promise<readonly ServiceInstance[]>;
  /** Subscribes to a service; one shared poll per (service, query) however many subscribers. */
  watch(service: string, query?: Query): ServiceWatch;
  /** Cancels every poll at once; leaves no timer or socket behind. Idempotent. */
  close(): Promise<void>;
  /**
   * Optional: the error for a discovery of `service` that failed with `error`
   * (a `TimeoutError` when the registry gave no answer in time), whose message
   * names the registry, the address tried and the variable or option that
   * sets it. A client uses it when no snapshot arrived by a call's deadline
   * and the watch has reported no error of its own.
   */
  discoveryError?(service: string, error: unknown): ResolutionFailedError;
}
