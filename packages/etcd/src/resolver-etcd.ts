import { EventEmitter } from 'eventemitter3';
import {
  AbortedError,
  CatalogWatch,
  ClosedError,
  InvalidOptionError,
  NoHealthyInstancesError,
  ResolutionFailedError,
  validateServiceName,
  type BackoffOptions,
  type CallOptions,
  type Resolver,
  type ServiceInstance,
  type ServiceWatch,
} from '@proxyless/core';
import { checkKnownKeys, optionKeys, WatchHub, checkBackoff, checkNumber, defaultResetGraceMs, type WatchSink } from '@proxyless/core/internal';
import { EtcdClient, type EtcdKeyValue } from './etcd-client.js';
import { etcdConnectionKeys, type EtcdConnectionOptions } from './etcd-config.js';
import { proxylessLayout, validateInstanceName, type EtcdKeyLayout } from './key-layout.js';
import { runPrefixWatch, type ResyncReason } from './prefix-watch.js';
import { etcdCatalogRunner } from './service-list-etcd.js';
import { describeEtcdFailure } from './etcd-failure.js';

/** Per-query options of {@link EtcdResolver} (none yet: the layout decides where a service lives). */
export type EtcdQuery = object;

/** An entry left out of a snapshot (malformed, oversized, outside the layout). */
export interface DroppedEntry {
  readonly service: string;
  /** The key, truncated to 256 characters with control characters escaped. */
  readonly key: string;
  readonly reason: string;
}

/** Events of an {@link EtcdResolver} beyond its watches' own. */
export interface EtcdResolverEvents {
  /** An entry was ignored; it never becomes an instance. */
  dropped: [entry: DroppedEntry];
  /** A watch started over with a full read (`compacted`, revision went backwards, another cluster, another history at our revision). */
  resync: [service: string, reason: ResyncReason];
}

/** Options of {@link EtcdResolver}. */
export interface EtcdResolverOptions extends EtcdConnectionOptions {
  /** An existing client (the resolver then does not close it). Default: a new one from the connection options and environment. */
  client?: EtcdClient;
  /** Environment for connection defaults (`ETCDCTL_*`). Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Key layout. Default {@link proxylessLayout}(). */
  layout?: EtcdKeyLayout;
  /** Values larger than this are dropped. Default 65 536 bytes. */
  maxValueBytes?: number;
  /** Backoff between failed watch attempts. Default `{ initialMs: 100, maxMs: 10 000 }`. */
  backoff?: BackoffOptions;
  /**
   * A watch stream silent this long has its member checked with a read (one
   * per endpoint, whatever the number of streams); a member that does not
   * answer within `timeoutMs` is left for the next endpoint and the snapshot
   * is marked stale meanwhile. Default 30 000 ms (at rest, one read per endpoint
   * every 30 s, however many services are watched); 100 to 3 600 000.
   */
  watchIdleMs?: number;
  /**
   * Grace after etcd's history reset (its revision went back, its cluster ID changed, or the keys
   * at the watch's revision differ: wiped, restored), in ms: an instance missing from the new history is kept, the snapshot marked
   * stale, until it registers again or the grace ends; new instances are added at once. Set it
   * to the registrations' TTL (a live registrar notices at its next keepalive, at most TTL/2
   * later, and registers again at once). An empty answer without a reset is believed at once.
   * Default 15 000 (the registrar's default TTL); 0 believes every answer at once.
   */
  resetGraceMs?: number;
}

function printable(key: Buffer): string {
  const text = key.toString('utf8');
  const cut = text.length > 256 ? `${text.slice(0, 256)}…` : text;
  let out = '';
  for (const c of cut) {
    const code = c.charCodeAt(0);
    out += code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, '0')}` : c;
  }
  return out;
}

const etcdResolverKeys = [
  ...etcdConnectionKeys,
  ...optionKeys<Omit<EtcdResolverOptions, keyof EtcdConnectionOptions>>({ client: true, env: true, layout: true, maxValueBytes: true, backoff: true, watchIdleMs: true, resetGraceMs: true }),
];

/**
 * Resolves and watches services registered in etcd.
 *
 * One watch stream per service prefix per resolver, whatever the number of
 * subscribers (the shared watch hub of `@proxyless/core`). The loop reads the
 * prefix once, then watches from the next revision; after a reconnect it
 * resumes from the last revision it applied once a keys-only read at that
 * revision finds the keys it holds, and starts over with a full read when that
 * revision was compacted away, when the server's revision is behind ours, its
 * cluster ID changed or the keys differ (etcd restored or wiped). Errors keep the last
 * good snapshot, marked stale. Only healthy (`passing`/`warning`) instances are
 * published; a malformed or oversized value is dropped and reported in a
 * `dropped` event.
 *
 * ## Events
 *
 * Subscribe with `on(name, listener)`; the listener's arguments are typed by {@link EtcdResolverEvents}.
 *
 * - {@link EtcdResolverEvents.dropped | `dropped`} `(entry)`: An entry was ignored; it never becomes an instance.
 * - {@link EtcdResolverEvents.resync | `resync`} `(service, reason)`: A watch started over with a full read (`compacted`, revision went backwards, another cluster, another history at our revision).
 *
 * @example
 * ```ts
 * import { EtcdResolver } from '@proxyless/etcd';
 * const resolver = new EtcdResolver({ endpoints: ['http://127.0.0.1:2379'] });
 * const watch = resolver.watch('web');
 * watch.on('update', (snapshot) => console.log(snapshot.instances.map((i) => `${i.address}:${i.port}`)));
 * await watch.ready({ timeoutMs: 5000 });
 * await resolver.close();
 * ```
 */
export class EtcdResolver extends EventEmitter<EtcdResolverEvents> implements Resolver {
  /** The etcd client in use. */
  readonly client: EtcdClient;
  /** The key layout in use. */
  readonly layout: EtcdKeyLayout;
  readonly #ownsClient: boolean;
  readonly #hub: WatchHub<EtcdQuery>;
  readonly #maxValueBytes: number;
  readonly #backoff: Required<BackoffOptions>;
  readonly #watchIdleMs: number;
  readonly #resetGraceMs: number;
  readonly #closeController = new AbortController();
  readonly #catalogs = new Set<CatalogWatch>();
  #closed = false;

  constructor(options: EtcdResolverOptions = {}) {
    super();
    checkKnownKeys('', options, etcdResolverKeys, 'EtcdResolver');
    const { client, env, layout, maxValueBytes, backoff, watchIdleMs, resetGraceMs, ...connection } = options;
    this.layout = layout ?? proxylessLayout();
    if (typeof this.layout !== 'object' || typeof this.layout.servicePrefix !== 'function' || typeof this.layout.parse !== 'function') {
      throw new InvalidOptionError('layout', this.layout, 'must be an EtcdKeyLayout (servicePrefix and parse)');
    }
    this.#maxValueBytes = checkNumber('maxValueBytes', maxValueBytes, 65_536, { integer: true, min: 1 });
    this.#backoff = checkBackoff('backoff', backoff, { initialMs: 100, maxMs: 10_000 });
    // At most an hour: a timer waits for it (a Node timer past 2^31 ms fires at once).
    this.#watchIdleMs = checkNumber('watchIdleMs', watchIdleMs, 30_000, { integer: true, min: 100, max: 3_600_000 });
    this.#resetGraceMs = checkNumber('resetGraceMs', resetGraceMs, defaultResetGraceMs, { integer: true, min: 0, max: 3_600_000 });
    if (client !== undefined) {
      if (!(client instanceof EtcdClient)) throw new InvalidOptionError('client', client, 'must be an EtcdClient');
      this.client = client;
      this.#ownsClient = false;
    } else {
      this.client = new EtcdClient(connection, env);
      this.#ownsClient = true;
    }
    this.#hub = new WatchHub<EtcdQuery>('etcd', (service, _query, sink) => this.#run(service, sink), { resetGraceMs: this.#resetGraceMs });
  }

  /** Number of running watch streams (one per watched service). */
  get activeWatches(): number {
    return this.#hub.size;
  }

  #prefix(service: string): string {
    validateServiceName(service);
    return this.layout.servicePrefix(service);
  }

  /** Turns one key-value into an instance, or reports it dropped. */
  #parse(service: string, prefix: string, kv: EtcdKeyValue): ServiceInstance | undefined {
    const drop = (reason: string): undefined => {
      this.emit('dropped', { service, key: printable(kv.key), reason });
      return undefined;
    };
    const key = kv.key.toString('utf8');
    if (!key.startsWith(prefix)) return drop('key outside the service prefix');
    const name = key.slice(prefix.length);
    if (name.length === 0 || name.includes('/')) return drop('key is not a direct child of the service prefix');
    try {
      validateInstanceName(name, 'key');
    } catch {
      return drop('key is not a valid instance name');
    }
    if (kv.value.length > this.#maxValueBytes) return drop(`value larger than ${this.#maxValueBytes} bytes`);
    try {
      const instance = this.layout.parse(service, name, kv.value);
      if (instance.service !== service) return drop('value names another service');
      return instance.health === 'critical' ? undefined : instance;
    } catch (error) {
      return drop(error instanceof Error ? error.message : 'unparseable value');
    }
  }

  /** The usable instances among parsed entries, the first of each instance key. */
  static #usable(parsed: Iterable<ServiceInstance | undefined>): ServiceInstance[] {
    const out: ServiceInstance[] = [];
    const seen = new Set<string>();
    for (const instance of parsed) {
      if (instance && !seen.has(instance.key)) {
        seen.add(instance.key);
        out.push(instance);
      }
    }
    return out;
  }

  async #run(service: string, sink: WatchSink): Promise<void> {
    const prefix = this.#prefix(service);
    // Each key parsed once per change (a bad value is judged, and reported, when it changes):
    // an event costs the parse of its own value, not of the whole prefix.
    let parsed = new Map<string, ServiceInstance | undefined>();
    const set = (kv: EtcdKeyValue): void => void parsed.set(kv.key.toString('latin1'), this.#parse(service, prefix, kv));
    const publish = (revision: number): void => sink.publish(EtcdResolver.#usable(parsed.values()), { info: { index: revision } });
    await runPrefixWatch(this.client, prefix, { signal: sink.signal, backoff: this.#backoff, idleTimeoutMs: this.#watchIdleMs }, {
      reset: (kvs, revision) => {
        parsed = new Map();
        for (const kv of kvs) set(kv);
        publish(revision);
      },
      apply: (events, revision) => {
        for (const event of events) {
          if (event.type === 'delete') parsed.delete(event.kv.key.toString('latin1'));
          else set(event.kv);
        }
        publish(revision);
      },
      // Confirms the (possibly stale) snapshot is current again.
      live: publish,
      resync: (reason) => {
        // A new history (wiped, restored), not merely a shorter one (compacted): live instances
        // have not registered again yet, so the next read's absentees are held for the grace.
        if (reason !== 'compacted') sink.reset();
        this.emit('resync', service, reason);
      },
      fail: (error) => sink.fail(this.discoveryError(service, error)),
    });
  }

  /** Discovery of `service` failed with `error`: the error names etcd, the endpoints tried and what sets them (the registrar's line). */
  discoveryError(service: string, error: unknown): ResolutionFailedError {
    return new ResolutionFailedError(service, 'etcd', error, describeEtcdFailure(error, this.client.connection.endpoints, `read on the prefix of "${service}"`));
  }

  /**
   * Resolves once (a linearizable range read), or answers from a running watch's fresh snapshot.
   * @throws `NoHealthyInstancesError`, `ResolutionFailedError` (with `cause`),
   *   `InvalidServiceNameError`, `ClosedError`, `AbortedError`.
   */
  async resolve(service: string, options: EtcdQuery & CallOptions = {}): Promise<readonly ServiceInstance[]> {
    if (this.#closed) throw new ClosedError('Resolver');
    const prefix = this.#prefix(service);
    const { signal, timeoutMs } = options;
    const cached = this.#hub.peek(service);
    let instances: readonly ServiceInstance[];
    if (cached && !cached.stale) {
      instances = cached.instances;
    } else {
      if (signal?.aborted) throw new AbortedError(`Resolving "${service}"`, signal.reason);
      const linked = signal ? AbortSignal.any([signal, this.#closeController.signal]) : this.#closeController.signal;
      try {
        const { kvs } = await this.client.range(prefix, { prefix: true, signal: linked, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
        instances = EtcdResolver.#usable(kvs.map((kv) => this.#parse(service, prefix, kv)));
      } catch (error) {
        if (signal?.aborted) throw new AbortedError(`Resolving "${service}"`, signal.reason);
        if (this.#closed) throw new ClosedError('Resolver');
        throw this.discoveryError(service, error);
      }
    }
    if (instances.length === 0) throw new NoHealthyInstancesError(service);
    return instances;
  }

  /**
   * Watches a service. Every subscriber of one service shares one etcd watch stream.
   * @throws `InvalidServiceNameError`, `ClosedError`.
   */
  watch(service: string, query: EtcdQuery = {}): ServiceWatch {
    if (this.#closed) throw new ClosedError('Resolver');
    this.#prefix(service);
    return this.#hub.subscribe(service, service, query);
  }

  /**
   * Watches the list of services (name → the union of their instances' tags):
   * one watch stream over the layout's root, a service listed while one of its
   * keys holds a valid instance. The same `CatalogWatch` as
   * `ConsulResolver.watchServices()`, so code written for one registry runs on
   * the other. Closed with the resolver.
   * @throws `InvalidOptionError` when the layout cannot list services (a confd
   *   prefix without `{service}`), `ClosedError`.
   */
  watchServices(): CatalogWatch {
    if (this.#closed) throw new ClosedError('Resolver');
    const locator = this.layout.services;
    if (!locator) throw new InvalidOptionError('layout', this.layout.name, 'cannot list services (its prefix does not name {service})');
    const run = etcdCatalogRunner(this.client, this.layout, locator, { backoff: this.#backoff, idleTimeoutMs: this.#watchIdleMs, maxValueBytes: this.#maxValueBytes });
    const watch = new CatalogWatch(run, (w) => this.#catalogs.delete(w), { resetGraceMs: this.#resetGraceMs });
    this.#catalogs.add(watch);
    return watch;
  }

  /** Stops every watch stream at once; closes the client if the resolver created it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeController.abort(new ClosedError('Resolver'));
    await Promise.all([this.#hub.close(), ...[...this.#catalogs].map((c) => c.close())]);
    if (this.#ownsClient) await this.client.close();
    this.removeAllListeners();
  }

  /** Same as {@link EtcdResolver.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
