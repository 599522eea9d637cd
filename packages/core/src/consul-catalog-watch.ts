/**
 * A watch of a registry's service list: which services exist, with their
 * tags. The watch itself is registry-neutral (a loop reports into it); the
 * Consul loop here reads the catalog (`GET /v1/catalog/services`) on core's
 * one blocking-query loop; `@proxyless/etcd` brings its own.
 */
import { EventEmitter } from 'eventemitter3';
import { BadResponseError, type ConsulHttpClient } from './consul-http.js';
import { resolveBlockingQueryOptions, runBlockingQuery, type BlockingQueryOptions, type ResolvedBlockingQueryOptions } from './consul-blocking-query.js';
import { AbortedError, ClosedError, TimeoutError } from './errors.js';
import type { CallOptions } from './resolver.js';
import { validateDatacenter, validateNamespace, validatePartition } from './validate.js';
import { ResetGrace } from './reset-grace.js';

/** Service name → tags, as the catalog lists them. */
export type CatalogServices = ReadonlyMap<string, readonly string[]>;

/** Options of {@link ConsulResolver.watchServices}. Loop settings default to the resolver's, except the rate limit. */
export interface CatalogWatchOptions extends BlockingQueryOptions {
  /** Datacenter to list. Default: the agent's. */
  datacenter?: string;
  /** Enterprise namespace. Default: the resolver's. */
  namespace?: string | undefined;
  /** Enterprise admin partition. Default: the resolver's. */
  partition?: string | undefined;
  /**
   * Grace after the registry's history reset, in ms: a service missing from the list is kept
   * ({@link CatalogWatch.stale} meanwhile) until it is listed again or the grace ends.
   * Default: the resolver's `resetGraceMs`.
   */
  resetGraceMs?: number;
}

/** Events of a {@link CatalogWatch}. */
export interface CatalogWatchEvents {
  /** The list of services (or a service's tags) changed. */
  update: [services: CatalogServices];
  /** A poll failed; the last list stays. */
  error: [error: Error];
}

/**
 * The catalog's index moves on every catalog write in the datacenter, so this
 * watch is rate-limited harder than a health watch by default: two polls back
 * to back, then one per second.
 */
const catalogRateLimit = { burst: 2, minIntervalMs: 1000, jitterMs: 100 };

function decodeServices(body: unknown): Map<string, readonly string[]> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadResponseError('Consul catalog answer is not an object');
  const out = new Map<string, readonly string[]>();
  for (const [name, tags] of Object.entries(body as Record<string, unknown>)) {
    if (tags !== null && (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string'))) {
      throw new BadResponseError(`Consul catalog answer lists service "${name.slice(0, 64)}" with tags that are not strings`);
    }
    out.set(name, Object.freeze([...(tags ?? [])].sort()));
  }
  return out;
}

function sameServices(a: CatalogServices, b: CatalogServices): boolean {
  if (a.size !== b.size) return false;
  for (const [name, tags] of a) {
    const other = b.get(name);
    if (!other || other.length !== tags.length || other.some((t, i) => t !== tags[i])) return false;
  }
  return true;
}

/** How a catalog watch's loop reports. @internal */
export interface CatalogSink {
  /** A fresh list: an `update` event when it differs from the last one; clears `lastError`. */
  publish(services: Map<string, readonly string[]>): void;
  /** A failed attempt: an `error` event; the last list stays. */
  fail(error: Error): void;
  /** The registry's history reset (wiped, restored, restarted): services missing from the next lists are held for the grace. */
  reset(): void;
}

/** The loop behind a {@link CatalogWatch}: runs until `signal` aborts. @internal */
export type CatalogRunner = (signal: AbortSignal, sink: CatalogSink) => Promise<void>;

/** Consul's catalog loop for {@link ConsulResolver.watchServices}. @internal */
export function consulCatalogRunner(client: ConsulHttpClient, options: CatalogWatchOptions, loop: ResolvedBlockingQueryOptions): CatalogRunner {
  const { datacenter, namespace, partition, ...loopOptions } = options;
  const dc = datacenter === undefined ? undefined : validateDatacenter(datacenter);
  const ns = namespace === undefined ? undefined : validateNamespace(namespace);
  const part = partition === undefined ? undefined : validatePartition(partition);
  const settings = resolveBlockingQueryOptions({ ...loop, rateLimit: catalogRateLimit, ...stripUndefined(loopOptions) }, {}, 'catalog.');
  let last: CatalogServices | undefined;
  return (signal, sink) =>
    runBlockingQuery(client, {
      path: '/v1/catalog/services',
      query: { dc, ns, partition: part, stale: true },
      signal,
      decode: decodeServices,
      onAnswer: async (services) => {
        // An empty catalog from a stale read replacing a non-empty one: confirm with the leader first.
        if (services.size === 0 && (last?.size ?? 1) > 0) {
          const res = await client.request({ path: '/v1/catalog/services', query: { dc, ns, partition: part, consistent: true }, signal });
          services = decodeServices(res.body);
        }
        last = services;
        sink.publish(services);
      },
      onError: (error) => sink.fail(error),
      onReset: () => sink.reset(),
    }, settings);
}

/**
 * A running watch of a registry's service list (Consul's catalog, or the
 * services under an etcd prefix); get one from
 * {@link ConsulResolver.watchServices} (or `EtcdResolver.watchServices`).
 *
 * ## Events
 *
 * Subscribe with `on(name, listener)`; the listener's arguments are typed by {@link CatalogWatchEvents}.
 *
 * - {@link CatalogWatchEvents.update | `update`} `(services)`: The list of services (or a service's tags) changed.
 * - {@link CatalogWatchEvents.error | `error`} `(error)`: A poll failed; the last list stays.
 *
 * @example
 * ```ts
 * const catalog = resolver.watchServices();
 * catalog.on('update', (services) => console.log([...services.keys()]));
 * await catalog.ready({ timeoutMs: 5000 });
 * ```
 */
export class CatalogWatch extends EventEmitter<CatalogWatchEvents> {
  #services: CatalogServices | undefined;
  #lastError: Error | undefined;
  readonly #stop = new AbortController();
  readonly #done: Promise<void>;
  readonly #onClose: (watch: CatalogWatch) => void;
  readonly #grace: ResetGrace<[string, readonly string[]]>;
  /** The registry's last list as given, published again when the reset grace ends. */
  #answer: Map<string, readonly string[]> | undefined;
  #closed = false;

  /** @internal Use a resolver's `watchServices()`. */
  constructor(run: CatalogRunner, onClose: (watch: CatalogWatch) => void, options: { resetGraceMs?: number } = {}) {
    super();
    this.#onClose = onClose;
    this.#grace = new ResetGrace<[string, readonly string[]]>(options.resetGraceMs ?? 0, ([name]) => name, () => {
      if (this.#answer && !this.#closed) this.#publish(this.#answer);
    });
    const signal = this.#stop.signal;
    // Started on the next turn, so listeners attached right after watchServices() hear everything.
    this.#done = new Promise<void>((r) => setImmediate(r)).then(() =>
      run(signal, {
        publish: (services) => this.#publish(services),
        fail: (error) => {
          this.#lastError = error;
          this.emit('error', error);
        },
        reset: () => this.#grace.reset(),
      }),
    );
  }

  /** True while services missing from the registry since it reset (wiped, restored, restarted) are still listed, for the reset grace. */
  get stale(): boolean {
    return this.#grace.holding;
  }

  /** The latest list, once one arrived. */
  get services(): CatalogServices | undefined {
    return this.#services;
  }

  /** The last failure, cleared by the next good answer. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  #publish(answer: Map<string, readonly string[]>): void {
    this.#lastError = undefined;
    this.#answer = answer;
    const entries = [...answer];
    const kept = this.#grace.hold(entries, this.#services ? [...this.#services] : undefined);
    const services = kept === entries ? answer : new Map(kept);
    if (this.#services && sameServices(this.#services, services)) return;
    this.#services = services;
    this.emit('update', services);
  }

  /** Resolves with the first list (or the current one). */
  ready(options: CallOptions = {}): Promise<CatalogServices> {
    if (this.#services) return Promise.resolve(this.#services);
    if (this.#closed) return Promise.reject(new ClosedError('Catalog watch'));
    const { signal, timeoutMs } = options;
    return new Promise<CatalogServices>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#stop.signal.removeEventListener('abort', onClose);
        this.off('update', onUpdate);
      };
      const onUpdate = (services: CatalogServices): void => {
        cleanup();
        resolve(services);
      };
      const onAbort = (): void => {
        cleanup();
        reject(new AbortedError('Catalog watch', signal?.reason));
      };
      const onClose = (): void => {
        cleanup();
        reject(new ClosedError('Catalog watch'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#stop.signal.addEventListener('abort', onClose, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          cleanup();
          reject(new TimeoutError('Waiting for the catalog', timeoutMs));
        }, timeoutMs); // ref'd: a wait with a deadline keeps the process alive until it settles
      }
      this.on('update', onUpdate);
    });
  }

  /** Stops the loop (the request in flight included); no timer or socket remains. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort(new ClosedError('Catalog watch'));
    this.#grace.stop();
    await this.#done;
    this.removeAllListeners();
    this.#onClose(this);
  }

  /** Same as {@link CatalogWatch.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
