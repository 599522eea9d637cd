import { BadResponseError, ConsulHttpClient, type ConsulResponse } from './consul-http.js';
import type { ConsulConnectionOptions } from './consul-config.js';
import {
  AbortedError,
  ClosedError,
  InvalidOptionError,
  NoHealthyInstancesError,
  ResolutionFailedError,
} from './errors.js';
import type { CallOptions, Resolver, ServiceWatch, SnapshotSourceInfo } from './resolver.js';
import { createServiceInstance, isConnectableAddress, type HealthStatus, type ServiceInstance } from './service-instance.js';
import { checkNumber, validateDatacenter, validateServiceName, validateTag } from './validate.js';
import { backoffDelay, checkBackoff, type BackoffOptions } from './backoff.js';
import { sleep } from './sleep.js';
import { WatchHub, type WatchSink } from './watch-hub.js';

/** Consul read consistency: `stale` (any server, scales, works without a leader), `default` (leader), `consistent` (quorum). */
export type ConsulConsistency = 'stale' | 'default' | 'consistent';

/** Per-query options of {@link ConsulResolver} (part of the watch identity). */
export interface ConsulQuery {
  /** Only instances carrying every one of these tags (repeated `tag` parameter). */
  tags?: readonly string[];
  /** Consul filter expression over `Service.*`, `Node.*`, `Checks.*`. */
  filter?: string;
  /** Datacenter to query. Default: the agent's. */
  datacenter?: string;
  /** Sort by round-trip estimate from the agent (`near=_agent`). Default false. */
  near?: boolean;
  /** Only instances whose every check passes (`?passing`). Default true. */
  passingOnly?: boolean;
  /** Read consistency. Default: the resolver's (`stale`). */
  consistency?: ConsulConsistency;
  /** Use the agent's cache (`?cached`; not with `consistent`). Default: the resolver's (false). */
  cached?: boolean;
}

/** Options of {@link ConsulResolver}. */
export interface ConsulResolverOptions extends ConsulConnectionOptions {
  /** An existing client to use (the resolver then does not close it). Default: a new client from the connection options and environment. */
  client?: ConsulHttpClient;
  /** Environment for connection defaults. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Blocking-query wait, in ms (sent as whole seconds). Default 60 000; Consul caps it at 10 minutes. */
  waitMs?: number;
  /** Minimum gap between two polls of one watch, in ms (consul-template uses 100). Default 100. */
  minPollIntervalMs?: number;
  /** Extra random gap (0 to this many ms) between polls. Default 50. */
  pollJitterMs?: number;
  /** Backoff on errors. Default `{ initialMs: 250, maxMs: 30 000 }`. */
  backoff?: BackoffOptions;
  /** Default read consistency. Default `stale`. */
  consistency?: ConsulConsistency;
  /** Use the agent cache by default. Default false. */
  cached?: boolean;
}

/** A canonical query: sorted, deduplicated, defaults applied. @internal */
interface CanonicalQuery {
  tags: string[];
  filter: string | undefined;
  datacenter: string | undefined;
  near: boolean;
  passingOnly: boolean;
  consistency: ConsulConsistency;
  cached: boolean;
}

const consistencies: readonly string[] = ['stale', 'default', 'consistent'];

function header(headers: ConsulResponse['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Reads `X-Consul-*` headers into snapshot info.
 * @internal
 */
export function consulInfo(headers: ConsulResponse['headers']): SnapshotSourceInfo & { index: number } {
  const rawIndex = header(headers, 'x-consul-index');
  const index = rawIndex !== undefined && /^\d{1,19}$/.test(rawIndex) ? Number(rawIndex) : 0;
  const info: { index: number; knownLeader?: boolean; lastContactMs?: number; cacheHit?: boolean; cacheAgeSeconds?: number; queryBackend?: string } = { index };
  const leader = header(headers, 'x-consul-knownleader');
  if (leader !== undefined) info.knownLeader = leader === 'true';
  const contact = header(headers, 'x-consul-lastcontact');
  if (contact !== undefined && /^\d{1,12}$/.test(contact)) info.lastContactMs = Number(contact);
  const cache = header(headers, 'x-cache');
  if (cache !== undefined) info.cacheHit = cache === 'HIT';
  const backend = header(headers, 'x-consul-query-backend');
  if (backend !== undefined && /^[a-z-]{1,32}$/.test(backend)) info.queryBackend = backend;
  const age = header(headers, 'age');
  if (age !== undefined && /^\d{1,12}$/.test(age)) info.cacheAgeSeconds = Number(age);
  return info;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function entryHealth(checks: unknown): HealthStatus | undefined {
  if (checks === null || checks === undefined) return 'passing';
  if (!Array.isArray(checks)) return undefined;
  let health: HealthStatus = 'passing';
  for (const check of checks) {
    if (!isRecord(check)) return undefined;
    const status = check['Status'];
    if (status === 'critical' || status === 'maintenance') return 'critical';
    if (status === 'warning') health = 'warning';
    else if (status !== 'passing') return undefined;
  }
  return health;
}

function stringRecord(value: unknown): Record<string, string> | undefined {
  if (value === null || value === undefined) return {};
  if (!isRecord(value)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') return undefined;
    out[k] = v;
  }
  return out;
}

/** Result of {@link mapHealthEntries}. @internal */
export interface MappedHealth {
  instances: ServiceInstance[];
  /** Entries that were malformed and left out. */
  dropped: number;
}

/**
 * Maps a `/v1/health/service/:name` body to instances, defensively: a body
 * that is not an array is a {@link BadResponseError}; an entry with a wrong
 * shape, another service's name, an unusable address or an absurd port is
 * dropped (never turned into a wrong instance).
 * @internal
 */
export function mapHealthEntries(body: unknown, service: string, passingOnly = true): MappedHealth {
  if (!Array.isArray(body)) throw new BadResponseError(`Consul health answer for "${service}" is not an array`);
  const instances: ServiceInstance[] = [];
  const keys = new Set<string>();
  let dropped = 0;
  for (const entry of body as unknown[]) {
    const instance = mapEntry(entry, service, passingOnly);
    if (instance === undefined || keys.has(instance.key)) {
      dropped++;
      continue;
    }
    keys.add(instance.key);
    instances.push(instance);
  }
  return { instances, dropped };
}

function mapEntry(entry: unknown, service: string, passingOnly: boolean): ServiceInstance | undefined {
  if (!isRecord(entry)) return undefined;
  const svc = entry['Service'];
  const node = entry['Node'];
  if (!isRecord(svc) || !isRecord(node)) return undefined;
  const id = svc['ID'];
  const name = svc['Service'];
  const port = svc['Port'];
  const nodeName = node['Node'];
  if (typeof id !== 'string' || id.length === 0 || id.length > 512) return undefined;
  if (name !== service) return undefined;
  if (typeof nodeName !== 'string' || nodeName.length === 0 || nodeName.length > 512) return undefined;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  const serviceAddress = svc['Address'];
  // An empty Service.Address means "the node's address".
  const address = typeof serviceAddress === 'string' && serviceAddress !== '' ? serviceAddress : node['Address'];
  if (!isConnectableAddress(address)) return undefined;
  const tagsIn = svc['Tags'] ?? [];
  if (!Array.isArray(tagsIn) || !tagsIn.every((t) => typeof t === 'string')) return undefined;
  const meta = stringRecord(svc['Meta']);
  if (meta === undefined) return undefined;
  const health = entryHealth(entry['Checks']);
  if (health === undefined || (passingOnly && health !== 'passing')) return undefined;
  let weights = { passing: 1, warning: 1 };
  const w = svc['Weights'];
  if (w !== undefined && w !== null) {
    if (!isRecord(w)) return undefined;
    const p = w['Passing'];
    const wa = w['Warning'];
    if (typeof p !== 'number' || typeof wa !== 'number') return undefined;
    weights = { passing: p, warning: wa };
  }
  const dc = node['Datacenter'];
  try {
    return createServiceInstance({
      key: `${nodeName}/${id}`,
      id,
      service,
      address,
      port,
      tags: tagsIn,
      meta,
      weights,
      datacenter: typeof dc === 'string' && dc !== '' ? dc : undefined,
      node: nodeName,
      health,
    });
  } catch {
    return undefined;
  }
}

function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/**
 * Resolves and watches services through Consul's health API
 * (`GET /v1/health/service/:name`), with blocking queries.
 *
 * Watch loop rules (Consul's blocking-query guidance, consul-template's loop):
 * the first call is immediate; later calls block on the last `X-Consul-Index`;
 * an index that goes backwards resets to 0, and 0 is never sent twice in a row
 * (it is sent as 1); the client timeout is `wait×17/16 + 5 s`, above Consul's
 * own jitter; polls are at least `minPollIntervalMs` + jitter apart; errors back
 * off exponentially with full jitter; subscribers hear only real changes.
 *
 * @example
 * ```ts
 * const resolver = new ConsulResolver({ address: '127.0.0.1:8500' });
 * const watch = resolver.watch('web', { tags: ['v2'] });
 * watch.on('update', (snapshot, change) => console.log(snapshot.instances.length, change.added));
 * watch.on('error', (error) => console.warn(error.message)); // the last snapshot stays, marked stale
 * await watch.ready({ timeoutMs: 5000 });
 * await resolver.close();
 * ```
 */
export class ConsulResolver implements Resolver<ConsulQuery> {
  /** The HTTP client in use. */
  readonly client: ConsulHttpClient;
  readonly #ownsClient: boolean;
  readonly #hub: WatchHub<CanonicalQuery>;
  readonly #waitMs: number;
  readonly #minGapMs: number;
  readonly #jitterMs: number;
  readonly #backoff: Required<BackoffOptions>;
  readonly #consistency: ConsulConsistency;
  readonly #cached: boolean;
  readonly #closeController = new AbortController();
  #closed = false;

  constructor(options: ConsulResolverOptions = {}) {
    const { client, env, waitMs, minPollIntervalMs, pollJitterMs, backoff, consistency, cached, ...connection } = options;
    this.#waitMs = checkNumber('waitMs', waitMs, 60_000, { min: 1000 });
    if (this.#waitMs > 600_000) throw new InvalidOptionError('waitMs', waitMs, 'must be at most 600 000 (Consul caps waits at 10 minutes)');
    this.#minGapMs = checkNumber('minPollIntervalMs', minPollIntervalMs, 100, { min: 0 });
    this.#jitterMs = checkNumber('pollJitterMs', pollJitterMs, 50, { min: 0 });
    this.#backoff = checkBackoff('backoff', backoff);
    this.#consistency = consistency ?? 'stale';
    if (!consistencies.includes(this.#consistency)) throw new InvalidOptionError('consistency', consistency, 'must be stale, default or consistent');
    this.#cached = cached ?? false;
    if (client !== undefined) {
      if (!(client instanceof ConsulHttpClient)) throw new InvalidOptionError('client', client, 'must be a ConsulHttpClient');
      this.client = client;
      this.#ownsClient = false;
    } else {
      this.client = new ConsulHttpClient(connection, env);
      this.#ownsClient = true;
    }
    this.#hub = new WatchHub<CanonicalQuery>('consul', (service, query, sink) => this.#run(service, query, sink));
  }

  /** Number of running long polls (one per distinct watched (service, query)). */
  get activeWatches(): number {
    return this.#hub.size;
  }

  #canonical(query: ConsulQuery | undefined): CanonicalQuery {
    const q = query ?? {};
    if (typeof q !== 'object' || q === null) throw new InvalidOptionError('query', q, 'must be an object');
    const tagsIn = q.tags ?? [];
    if (!Array.isArray(tagsIn)) throw new InvalidOptionError('tags', tagsIn, 'must be an array of tags');
    const tags = [...new Set(tagsIn.map((t, i) => validateTag(t, `tags[${i}]`)))].sort();
    const filter = q.filter;
    if (filter !== undefined && (typeof filter !== 'string' || filter.length === 0 || filter.length > 4096 || hasControlCharacter(filter))) {
      throw new InvalidOptionError('filter', filter, 'must be a non-empty expression of at most 4096 characters without control characters');
    }
    const datacenter = q.datacenter === undefined ? undefined : validateDatacenter(q.datacenter);
    const consistency = q.consistency ?? this.#consistency;
    if (!consistencies.includes(consistency)) throw new InvalidOptionError('consistency', consistency, 'must be stale, default or consistent');
    const cached = q.cached ?? this.#cached;
    if (cached && consistency === 'consistent') throw new InvalidOptionError('cached', cached, 'cannot be combined with consistency "consistent"');
    for (const flag of ['near', 'passingOnly', 'cached'] as const) {
      if (q[flag] !== undefined && typeof q[flag] !== 'boolean') throw new InvalidOptionError(flag, q[flag], 'must be a boolean');
    }
    return { tags, filter, datacenter, near: q.near ?? false, passingOnly: q.passingOnly ?? true, consistency, cached };
  }

  #queryParams(q: CanonicalQuery): Record<string, string | boolean | readonly string[] | undefined> {
    return {
      // Leave `passing` out rather than sending passing=false (Consul treats any value as true on old agents).
      passing: q.passingOnly || undefined,
      tag: q.tags.length > 0 ? q.tags : undefined,
      filter: q.filter,
      dc: q.datacenter,
      near: q.near ? '_agent' : undefined,
      stale: q.consistency === 'stale' || undefined,
      consistent: q.consistency === 'consistent' || undefined,
      cached: q.cached || undefined,
    };
  }

  async #fetch(service: string, q: CanonicalQuery, index: number | undefined, signal: AbortSignal, timeoutMs?: number): Promise<{ instances: ServiceInstance[]; info: ReturnType<typeof consulInfo> }> {
    const query = this.#queryParams(q);
    if (index !== undefined) {
      query['index'] = String(index);
      query['wait'] = `${Math.ceil(this.#waitMs / 1000)}s`;
    }
    const res = await this.client.request({
      path: `/v1/health/service/${encodeURIComponent(service)}`,
      query,
      signal,
      // Consul adds up to wait/16 of jitter to a blocking query: stay above it.
      timeoutMs: index !== undefined ? Math.ceil((this.#waitMs * 17) / 16) + 5000 : timeoutMs,
    });
    const { instances } = mapHealthEntries(res.body, service, q.passingOnly);
    return { instances, info: consulInfo(res.headers) };
  }

  async #run(service: string, q: CanonicalQuery, sink: WatchSink): Promise<void> {
    const signal = sink.signal;
    let index: number | undefined; // undefined: next call is immediate (non-blocking)
    let failures = 0;
    while (!signal.aborted) {
      try {
        const { instances, info } = await this.#fetch(service, q, index, signal);
        if (signal.aborted) return;
        failures = 0;
        // Never block on 0: it returns at once and would spin. So 0 counts as 1.
        const next = Math.max(1, info.index);
        // An index that went backwards (agent restarted, snapshot restore): start over.
        index = index !== undefined && next < index ? undefined : next;
        // A server without a known leader may serve old data (stale reads): publish it, flagged.
        // The agent's streaming backend (blocking health queries) and its cache always say
        // KnownLeader=false, so the header means something only from the blocking-query backend.
        const leaderless = info.knownLeader === false && info.queryBackend === 'blocking-query' && info.cacheHit === undefined;
        sink.publish(instances, { stale: leaderless, info });
        await sleep(this.#minGapMs + Math.random() * this.#jitterMs, signal);
      } catch (error) {
        if (signal.aborted) return;
        sink.fail(new ResolutionFailedError(service, 'consul', error));
        // After an outage the server's index may be unrelated to ours: ask immediately once back.
        index = undefined;
        await sleep(Math.max(this.#minGapMs, backoffDelay(failures++, this.#backoff)), signal);
      }
    }
  }

  #key(service: string, q: CanonicalQuery): string {
    return JSON.stringify([service, q.tags, q.filter ?? null, q.datacenter ?? null, q.near, q.passingOnly, q.consistency, q.cached]);
  }

  /**
   * Resolves once (a non-blocking query), or answers from a running watch's fresh snapshot.
   * @throws {@link NoHealthyInstancesError}, {@link ResolutionFailedError} (with `cause`),
   *   {@link InvalidServiceNameError}, {@link InvalidOptionError}, {@link ClosedError}, {@link AbortedError}.
   */
  async resolve(service: string, options: ConsulQuery & CallOptions = {}): Promise<readonly ServiceInstance[]> {
    if (this.#closed) throw new ClosedError('Resolver');
    validateServiceName(service);
    const { signal, timeoutMs, ...query } = options;
    const q = this.#canonical(query);
    const cached = this.#hub.peek(this.#key(service, q));
    let instances: readonly ServiceInstance[];
    if (cached && !cached.stale) {
      instances = cached.instances;
    } else {
      if (signal?.aborted) throw new AbortedError(`Resolving "${service}"`, signal.reason);
      const linked = signal ? AbortSignal.any([signal, this.#closeController.signal]) : this.#closeController.signal;
      try {
        instances = (await this.#fetch(service, q, undefined, linked, timeoutMs)).instances;
      } catch (error) {
        if (signal?.aborted) throw new AbortedError(`Resolving "${service}"`, signal.reason);
        if (this.#closed) throw new ClosedError('Resolver');
        throw new ResolutionFailedError(service, 'consul', error);
      }
    }
    if (instances.length === 0) throw new NoHealthyInstancesError(service);
    return instances;
  }

  /**
   * Watches a service. Equal (service, query) pairs share one long poll.
   * @throws {@link InvalidServiceNameError}, {@link InvalidOptionError}, {@link ClosedError}.
   */
  watch(service: string, query: ConsulQuery = {}): ServiceWatch {
    if (this.#closed) throw new ClosedError('Resolver');
    validateServiceName(service);
    const q = this.#canonical(query);
    return this.#hub.subscribe(this.#key(service, q), service, q);
  }

  /** Cancels every long poll at once; closes the client if the resolver created it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeController.abort(new ClosedError('Resolver'));
    await this.#hub.close();
    if (this.#ownsClient) await this.client.close();
  }

  /** Same as {@link ConsulResolver.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
