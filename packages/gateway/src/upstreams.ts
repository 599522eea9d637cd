/**
 * The gateway's contact with discovery and balancing: per routed service, a
 * `@proxyless/http-client` client over the registry's resolver (a Consul
 * health watch, or an etcd watch), and the registry's list of services. The
 * rest of the gateway codes against the small types here.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { BadResponseError, ConsulHttpClient, ConsulResolver, InvalidOptionError, TimeoutError, isProxylessError, runBlockingQuery, type CatalogWatch, type CatalogWatchOptions, type Resolver, type ServiceInstance, type ServiceSnapshot, type ServiceWatch } from '@proxyless/core';
// The packages' own failure sentences (internal, unsupported API): the gateway logs what the registrar and resolvers log.
import { describeConsulFailure } from '@proxyless/core/internal';
// @proxyless/etcd is an optional peer: loaded only for `registry: "etcd"`, so a Consul user need not install it.
import type { EtcdClient, EtcdResolver } from '@proxyless/etcd';
import { createClient, instanceScheme, type ClientOptions, type EndpointInfo, type ProxylessClient, type RequestPolicy } from '@proxyless/http-client';

/** The balancing client's options the gateway's `backends` config sets. */
export type BackendClientOptions = Pick<ClientOptions, 'allowH2' | 'tls'>;
import { consulRegistry, type RegistrarOptions } from '@proxyless/registrar';
import type { EndpointStatus, MeasuredLatency, UpstreamEvent } from './status-page.js';

/** One forwarded request. Bodies stream; nothing is buffered. */
export interface UpstreamRequest {
  readonly method: string;
  /** Path and query string, as sent to the instance. */
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  /** Request body stream, or null when there is none. */
  readonly body: Readable | null;
  /** Time limit of each try (to the response headers, then between body chunks), in ms. */
  readonly timeoutMs: number;
  /**
   * Extra tries on other instances. The client only retries what is safe: a
   * connection that never reached the instance, or an idempotent method
   * without a streamed (unreplayable) body.
   */
  readonly retries: number;
  /** Statuses retried like failures. */
  readonly retryOnStatus: readonly number[];
}

/**
 * Where an answer's head and body go, as they come from the instance (no body
 * stream in between): the gateway writes them straight to its client's response.
 */
export interface AnswerSink {
  /** The head; returns false to pause the body until `resume` is called. */
  headers(statusCode: number, rawHeaders: Buffer[], headers: IncomingHttpHeaders, resume: () => void): boolean;
  /** A body chunk; returns false to pause the body until `resume` is called. */
  data(chunk: Buffer): boolean;
  end(): void;
  /** The instance broke off its body (or the answer was aborted). */
  error(error: Error): void;
}

/** An instance's answer: its head now, its body once {@link UpstreamAnswer.pipe} gives it somewhere to go. */
export interface UpstreamAnswer {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  /** `address:port` of the endpoint that answered. */
  readonly endpoint: string;
  readonly attempts: number;
  /** Sends the head and then the body to `sink`, with its back-pressure. */
  pipe(sink: AnswerSink): void;
  /** Drops the answer: its connection is closed, the sink (if any) gets `error`. */
  abort(): void;
}

/** A forwarded request in progress. */
export interface ForwardedRequest {
  /** The kept answer (after retries on other instances); rejects with the client's typed error. */
  readonly response: Promise<UpstreamAnswer>;
  /** Stops the call before it answered (the client went away): `response` rejects. */
  stop(): void;
}

/** An endpoint a raw connection may go to. */
export interface ConnectTarget {
  /** `address:port` (`[v6]:port`), as the status page shows it. */
  readonly label: string;
  readonly host: string;
  readonly port: number;
  /** It speaks HTTPS (meta `scheme: https` or the tag `https`, as the balancing client decides): connect with TLS. */
  readonly tls: boolean;
}

/** A balancing client for one service. */
export interface Upstream {
  readonly service: string;
  /** The longest silence between two response body chunks its pools allow, ms (undici's `bodyTimeout`, fixed per pool). */
  readonly idleTimeoutMs: number;
  /**
   * Exchanges forwarded through it whose answer has not ended yet, kept by
   * the gateway: an upstream replaced by a reload is closed once it reaches 0.
   */
  active: number;
  /**
   * Forwards a request through the balancing client's dispatcher path: each
   * try is dispatched with a handler, and the kept answer's body goes to the
   * caller's sink as undici reads it (no body stream, no AbortController).
   */
  forward(request: UpstreamRequest): ForwardedRequest;
  /**
   * The endpoints a raw connection (a WebSocket upgrade) may go to now: ready
   * ones (breaker closed, not ejected). Waits up to `waitMs` for the first
   * snapshot of a service just discovered.
   */
  connectable(waitMs: number): Promise<ConnectTarget[]>;
  stats(): EndpointStatus[];
  /** The measured latency samples per endpoint label (for merging several workers' windows). */
  samples(): Record<string, number[]>;
  close(): Promise<void>;
}

/**
 * One service's upstream: one `@proxyless/http-client` client shared by
 * every route to the service (one set of pools, breakers and statistics);
 * each route's timeout and retry settings are a request policy, built once
 * per distinct setting and passed per request.
 */
class ServiceUpstream implements Upstream {
  readonly #client: ProxylessClient;
  /** A second subscriber to the resolver's shared watch of the service: its current instances as the client first got them. */
  readonly #watch: ServiceWatch;
  #instances = new Map<string, ServiceInstance>();
  active = 0;
  readonly #policies = new Map<string, RequestPolicy>();
  #lastPolicy: { retryOnStatus: readonly number[]; timeoutMs: number; retries: number; policy: RequestPolicy } | undefined;
  /** Measured time to response headers per endpoint label: what the status page calls latency (the EWMA is the balancer's cost). */
  readonly #latency = new Map<string, LatencyWindow>();

  constructor(
    readonly service: string,
    resolver: Resolver,
    onEvent: (event: UpstreamEvent) => void,
    readonly idleTimeoutMs: number,
    backend: BackendClientOptions,
  ) {
    // The client's own per-try timeout is its pools' body timeout (the gap between body chunks); requests carry their route's policy.
    // Its deadline leaves room for two retries, so the client's config check has nothing to say.
    this.#client = createClient({ service, resolver, perTryTimeoutMs: idleTimeoutMs, timeoutMs: idleTimeoutMs * 3, ...backend });
    const report = (event: string) => (endpoint: EndpointInfo): void => onEvent({ at: Date.now(), service, event, endpoint: endpoint.label });
    this.#client.on('endpointAdded', report('added'));
    this.#client.on('endpointRemoved', report('removed'));
    this.#client.on('breakerOpen', report('breaker open'));
    this.#client.on('breakerHalfOpen', report('breaker half-open'));
    this.#client.on('breakerClose', report('breaker closed'));
    this.#client.on('eject', report('ejected'));
    this.#client.on('restore', report('restored'));
    this.#client.on('error', () => undefined); // the last good endpoints stay in use
    // The instances by key, for the scheme of an upgrade's connection (the client's stats carry labels only).
    // An empty answer keeps the last ones: the client keeps its endpoints against one too.
    const remember = (snapshot: ServiceSnapshot): void => {
      if (snapshot.instances.length > 0) this.#instances = new Map(snapshot.instances.map((i) => [i.key, i]));
    };
    this.#watch = resolver.watch(service);
    if (this.#watch.current) remember(this.#watch.current);
    this.#watch.on('update', remember);
    this.#watch.on('error', () => undefined);
  }

  /** The route's policy: each try gets `timeoutMs`, and the deadline leaves every try its full time. */
  #policy(req: UpstreamRequest): RequestPolicy {
    // A route's settings are one object for its lifetime: found by identity, not by building a key string per request.
    const last = this.#lastPolicy;
    if (last?.retryOnStatus === req.retryOnStatus && last.timeoutMs === req.timeoutMs && last.retries === req.retries) return last.policy;
    const id = `${req.timeoutMs}|${req.retries}|${req.retryOnStatus.join(',')}`;
    let policy = this.#policies.get(id);
    if (!policy) {
      policy = this.#client.policy({
        perTryTimeoutMs: req.timeoutMs,
        timeoutMs: req.timeoutMs * (req.retries + 1) + 1_000,
        retry: req.retries === 0 ? false : { maxRetries: req.retries, retryOnStatuses: req.retryOnStatus },
      });
      this.#policies.set(id, policy);
    }
    this.#lastPolicy = { retryOnStatus: req.retryOnStatus, timeoutMs: req.timeoutMs, retries: req.retries, policy };
    return policy;
  }

  forward(req: UpstreamRequest): ForwardedRequest {
    const startedAt = performance.now();
    const call = this.#client.forward({
      method: req.method,
      path: req.path,
      headers: req.headers,
      body: req.body,
      policy: this.#policy(req),
    });
    const response = call.response.then((res): UpstreamAnswer => {
      // One try: the time is this endpoint's own. After a retry it also holds the failed tries, so it is left out.
      if (res.attempts === 1) {
        let window = this.#latency.get(res.endpoint.label);
        if (!window) this.#latency.set(res.endpoint.label, (window = new LatencyWindow()));
        window.add(performance.now() - startedAt);
      }
      return new ServiceAnswer(res);
    });
    return { response, stop: () => call.stop('caller') };
  }

  async connectable(waitMs: number): Promise<ConnectTarget[]> {
    const ready = (): ConnectTarget[] => {
      const out: ConnectTarget[] = [];
      for (const e of this.#client.stats().endpoints) {
        if (e.health !== 'ready') continue;
        const instance = this.#instances.get(e.key);
        const colon = e.label.lastIndexOf(':');
        out.push({
          label: e.label,
          host: instance?.address ?? e.label.slice(0, colon).replace(/^\[|\]$/g, ''),
          port: instance?.port ?? Number(e.label.slice(colon + 1)),
          tls: instance !== undefined && instanceScheme(instance) === 'https',
        });
      }
      return out;
    };
    let labels = ready();
    if (labels.length > 0 || this.#client.stats().discovery.source !== undefined) return labels;
    // No snapshot yet (a service the catalog just listed): wait for the first, bounded.
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#client.off('update', done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      this.#client.on('update', done);
    });
    labels = ready();
    return labels;
  }

  samples(): Record<string, number[]> {
    return Object.fromEntries([...this.#latency].map(([label, window]) => [label, window.values()]));
  }

  stats(): EndpointStatus[] {
    const endpoints = this.#client.stats().endpoints;
    // Endpoints that left take their samples with them.
    const live = new Set(endpoints.map((e) => e.label));
    for (const label of this.#latency.keys()) if (!live.has(label)) this.#latency.delete(label);
    return endpoints.map((e) => ({
      key: e.key,
      id: e.key.slice(e.key.lastIndexOf('/') + 1),
      label: e.label,
      health: 'passing',
      inFlight: e.inFlight,
      costMs: round1(e.ewmaMs),
      latency: this.#latency.get(e.label)?.summary() ?? { samples: 0, p50Ms: null, p99Ms: null, meanMs: null },
      successes: e.successes,
      failures: e.failures,
      breaker: e.breaker,
      ejected: e.ejected,
      reportedLoad: e.loadReport === undefined ? null : { utilization: e.loadReport.utilization ?? null, rps: e.loadReport.rps ?? null, ageMs: Math.round(e.loadReport.ageMs), usable: e.loadReport.usable },
    }));
  }

  async close(): Promise<void> {
    await this.#watch.close();
    await this.#client.close();
  }
}

/** The client's kept answer to a forwarded request. */
type ForwardedResponse = Awaited<ReturnType<ProxylessClient['forward']>['response']>;

/** An {@link UpstreamAnswer} over the client's answer: one object per answer, no closures. */
class ServiceAnswer implements UpstreamAnswer {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly endpoint: string;
  readonly attempts: number;
  readonly #body: ForwardedResponse['body'];

  constructor(res: ForwardedResponse) {
    this.statusCode = res.statusCode;
    this.headers = res.headers;
    this.endpoint = res.endpoint.label;
    this.attempts = res.attempts;
    this.#body = res.body;
  }

  pipe(sink: AnswerSink): void {
    this.#body.pipe(sink);
  }

  abort(): void {
    this.#body.abort();
  }
}

const round1 = (ms: number): number => Math.round(ms * 10) / 10;

/**
 * The last {@link LatencyWindow.size} measured times of one endpoint, in a
 * ring: percentiles over recent answers, cheap to record (the status page
 * sorts a copy once a second).
 */
class LatencyWindow {
  static readonly size = 512;
  readonly #samples = new Float64Array(LatencyWindow.size);
  #count = 0;

  add(ms: number): void {
    this.#samples[this.#count % LatencyWindow.size] = ms;
    this.#count++;
  }

  values(): number[] {
    return [...this.#samples.subarray(0, Math.min(this.#count, LatencyWindow.size))];
  }

  summary(): MeasuredLatency {
    return summarizeLatency(this.#samples.subarray(0, Math.min(this.#count, LatencyWindow.size)));
  }
}

/** p50, p99 and mean of latency samples (ms). */
export function summarizeLatency(samples: ArrayLike<number>): MeasuredLatency {
  const n = samples.length;
  if (n === 0) return { samples: 0, p50Ms: null, p99Ms: null, meanMs: null };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number): number => round1(sorted[Math.min(n - 1, Math.ceil(q * n) - 1)] ?? 0);
  return { samples: n, p50Ms: at(0.5), p99Ms: at(0.99), meanMs: round1(sorted.reduce((a, b) => a + b, 0) / n) };
}

/** The registry the gateway discovers services in. */
export type GatewayRegistry = { readonly kind: 'consul'; readonly address: string } | { readonly kind: 'etcd'; readonly endpoints?: readonly string[] };

type EtcdModule = typeof import('@proxyless/etcd');
type EtcdInternal = typeof import('@proxyless/etcd/internal');

/** The gateway config's own spelling of the registry's address, for the failure lines (not the client option's). */
const consulWords = { address: 'the config\'s consulAddress', token: 'no config key: the gateway reads the token from the environment' };
const etcdWords = 'the config\'s etcdEndpoints';

/** The registry connection: Consul's, or etcd's with the lazily loaded etcd package. */
type Connection =
  | { readonly kind: 'consul'; readonly client: ConsulHttpClient; readonly resolver: ConsulResolver }
  | { readonly kind: 'etcd'; readonly client: EtcdClient; readonly resolver: EtcdResolver; readonly etcd: EtcdModule; readonly internal: EtcdInternal };

/**
 * Creates upstreams over one shared registry connection and resolver (one
 * watch per service), and watches the registry's list of services: Consul's
 * catalog, or the services under etcd's `/proxyless/services/` (connection
 * settings from `ETCDCTL_*` unless endpoints are given).
 */
export class Upstreams {
  readonly registry: GatewayRegistry;
  /** The latest endpoint events, newest first (at most 50). */
  readonly events: UpstreamEvent[] = [];
  readonly #connection: Connection;

  private constructor(registry: GatewayRegistry, connection: Connection) {
    this.registry = registry;
    this.#connection = connection;
  }

  /** Connects to the registry; for etcd, loads `@proxyless/etcd` (an optional peer) and says how to install it when absent. */
  static async connect(registry: GatewayRegistry): Promise<Upstreams> {
    if (registry.kind === 'consul') {
      const client = new ConsulHttpClient({ address: registry.address });
      return new Upstreams(registry, { kind: 'consul', client, resolver: new ConsulResolver({ client }) });
    }
    let etcd: EtcdModule;
    let internal: EtcdInternal;
    try {
      [etcd, internal] = await Promise.all([import('@proxyless/etcd'), import('@proxyless/etcd/internal')]);
    } catch (error) {
      throw new InvalidOptionError('registry', 'etcd', `needs the @proxyless/etcd package, which did not load (${(error as Error).message}): npm install @proxyless/etcd`);
    }
    const client = new etcd.EtcdClient(registry.endpoints ? { endpoints: registry.endpoints } : {});
    return new Upstreams(registry, { kind: 'etcd', client, resolver: new etcd.EtcdResolver({ client }), etcd, internal });
  }

  /** The registry's resolver (one watch per service, shared by every client). */
  get resolver(): Resolver {
    return this.#connection.resolver;
  }

  /** Where the registry is, for logs. */
  get label(): string {
    const c = this.#connection;
    return c.kind === 'etcd' ? `etcd at ${c.client.connection.endpoints.join(',')}` : `Consul at ${c.client.connection.origin}`;
  }

  /**
   * True for an answer the registry's API never gives (404, 405, 501 on its list of services): another
   * HTTP server is at the address. Waiting does not fix that either.
   */
  isNotTheRegistry(error: unknown): boolean {
    const status = isProxylessError(error, this.#connection.kind === 'etcd' ? 'ERR_ETCD_API' : 'ERR_CONSUL_API') ? (error as unknown as { status: number }).status : 0;
    return status === 404 || status === 405 || status === 501;
  }

  /** One line: what failed at the registry, its address and the variable or option that sets it (the registrar's shape). */
  describeFailure(error: unknown, key?: string): string {
    const c = this.#connection;
    if (key === undefined && this.isNotTheRegistry(error)) {
      // Its body is another server's page (HTML, many lines): the status says enough.
      const status = (error as { status: number }).status;
      return c.kind === 'etcd'
        ? `the server at ${c.client.connection.endpoints.join(',')} answered ${String(status)} to etcd's range call: it is not etcd's v3 API. Set ETCDCTL_ENDPOINTS (or ${etcdWords}) to etcd's client URLs (port 2379 by default)`
        : `the server at ${c.client.connection.origin} answered ${String(status)} to GET /v1/catalog/services: it is not a Consul agent's HTTP API. Set CONSUL_HTTP_ADDR (or ${consulWords.address}) to the agent's address (port 8500 by default)`;
    }
    // The permission named is the one the failed read needs: the catalog's, or the routes key's.
    return c.kind === 'etcd'
      ? c.internal.describeEtcdFailure(error, c.client.connection.endpoints, key === undefined ? 'read on /proxyless/services/' : `read on ${key}`, { endpoints: etcdWords })
      : describeConsulFailure(error, c.client.connection.origin, key === undefined ? 'service:read and node:read' : `key:read on ${key}`, consulWords);
  }

  /**
   * True when nothing answered at the registry's address (refused, unknown host, reset, TLS
   * handshake, connect timeout; for etcd, every endpoint): a wrong address or a registry not
   * running, which waiting will not fix. A slow or leaderless registry is not unreachable.
   */
  isUnreachable(error: unknown): boolean {
    return isProxylessError(error, this.#connection.kind === 'etcd' ? 'ERR_ETCD_UNREACHABLE' : 'ERR_CONSUL_UNREACHABLE');
  }

  /** The registry's list of services, kept current (`options` tune Consul's catalog poll). */
  watchServices(options?: CatalogWatchOptions): CatalogWatch {
    const c = this.#connection;
    return c.kind === 'etcd' ? c.resolver.watchServices() : c.resolver.watchServices(options);
  }

  /**
   * Waits for `catalog`'s first list, at most `timeoutMs`. An unreachable registry, or another
   * server at its address, ends the wait at once (waiting does not fix a wrong address); a slow
   * one, or one answering with errors, is waited for until then.
   * @throws Error `cannot list services: ` and {@link Upstreams.describeFailure}'s line.
   */
  async firstServices(catalog: CatalogWatch, timeoutMs: number): Promise<void> {
    const unreachable = new AbortController();
    const onError = (error: Error): void => {
      if (this.isUnreachable(error) || this.isNotTheRegistry(error)) unreachable.abort(error);
    };
    catalog.on('error', onError);
    try {
      await catalog.ready({ timeoutMs, signal: unreachable.signal });
    } catch (error) {
      throw new Error(`cannot list services: ${this.describeFailure(catalog.lastError ?? new TimeoutError('Listing services', timeoutMs, error))}`, { cause: error });
    } finally {
      catalog.off('error', onError);
    }
  }

  /** Registrar options that register the gateway itself in the same registry, on the same connection. */
  registration(): Pick<RegistrarOptions, 'registry'> {
    const c = this.#connection;
    return { registry: c.kind === 'etcd' ? c.etcd.etcdRegistry({ client: c.client }) : consulRegistry({ client: c.client }) };
  }

  /** A client for `service`; `idleTimeoutMs` is the longest silence allowed between two response body chunks; `backend`: HTTP/2 and TLS to its instances. */
  open(service: string, idleTimeoutMs: number, backend: BackendClientOptions = {}): Upstream {
    return new ServiceUpstream(service, this.#connection.resolver, (event) => {
      this.events.unshift(event);
      this.events.length = Math.min(this.events.length, 50);
    }, idleTimeoutMs, backend);
  }

  /**
   * Watches one key's value until `signal` aborts, reporting every answer (also unchanged ones:
   * the caller compares). Consul: a blocking query on `GET /v1/kv/<key>` (a missing key blocks on
   * its 404's index), on core's loop (rate limit, full-jitter backoff, agent probe); etcd: the
   * package's prefix-watch loop on the key, keeping only the exact key (resync after compaction
   * or a restored history). `revision` is the key's modify index / mod revision, or the index at
   * which it was found absent.
   */
  watchKey(key: string, sink: KeySink, signal: AbortSignal): Promise<void> {
    const c = this.#connection;
    if (c.kind === 'consul') {
      return runBlockingQuery(c.client, {
        path: `/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}`,
        signal,
        allowNotFound: true,
        decode: (body, info) => decodeKvAnswer(key, body, info.index),
        onAnswer: ({ value, revision }) => sink.value(value, revision),
        onError: (error) => sink.fail(error),
      });
    }
    const exact = (k: Buffer): boolean => k.toString('utf8') === key;
    return c.internal.runPrefixWatch(c.client, key, { signal, backoff: { initialMs: 100, maxMs: 1_000 }, idleTimeoutMs: 10_000 }, {
      reset: (kvs, revision) => {
        const kv = kvs.find((k) => exact(k.key));
        sink.value(kv?.value.toString('utf8'), kv?.modRevision ?? revision);
      },
      apply: (events) => {
        const last = events.filter((e) => exact(e.kv.key)).at(-1);
        if (last) sink.value(last.type === 'put' ? last.kv.value.toString('utf8') : undefined, last.kv.modRevision);
      },
      live: () => undefined,
      resync: () => undefined,
      fail: (error) => sink.fail(error instanceof Error ? error : new Error(String(error))),
    });
  }

  async close(): Promise<void> {
    await this.#connection.resolver.close();
    await this.#connection.client.close();
  }
}

/** Where {@link Upstreams.watchKey} reports. */
export interface KeySink {
  /** The key's value (undefined: absent) and its revision. */
  value(value: string | undefined, revision: number): void;
  /** A failed read or watch; the loop backs off and retries. */
  fail(error: Error): void;
}

/** A `GET /v1/kv/<key>` answer: `[{ Key, Value (base64 or null), ModifyIndex, … }]`, or undefined for a 404. */
function decodeKvAnswer(key: string, body: unknown, index: number): { value: string | undefined; revision: number } {
  if (body === undefined) return { value: undefined, revision: index };
  const entry: unknown = Array.isArray(body) ? body.find((e: { Key?: unknown }) => e.Key === key) : undefined;
  if (typeof entry !== 'object' || entry === null) throw new BadResponseError(`Consul KV answer for "${key}" has no entry for the key`);
  const { Value, ModifyIndex } = entry as { Value?: unknown; ModifyIndex?: unknown };
  if ((Value !== null && typeof Value !== 'string') || typeof ModifyIndex !== 'number') throw new BadResponseError(`Consul KV answer for "${key}" is not a key entry`);
  return { value: Value === null ? '' : Buffer.from(Value, 'base64').toString('utf8'), revision: ModifyIndex };
}
