import { BadResponseError, ConsulHttpClient } from './consul-http.js';
import type { ConsulConnectionOptions } from './consul-config.js';
import {
  consulInfo,
  resolveBlockingQueryOptions,
  runBlockingQuery,
  type BlockingQueryOptions,
  type ResolvedBlockingQueryOptions,
} from './consul-blocking-query.js';
import {
  AbortedError,
  ClosedError,
  InvalidOptionError,
  NoHealthyInstancesError,
  ProxylessError,
  errorBrand,
  ResolutionFailedError,
} from './errors.js';
import type { CallOptions, Resolver, ServiceWatch, SnapshotSourceInfo } from './resolver.js';
import { createServiceInstance, isConnectableAddress, type HealthStatus, type ServiceInstance } from './service-instance.js';
import { checkKnownKeys, checkNumber, optionKeys, validateDatacenter, validateNamespace, validatePartition, validateServiceName, validateTag } from './validate.js';
import { WatchHub, type WatchSink } from './watch-hub.js';
import { describeConsulFailure } from './consul-failure.js';
import { CatalogWatch, consulCatalogRunner, type CatalogWatchOptions } from './consul-catalog-watch.js';
import { defaultResetGraceMs } from './reset-grace.js';

export { consulInfo };

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
  /**
   * Datacenters to fail over to, in order, while `datacenter` (or the agent's) has no healthy
   * instance: the first of them that has one serves the snapshot (`info.datacenter` says which),
   * until local instances return. Consul prepared-query `Failover.Datacenters` semantics, client-side.
   */
  failoverDatacenters?: readonly string[];
  /** Consul Enterprise namespace (`ns`). Default: the resolver's (`CONSUL_NAMESPACE`); not sent when unset. */
  namespace?: string;
  /** Consul Enterprise admin partition (`partition`). Default: the resolver's (`CONSUL_PARTITION`); not sent when unset. */
  partition?: string;
  /** Sort by round-trip estimate from the agent (`near=_agent`). Default false. */
  near?: boolean;
  /** Only instances whose every check passes (`?passing`). Default true. */
  passingOnly?: boolean;
  /** Read consistency. Default: the resolver's (`stale`). */
  consistency?: ConsulConsistency;
  /**
   * Use the agent's cache (`?cached`; not with `consistent`). With the agent's
   * `use_streaming_backend` (on by default), blocking health queries are then
   * served by Consul's streaming backend. Default: the resolver's (false).
   */
  cached?: boolean;
  /**
   * Resolve through this prepared query (name or ID; `GET /v1/query/:name/execute`) instead of
   * the health API: the query's own filters, `OnlyPassing` and `Failover` apply, on the servers
   * (`info.datacenter` says which datacenter served). Consul answers prepared queries without
   * blocking, so the watch polls every `preparedQueryIntervalMs`. The query must serve the watched
   * service. Reads go to the leader; `tags`, `filter`, `failoverDatacenters`, `consistency`,
   * `cached`, `namespace` and `partition` cannot be combined with it (the query defines them).
   */
  preparedQuery?: string;
}

/** Options of {@link ConsulResolver}. */
export interface ConsulResolverOptions extends ConsulConnectionOptions, BlockingQueryOptions {
  /** An existing client to use (the resolver then does not close it). Default: a new client from the connection options and environment. */
  client?: ConsulHttpClient;
  /** Environment for connection defaults, `CONSUL_NAMESPACE` and `CONSUL_PARTITION`. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Default read consistency. Default `stale`. */
  consistency?: ConsulConsistency;
  /** Use the agent cache by default. Default false. */
  cached?: boolean;
  /**
   * Largest acceptable `X-Consul-LastContact` of a `stale` read, in ms (Consul's own
   * `max_stale` idea). A staler answer, or one from a server that knows no leader,
   * is asked again with default consistency; when that fails, the stale answer is
   * published flagged `stale` (and never when it would empty the set). Default 5000.
   */
  maxStaleMs?: number;
  /** Default namespace (Enterprise). Default: `CONSUL_NAMESPACE`. */
  namespace?: string;
  /** Default admin partition (Enterprise). Default: `CONSUL_PARTITION`. */
  partition?: string;
  /** Poll interval of a watch through a prepared query (`preparedQuery`), in ms. Default 5000; at least 100. */
  preparedQueryIntervalMs?: number;
  /**
   * Grace after the agent's history reset (its `X-Consul-Index` went backwards: e.g. a `-dev`
   * agent restarted, a snapshot restored; an agent that was merely unreachable for a while is
   * not a reset), in ms: an instance missing from the
   * answers is kept, the snapshot marked stale, until it registers again or the grace ends;
   * new instances are added at once. Set it to the TTL of your registrations (a live registrar
   * is back within about half of it). An empty answer without a reset is believed at once.
   * Default 15 000 (the registrar's default TTL); 0 believes every answer at once.
   */
  resetGraceMs?: number;
}

/** A canonical query: sorted, deduplicated, defaults applied. @internal */
interface CanonicalQuery {
  tags: string[];
  filter: string | undefined;
  datacenter: string | undefined;
  failover: string[];
  namespace: string | undefined;
  partition: string | undefined;
  near: boolean;
  passingOnly: boolean;
  consistency: ConsulConsistency;
  cached: boolean;
  preparedQuery: string | undefined;
}

/** One datacenter's accepted answer. @internal */
interface Answer {
  instances: ServiceInstance[];
  info: SnapshotSourceInfo;
  /** Published flagged stale (a lagging read that could not be refreshed). */
  stale: boolean;
}

const consulResolverKeys = optionKeys<ConsulResolverOptions>({
  address: true, secure: true, token: true, tls: true, timeoutMs: true, connectTimeoutMs: true, maxResponseBytes: true, maxConnections: true, http2: true,
  waitMs: true, rateLimit: true, backoff: true, probeMaxMs: true, recoverySpreadMs: true, watchIdleMs: true,
  client: true, env: true, consistency: true, cached: true, maxStaleMs: true, namespace: true, partition: true, preparedQueryIntervalMs: true, resetGraceMs: true,
});

const consistencies: readonly string[] = ['stale', 'default', 'consistent'];

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

/** Thrown (and reported as the watch's error) when an empty answer from a non-leader read could not be confirmed. */
class UnconfirmedEmptyError extends ProxylessError {
  // Internal, and its code is shared with ResolutionFailedError: branded by name so the two never match.
  static override readonly brand: symbol = errorBrand('UnconfirmedEmptyError');

  override get name(): string {
    return 'UnconfirmedEmptyError';
  }

  constructor(service: string, cause: unknown) {
    super('ERR_RESOLUTION_FAILED', `Consul answered an empty set for "${service}" from a stale read, and a consistent read to confirm it failed`, { cause });
  }
}

/**
 * The healthy instances of a service registered in Consul: once with
 * {@link ConsulResolver.resolve}, or kept up to date with
 * {@link ConsulResolver.watch}, which pushes a new snapshot as soon as an
 * instance is added, removed or changes health. Give it to
 * `createClient`/`createDispatcher` of `@proxyless/http-client` and each request
 * picks among the current instances, with no lookup on the request path.
 *
 * It talks to the Consul agent at `CONSUL_HTTP_ADDR` (default
 * `127.0.0.1:8500`; `CONSUL_HTTP_TOKEN` and the TLS variables are honoured,
 * or pass `address`, `token`…). Every watch of one service shares one long poll,
 * however many clients subscribe; when Consul cannot be reached the last good
 * snapshot stays in use (marked stale) and the watch retries with backoff.
 * {@link ConsulResolver.close} stops every watch and leaves no timer or socket behind.
 *
 * How: Consul's health API (`GET /v1/health/service/:name`) with blocking
 * queries, through core's one blocking-query loop ({@link runBlockingQuery}:
 * token-bucket rate limit, index rules, jittered backoff, shared reachability
 * probe). On top of it, for each answer:
 * - a `stale` read whose server lost its leader, or whose `X-Consul-LastContact`
 *   exceeds `maxStaleMs`, is asked again with default consistency;
 * - an empty set from a stale or cached read that would replace a non-empty one
 *   (or be the first answer) is confirmed with a `consistent` read first:
 *   publishing an empty set is a decision, never an accident;
 * - with `failoverDatacenters`, while the local datacenter has no healthy
 *   instance, the first listed datacenter that has one serves the snapshot.
 *
 * @example
 * ```ts
 * const resolver = new ConsulResolver({ address: '127.0.0.1:8500' });
 * const watch = resolver.watch('web', { tags: ['v2'], failoverDatacenters: ['dc2'] });
 * watch.on('update', (snapshot, change) => console.log(snapshot.info?.datacenter, snapshot.instances.length, change.added));
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
  readonly #loop: ResolvedBlockingQueryOptions;
  readonly #consistency: ConsulConsistency;
  readonly #cached: boolean;
  readonly #maxStaleMs: number;
  readonly #namespace: string | undefined;
  readonly #partition: string | undefined;
  readonly #preparedLoop: ResolvedBlockingQueryOptions;
  readonly #catalogs = new Set<CatalogWatch>();
  readonly #closeController = new AbortController();
  readonly #resetGraceMs: number;
  #closed = false;

  constructor(options: ConsulResolverOptions = {}) {
    checkKnownKeys('', options, consulResolverKeys, 'ConsulResolver');
    const { client, env, waitMs, rateLimit, backoff, probeMaxMs, recoverySpreadMs, watchIdleMs, consistency, cached, maxStaleMs, namespace, partition, preparedQueryIntervalMs, resetGraceMs, ...connection } = options;
    const environment = env ?? process.env;
    this.#loop = resolveBlockingQueryOptions({
      ...(waitMs !== undefined ? { waitMs } : {}),
      ...(rateLimit !== undefined ? { rateLimit } : {}),
      ...(backoff !== undefined ? { backoff } : {}),
      ...(probeMaxMs !== undefined ? { probeMaxMs } : {}),
      ...(recoverySpreadMs !== undefined ? { recoverySpreadMs } : {}),
      ...(watchIdleMs !== undefined ? { watchIdleMs } : {}),
    });
    this.#resetGraceMs = checkNumber('resetGraceMs', resetGraceMs, defaultResetGraceMs, { integer: true, min: 0, max: 3_600_000 });
    // Prepared queries do not block: the same loop paces plain reads at one per interval.
    const pollMs = checkNumber('preparedQueryIntervalMs', preparedQueryIntervalMs, 5000, { min: 100, max: 3_600_000 });
    this.#preparedLoop = { ...this.#loop, rateLimit: { burst: 1, minIntervalMs: pollMs, jitterMs: Math.round(pollMs / 10) } };
    this.#consistency = consistency ?? 'stale';
    if (!consistencies.includes(this.#consistency)) throw new InvalidOptionError('consistency', consistency, 'must be stale, default or consistent');
    this.#cached = cached ?? false;
    if (typeof this.#cached !== 'boolean') throw new InvalidOptionError('cached', cached, 'must be a boolean');
    this.#maxStaleMs = checkNumber('maxStaleMs', maxStaleMs, 5000, { min: 0 });
    const ns = namespace ?? (environment['CONSUL_NAMESPACE'] || undefined);
    this.#namespace = ns === undefined ? undefined : validateNamespace(ns, namespace === undefined ? 'CONSUL_NAMESPACE' : 'namespace');
    const part = partition ?? (environment['CONSUL_PARTITION'] || undefined);
    this.#partition = part === undefined ? undefined : validatePartition(part, partition === undefined ? 'CONSUL_PARTITION' : 'partition');
    if (client !== undefined) {
      if (!(client instanceof ConsulHttpClient)) throw new InvalidOptionError('client', client, 'must be a ConsulHttpClient');
      this.client = client;
      this.#ownsClient = false;
    } else {
      this.client = new ConsulHttpClient(connection, environment);
      this.#ownsClient = true;
    }
    this.#hub = new WatchHub<CanonicalQuery>('consul', (service, query, sink) => this.#run(service, query, sink), { resetGraceMs: this.#resetGraceMs });
  }

  /** Discovery of `service` failed with `error`: the error names the agent, its address and what sets it (the registrar's line). */
  discoveryError(service: string, error: unknown): ResolutionFailedError {
    return new ResolutionFailedError(service, 'consul', error, describeConsulFailure(error, this.client.connection.origin, `service:read on "${service}" and node:read`));
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
    const failoverIn = q.failoverDatacenters ?? [];
    if (!Array.isArray(failoverIn) || failoverIn.length > 16) throw new InvalidOptionError('failoverDatacenters', failoverIn, 'must be an array of at most 16 datacenter names');
    const failover = [...new Set(failoverIn.map((dc, i) => validateDatacenter(dc, `failoverDatacenters[${i}]`)))].filter((dc) => dc !== datacenter);
    const namespace = q.namespace === undefined ? this.#namespace : validateNamespace(q.namespace);
    const partition = q.partition === undefined ? this.#partition : validatePartition(q.partition);
    const consistency = q.consistency ?? this.#consistency;
    if (!consistencies.includes(consistency)) throw new InvalidOptionError('consistency', consistency, 'must be stale, default or consistent');
    const cached = q.cached ?? this.#cached;
    if (cached && consistency === 'consistent') throw new InvalidOptionError('cached', cached, 'cannot be combined with consistency "consistent"');
    for (const flag of ['near', 'passingOnly', 'cached'] as const) {
      if (q[flag] !== undefined && typeof q[flag] !== 'boolean') throw new InvalidOptionError(flag, q[flag], 'must be a boolean');
    }
    if (q.preparedQuery !== undefined) {
      const preparedQuery = validateServiceName(q.preparedQuery, 'preparedQuery');
      for (const option of ['tags', 'filter', 'failoverDatacenters', 'consistency', 'cached', 'namespace', 'partition'] as const) {
        if (q[option] !== undefined) throw new InvalidOptionError(option, q[option], 'cannot be combined with preparedQuery (the prepared query defines it)');
      }
      // The query's definition decides; leader reads, so an empty answer is the servers' decision.
      return { tags: [], filter: undefined, datacenter, failover: [], namespace: undefined, partition: undefined, near: q.near ?? false, passingOnly: q.passingOnly ?? true, consistency: 'default', cached: false, preparedQuery };
    }
    return { tags, filter, datacenter, failover, namespace, partition, near: q.near ?? false, passingOnly: q.passingOnly ?? true, consistency, cached, preparedQuery: undefined };
  }

  #queryParams(q: CanonicalQuery, dc: string | undefined, consistency: ConsulConsistency, cached: boolean): Record<string, string | boolean | readonly string[] | undefined> {
    return {
      // Leave `passing` out rather than sending passing=false (Consul treats any value as true on old agents).
      passing: q.passingOnly || undefined,
      tag: q.tags.length > 0 ? q.tags : undefined,
      filter: q.filter,
      dc,
      // Enterprise only: the free edition refuses any value, so they go out only when configured.
      ns: q.namespace,
      partition: q.partition,
      near: q.near ? '_agent' : undefined,
      stale: consistency === 'stale' || undefined,
      consistent: consistency === 'consistent' || undefined,
      cached: cached || undefined,
    };
  }

  #path(service: string): string {
    return `/v1/health/service/${encodeURIComponent(service)}`;
  }

  #preparedPath(name: string): string {
    return `/v1/query/${encodeURIComponent(name)}/execute`;
  }

  #preparedParams(q: CanonicalQuery): Record<string, string | undefined> {
    return { dc: q.datacenter, near: q.near ? '_agent' : undefined };
  }

  /** One prepared-query read (`resolve()`). */
  async #fetchPrepared(service: string, q: CanonicalQuery, name: string, signal: AbortSignal, timeoutMs?: number): Promise<Answer> {
    const res = await this.client.request({ path: this.#preparedPath(name), query: this.#preparedParams(q), signal, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
    const { indexValid: _ignored, ...info } = consulInfo(res.headers);
    return decodePrepared(res.body, info, service, name, q.passingOnly);
  }

  /** The poll loop of a watch through a prepared query: failover happens on the servers. */
  #runPrepared(service: string, q: CanonicalQuery, name: string, sink: WatchSink): Promise<void> {
    return runBlockingQuery(this.client, {
      path: this.#preparedPath(name),
      query: this.#preparedParams(q),
      signal: sink.signal,
      poll: true,
      decode: (body, info) => decodePrepared(body, info, service, name, q.passingOnly),
      onAnswer: (answer) => sink.publish(answer.instances, { info: answer.info }),
      onError: (error) => sink.fail(this.discoveryError(service, error)),
      onReset: () => sink.reset(),
    }, this.#preparedLoop);
  }

  /** One non-blocking read with the given consistency (no cache). */
  async #fetchOnce(service: string, q: CanonicalQuery, dc: string | undefined, consistency: ConsulConsistency, cached: boolean, signal: AbortSignal, timeoutMs?: number): Promise<Answer> {
    const res = await this.client.request({
      path: this.#path(service),
      query: this.#queryParams(q, dc, consistency, cached),
      signal,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    });
    const { instances } = mapHealthEntries(res.body, service, q.passingOnly);
    const { indexValid: _ignored, ...info } = consulInfo(res.headers);
    return { instances, info: withDatacenter(info, dc, instances), stale: false };
  }

  /**
   * Checks one answer of a stale or cached read before it may be published:
   * refreshes a lagging one, confirms an empty one. Throws (the loop then backs
   * off and the last snapshot stays) when an empty set cannot be confirmed.
   */
  async #vet(service: string, q: CanonicalQuery, dc: string | undefined, instances: ServiceInstance[], info: SnapshotSourceInfo, previous: readonly ServiceInstance[] | undefined, signal: AbortSignal): Promise<Answer> {
    let answer: Answer = { instances, info: withDatacenter(info, dc, instances), stale: false };
    let verified = q.consistency !== 'stale' && !q.cached;
    // The agent's streaming backend and its cache always say KnownLeader=false, so the
    // consistency headers mean something only from a plain blocking-query read.
    const plainRead = !q.cached && info.cacheHit === undefined && info.queryBackend !== 'streaming';
    const leaderless = plainRead && info.knownLeader === false;
    const lagging = q.consistency === 'stale' && plainRead && (leaderless || (info.lastContactMs ?? 0) > this.#maxStaleMs);
    if (lagging) {
      try {
        answer = await this.#fetchOnce(service, q, dc, 'default', false, signal);
        verified = true;
      } catch (error) {
        if (signal.aborted) throw error;
        // No leader to ask: the stale data is all there is; publish it flagged.
        answer.stale = true;
      }
    }
    const wouldEmpty = answer.instances.length === 0 && (previous === undefined || previous.length > 0);
    if (wouldEmpty && !verified) {
      try {
        answer = await this.#fetchOnce(service, q, dc, 'consistent', false, signal);
      } catch (error) {
        if (signal.aborted) throw error;
        throw new UnconfirmedEmptyError(service, error);
      }
    }
    return answer;
  }

  /** The health loop of one datacenter; `accept` receives vetted answers. */
  #watchDatacenter(service: string, q: CanonicalQuery, dc: string | undefined, sink: WatchSink, signal: AbortSignal, previous: () => readonly ServiceInstance[] | undefined, accept: (answer: Answer) => void, fail: (error: Error) => void): Promise<void> {
    return runBlockingQuery(this.client, {
      path: this.#path(service),
      query: this.#queryParams(q, dc, q.consistency, q.cached),
      signal,
      decode: (body) => mapHealthEntries(body, service, q.passingOnly).instances,
      onAnswer: async (instances, info) => {
        const answer = await this.#vet(service, q, dc, instances, info, previous(), signal);
        if (signal.aborted) return;
        accept(answer);
        // Data from a server without a (recent) leader: do not block on it for a whole wait; look again soon.
        return answer.stale ? 'retry' : undefined;
      },
      onError: fail,
      // The agent restarted (or its data was restored): hold the instances it forgot for the grace.
      onReset: () => sink.reset(),
    }, this.#loop);
  }

  async #run(service: string, q: CanonicalQuery, sink: WatchSink): Promise<void> {
    if (q.preparedQuery !== undefined) {
      await this.#runPrepared(service, q, q.preparedQuery, sink);
      return;
    }
    const fail = (error: Error): void => sink.fail(this.discoveryError(service, error));
    if (q.failover.length === 0) {
      await this.#watchDatacenter(service, q, q.datacenter, sink, sink.signal, () => sink.current?.instances, (a) => sink.publish(a.instances, { stale: a.stale, info: a.info }), fail);
      return;
    }
    await this.#runWithFailover(service, q, sink, fail);
  }

  /**
   * Local loop always on; remote loops (one per failover datacenter) only
   * while the local datacenter has no healthy instance. The first datacenter
   * in order with instances serves; a failing one is skipped.
   */
  async #runWithFailover(service: string, q: CanonicalQuery, sink: WatchSink, fail: (error: Error) => void): Promise<void> {
    let local: Answer | undefined;
    const remote = new Map<string, Answer | Error>();
    let remoteStop: AbortController | undefined;
    const remoteLoops = new Set<Promise<void>>();
    const decide = (): void => {
      if (sink.signal.aborted || local === undefined) return;
      if (local.instances.length > 0) {
        remoteStop?.abort();
        remoteStop = undefined;
        remote.clear();
        sink.publish(local.instances, { stale: local.stale, info: local.info });
        return;
      }
      if (!remoteStop) startRemotes();
      for (const dc of q.failover) {
        const r = remote.get(dc);
        if (r === undefined) return; // an earlier datacenter has not answered yet
        if (r instanceof Error) {
          // Serving from the failing datacenter: keep its snapshot (flagged stale) rather than drop to empty.
          if (sink.current?.info?.datacenter === dc && sink.current.instances.length > 0) return;
          continue;
        }
        if (r.instances.length > 0) {
          sink.publish(r.instances, { stale: r.stale, info: r.info });
          return;
        }
      }
      // Local confirmed empty and no failover datacenter has anything: that is the answer.
      sink.publish([], { stale: local.stale, info: local.info });
    };
    const startRemotes = (): void => {
      const stop = new AbortController();
      remoteStop = stop;
      const signal = AbortSignal.any([stop.signal, sink.signal]);
      for (const dc of q.failover) {
        const previous = (): readonly ServiceInstance[] | undefined => {
          const r = remote.get(dc);
          return r === undefined || r instanceof Error ? undefined : r.instances;
        };
        const loop = this.#watchDatacenter(service, q, dc, sink, signal, previous, (answer) => {
          if (stop.signal.aborted) return;
          remote.set(dc, answer);
          decide();
        }, (error) => {
          if (stop.signal.aborted) return;
          remote.set(dc, error);
          // Serving from this datacenter: keep its snapshot, flagged stale.
          if (sink.current?.info?.datacenter === dc) fail(error);
          decide();
        });
        remoteLoops.add(loop);
        void loop.finally(() => remoteLoops.delete(loop));
      }
    };
    await this.#watchDatacenter(service, q, q.datacenter, sink, sink.signal, () => local?.instances, (answer) => {
      local = answer;
      decide();
    }, fail);
    remoteStop?.abort();
    await Promise.all([...remoteLoops]);
  }

  #key(service: string, q: CanonicalQuery): string {
    return JSON.stringify([service, q.tags, q.filter ?? null, q.datacenter ?? null, q.failover, q.namespace ?? null, q.partition ?? null, q.near, q.passingOnly, q.consistency, q.cached, q.preparedQuery ?? null]);
  }

  /**
   * Resolves once (non-blocking reads, with the same lag, empty-set and failover
   * rules as a watch), or answers from a running watch's fresh snapshot.
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
        instances = [];
        if (q.preparedQuery !== undefined) {
          instances = (await this.#fetchPrepared(service, q, q.preparedQuery, linked, timeoutMs)).instances;
        } else {
          for (const dc of [q.datacenter, ...q.failover]) {
            const first = await this.#fetchOnce(service, q, dc, q.consistency, q.cached, linked, timeoutMs);
            instances = (await this.#vet(service, q, dc, first.instances, first.info, undefined, linked)).instances;
            if (instances.length > 0) break;
          }
        }
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
   * Watches a service. Equal (service, query) pairs share one long poll.
   * @throws {@link InvalidServiceNameError}, {@link InvalidOptionError}, {@link ClosedError}.
   */
  watch(service: string, query: ConsulQuery = {}): ServiceWatch {
    if (this.#closed) throw new ClosedError('Resolver');
    validateServiceName(service);
    const q = this.#canonical(query);
    return this.#hub.subscribe(this.#key(service, q), service, q);
  }

  /**
   * Watches the catalog's service list (`GET /v1/catalog/services`) on the same
   * blocking-query loop, rate-limited harder by default (its index moves on every
   * catalog write in the datacenter). Closed with the resolver.
   * @throws {@link InvalidOptionError}, {@link ClosedError}.
   */
  watchServices(options: CatalogWatchOptions = {}): CatalogWatch {
    if (this.#closed) throw new ClosedError('Resolver');
    const { resetGraceMs, ...rest } = options;
    const grace = checkNumber('resetGraceMs', resetGraceMs, this.#resetGraceMs, { integer: true, min: 0, max: 3_600_000 });
    const run = consulCatalogRunner(this.client, {
      ...rest,
      namespace: options.namespace ?? this.#namespace,
      partition: options.partition ?? this.#partition,
    }, this.#loop);
    const watch = new CatalogWatch(run, (w) => this.#catalogs.delete(w), { resetGraceMs: grace });
    this.#catalogs.add(watch);
    return watch;
  }

  /** Cancels every long poll at once; closes the client if the resolver created it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeController.abort(new ClosedError('Resolver'));
    await Promise.all([this.#hub.close(), ...[...this.#catalogs].map((c) => c.close())]);
    if (this.#ownsClient) await this.client.close();
  }

  /** Same as {@link ConsulResolver.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Maps a prepared-query answer (`{ Service, Nodes, Datacenter, … }`, `Nodes` shaped like health
 * entries) to instances; an answer for another service is a {@link BadResponseError}.
 */
function decodePrepared(body: unknown, info: SnapshotSourceInfo, service: string, name: string, passingOnly: boolean): Answer {
  if (!isRecord(body)) throw new BadResponseError(`Consul prepared query "${name}" answered something that is not an object`);
  if (body['Service'] !== service) {
    const served = typeof body['Service'] === 'string' ? `"${body['Service'].slice(0, 64)}"` : 'no service';
    throw new BadResponseError(`Consul prepared query "${name}" serves ${served}, not "${service}"`);
  }
  const { instances } = mapHealthEntries(body['Nodes'], service, passingOnly);
  const dc = body['Datacenter'];
  return { instances, info: withDatacenter(info, typeof dc === 'string' && dc !== '' ? dc : undefined, instances), stale: false };
}

/** Adds the serving datacenter to snapshot info: the one asked, else the instances' own. */
function withDatacenter(info: SnapshotSourceInfo, dc: string | undefined, instances: readonly ServiceInstance[]): SnapshotSourceInfo {
  const datacenter = dc ?? instances[0]?.datacenter;
  return datacenter === undefined ? info : { ...info, datacenter };
}
