/**
 * A Zuul-style API gateway built on Proxyless: routes `/<service>/**` to the
 * instances of every service in the registry (Consul's catalog, or etcd),
 * plus explicit routes,
 * through pre/route/post filters, streaming bodies both ways.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse, type OutgoingHttpHeaders } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { once } from 'node:events';
import { Server as NetServer, type AddressInfo, type BlockList } from 'node:net';
import { ClosedError, InvalidOptionError, TimeoutError, isProxylessError, type CatalogWatch, type CatalogWatchOptions } from '@proxyless/core';
import type { RegistrarOptions } from '@proxyless/registrar';
import { catalogRoute, checkedConfig, configKeys, type GatewayConfig, type ResolvedRoute } from './config.js';
import { resolveRouteTable, type RouteTable } from './routing.js';
import { RoutesSource } from './routes-source.js';
import { authFilter, byOrder, requestIdFilter, requestIdOf, responseHeadersFilter, type AuthorizeHook, type Filter, type FilterContext, type FilterResponse } from './filters.js';
import { declaresTooLarge, limitBody } from './body-limit.js';
import { RouteLimits } from './rate-limit-filter.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { clientIpOf } from './trusted-proxies.js';
import { AccessLog, redactQuery, type AccessLogOutcome, type ResolvedAccessLog } from './access-log.js';
import { performance } from 'node:perf_hooks';
import { statusPageHtml, type GatewayStatus, type RouteCounters } from './status-page.js';
import { Upstreams, type AnswerSink, type ForwardedRequest, type GatewayRegistry, type Upstream, type UpstreamAnswer } from './upstreams.js';
import { UpgradeProxy, writeRawJson, type UpgradeEnd } from './upgrade.js';
import { CertificateReloader, backendClientOptions } from './tls.js';
import type { Duplex } from 'node:stream';

/** Options of {@link createGateway}: the config file's keys plus code-level hooks. */
export interface GatewayOptions extends GatewayConfig {
  /** Extra filters, run with the built-in ones by type and order. */
  filters?: Filter[];
  /** Decides bearer tokens on `auth: true` routes. Default: accept `authTokens`. */
  authorize?: AuthorizeHook;
  /** Consul catalog watch tuning (core's `watchServices()`; default one poll per second at most). etcd pushes changes. */
  catalog?: CatalogWatchOptions;
  /** Where the gateway's operational lines go (a TLS certificate reloaded or refused). Default: standard error, prefixed `gateway: `. */
  log?: (line: string) => void;
}

const optionKeys: readonly string[] = [...configKeys, 'filters', 'authorize', 'catalog', 'log'];

/**
 * The gateway's listening server: `node:http`'s without `tls`; with `tls`,
 * `node:http2`'s secure server (HTTP/2 and HTTP/1.1 by ALPN), or `node:https`'s
 * with `tls.http2: false`.
 */
export type GatewayHttpServer = Server | HttpsServer | Http2SecureServer;

/** Options of {@link Gateway.close}. */
export interface CloseOptions {
  /** How long in-flight requests may take to finish before their sockets are closed, ms. Default 10 000. */
  graceMs?: number;
}

/**
 * A gateway made by {@link createGateway}: an HTTP server that routes to the
 * services of a registry through Proxyless balancing clients.
 */
export interface Gateway extends AsyncDisposable {
  /** The gateway's own service name (`serviceName`, default `gateway`). */
  readonly name: string;
  /** The listening server (once {@link Gateway.listen} resolved): `node:http`'s, or with `tls` a TLS one (see {@link GatewayHttpServer}). */
  readonly server: GatewayHttpServer;
  /** The registry's list of services, once listening with discovery on. */
  readonly catalog: CatalogWatch | undefined;
  /** `http://host:port` (`https://` with `tls`); throws before {@link Gateway.listen} resolved. */
  readonly url: string;
  /** Where the registry is, for logs (`Consul at http://127.0.0.1:8500`, `etcd at …`). Empty before listening. */
  readonly registryLabel: string;
  /** Requests being forwarded now. */
  readonly inFlight: number;
  /**
   * Connects to the registry, waits for its list of services (at most
   * `discovery.startTimeoutMs`; not at all once nothing answers at its
   * address), then listens. Resolves with the base URL; rejects with one
   * line naming the registry and its address when it cannot be reached.
   */
  listen(): Promise<string>;
  /**
   * Drains and stops: stops accepting connections, lets in-flight requests
   * finish (up to `graceMs`), then closes every socket, the catalog watch and
   * the upstream clients. Idempotent.
   */
  close(options?: CloseOptions): Promise<void>;
  /** Stops at once: {@link Gateway.close} with no grace (in-flight requests are cut off). */
  destroy(): Promise<void>;
  /** The document behind `/_proxyless/status.json`. */
  status(): GatewayStatus;
  /**
   * Reads the `tls` files again now (they are also re-read when they change)
   * and serves them to new connections; established ones keep theirs. False
   * when they cannot be used: the served certificate stays, and
   * `status().gateway.tls.lastError` says why. Throws without `tls`.
   */
  reloadCertificate(): boolean;
  /** Registrar options that register the gateway in its own registry, on its connection (after {@link Gateway.listen}). */
  registration(): Pick<RegistrarOptions, 'registry'>;
  /**
   * Reopens the access log file (after logrotate renamed it: the next lines
   * go to a new file at `accessLog.path`). `proxyless-gateway` does this on
   * SIGUSR2. No-op without a file log.
   */
  reopenAccessLog(): void;
}

/**
 * Creates a gateway. Options are checked at once (an unknown key or a bad
 * value throws `InvalidOptionError` naming it); nothing connects before
 * {@link Gateway.listen}.
 * @example
 * ```ts
 * import { createGateway } from '@proxyless/gateway';
 *
 * const gateway = createGateway({ port: 8080, routes: [{ path: '/api/people/**', service: 'users' }] });
 * console.log(`listening on ${await gateway.listen()}`);
 * process.once('SIGTERM', () => void gateway.close({ graceMs: 5_000 }));
 * ```
 */
export function createGateway(options: GatewayOptions = {}): Gateway {
  return new GatewayServer(options);
}

/** Maps an error from the upstream client to a gateway answer. @internal */
export function errorResponse(error: unknown): { status: number; code: string; message: string } {
  const code = isProxylessError(error) ? error.code : 'ERR_INTERNAL';
  const message = error instanceof Error ? error.message : String(error);
  switch (code) {
    case 'ERR_NO_HEALTHY_INSTANCES':
    case 'ERR_NO_HEALTHY_ENDPOINTS':
    case 'ERR_CIRCUIT_OPEN':
    case 'ERR_CLOSED':
    case 'ERR_RETRY_BUDGET_EXHAUSTED':
      return { status: 503, code, message };
    case 'ERR_DEADLINE_EXCEEDED':
    case 'ERR_TIMEOUT':
      return { status: 504, code, message };
    case 'ERR_REQUEST_FAILED':
      // A try that timed out without retries left is a gateway timeout too.
      return { status: (error as { reason?: unknown }).reason === 'timeout' ? 504 : 502, code, message };
    default:
      return { status: 502, code, message };
  }
}

const statusPrefix = '/_proxyless';
const statusPrefixSlash = `${statusPrefix}/`;

/** How long a draining gateway keeps its kept-alive sockets open to answer their next request with `Connection: close`, ms. */
const lastCallMaxMs = 1_000;

/** Where the config says services are registered. @internal */
export function gatewayRegistry(options: GatewayConfig): GatewayRegistry {
  return options.registry === 'etcd'
    ? { kind: 'etcd', ...(options.etcdEndpoints ? { endpoints: options.etcdEndpoints } : {}) }
    : { kind: 'consul', address: options.consulAddress ?? process.env['CONSUL_HTTP_ADDR'] ?? '127.0.0.1:8500' };
}

/** One worker's status plus its raw latency samples (service → endpoint label → ms), for the primary to merge. @internal */
export interface WorkerStatus {
  readonly status: GatewayStatus;
  readonly samples: Record<string, Record<string, number[]>>;
}

/** The gateway server, with the hook a `node:cluster` worker uses to serve the merged status. @internal */
export class GatewayServer implements Gateway {
  /** Where `status.json` comes from when set (the primary's merge of every worker); else this process's {@link GatewayServer.status}. */
  statusSource: (() => Promise<GatewayStatus>) | undefined;
  readonly server: GatewayHttpServer;
  #upstreams: Upstreams | undefined;
  readonly #registry: GatewayRegistry;
  /** The service-list watch (`watchServices()` of the registry's resolver), once listening with discovery on. */
  catalog: CatalogWatch | undefined;
  readonly name: string;
  readonly #config: GatewayOptions;
  /** The explicit routes: an immutable table, replaced whole (a request keeps the route it matched). */
  #table: RouteTable;
  /** The config file's routes: in use unless `routesSource`'s key holds valid ones. */
  readonly #fileTable: RouteTable;
  /** With `routesSource`: the key's watch. */
  readonly #routesSource: RoutesSource | undefined;
  readonly #filters: Filter[];
  /** The filters by type, in order: sorted once, not on every request. */
  readonly #chain: Readonly<Record<Filter['type'], readonly Filter[]>>;
  /** Some of `filters` are post filters: a 429 goes through them too (else it is answered without a filter context). */
  readonly #userPost: boolean;
  /** The routes' rate limits, checked before anything else is built for a request. */
  readonly #limits = new RouteLimits();
  readonly #clients = new Map<string, Upstream>();
  /** Upstreams replaced by a reload (a changed `idleTimeoutMs`) with exchanges still in flight: each closes when its last ends. */
  readonly #retired = new Set<Upstream>();
  readonly #catalogServices = new Set<string>();
  /** Each catalog service's route, built (and its policy checked) once, not per request. */
  readonly #catalogRoutes = new Map<string, ResolvedRoute>();
  readonly #ignored: Set<string>;
  /** `trustedProxies`; undefined: trust nobody (no address check per request). */
  readonly #trust: BlockList | undefined;
  readonly #accessLogConfig: ResolvedAccessLog | undefined;
  /** Open once listening with `accessLog` set. */
  #accessLog: AccessLog | undefined;
  readonly #startedAt = Date.now();
  #requests = 0;
  #inFlight = 0;
  #noRoute = 0;
  /** Outcome counters per route id (catalog routes included), in first-seen order. */
  readonly #routeCounters = new Map<string, { id: string; service: string } & { -readonly [K in keyof RouteCounters]: number }>();
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  /** WebSocket (and other protocol upgrade) tunnels. */
  readonly #upgrades: UpgradeProxy;
  /** With `tls`: keeps the served certificate in step with its files. */
  readonly #certificates: CertificateReloader | undefined;
  /** The balancing clients' HTTP/2 and TLS options (`backends`), its files read once. */
  readonly #backend: ReturnType<typeof backendClientOptions>;
  /** With `tls`: open HTTP/2 sessions (a drain sends each a GOAWAY) and every TLS connection (closed at the end of a drain). */
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #tlsSockets = new Set<Socket>();

  constructor(options: GatewayOptions) {
    // Checked once: the trusted proxies' BlockList and the access log's settings come from the check.
    const checked = checkedConfig(options, optionKeys);
    this.#config = options;
    this.name = options.serviceName ?? 'gateway';
    this.#table = resolveRouteTable(options.routes, options);
    this.#fileTable = this.#table;
    this.#ignored = new Set(['consul', this.name, ...(options.discovery?.ignored ?? [])]);
    this.#trust = checked.trust;
    this.#accessLogConfig = checked.accessLog;
    this.#filters = [
      requestIdFilter(),
      authFilter({ ...(options.authTokens ? { tokens: options.authTokens } : {}), ...(options.authorize ? { authorize: options.authorize } : {}) }),
      responseHeadersFilter(),
      ...(options.filters ?? []),
    ];
    this.#chain = { pre: byOrder(this.#filters, 'pre'), route: byOrder(this.#filters, 'route'), post: byOrder(this.#filters, 'post') };
    this.#userPost = (options.filters ?? []).some((f) => f.type === 'post');
    const registry = options.registry ?? 'consul';
    if (registry !== 'consul' && registry !== 'etcd') throw new InvalidOptionError('registry', registry, 'must be "consul" or "etcd"');
    this.#registry = gatewayRegistry(options);
    const log = options.log ?? ((line: string) => void process.stderr.write(`gateway: ${line}\n`));
    this.#certificates = options.tls ? new CertificateReloader(options.tls, log) : undefined;
    this.#backend = backendClientOptions(options.backends);
    this.#upgrades = new UpgradeProxy(this.#backend.tls);
    this.#routesSource = options.routesSource ? new RoutesSource(options.routesSource, options, (table) => this.#swapRoutes(table ?? this.#fileTable), log) : undefined;
    this.server = this.#createServer();
  }

  /** The listening server for the config: plain HTTP/1.1, or TLS with HTTP/2 and HTTP/1.1 by ALPN (or HTTP/1.1 only). */
  #createServer(): GatewayHttpServer {
    const handle = (req: IncomingMessage, res: ServerResponse): void => void this.#handle(req, res);
    const certificates = this.#certificates;
    let server: GatewayHttpServer;
    if (!certificates) server = createServer(handle);
    else if (this.#config.tls?.http2 === false) server = createHttpsServer(certificates.serverOptions(), handle);
    else {
      // The compatibility API gives HTTP/2 requests the shape of node:http's (url, method, headers, writeHead,
      // pipe), which is all the request path uses; HTTP/1.1 clients on the same port get node:http itself.
      const h2 = createSecureServer({ ...certificates.serverOptions(), allowHTTP1: true }, handle as unknown as Parameters<typeof createSecureServer>[1]);
      h2.on('session', (session: ServerHttp2Session) => {
        this.#sessions.add(session);
        session.once('close', () => this.#sessions.delete(session));
        if (this.#closing) session.close(); // accepted just before the drain began
      });
      server = h2;
    }
    if (certificates) {
      server.on('secureConnection', (socket: Socket) => {
        this.#tlsSockets.add(socket);
        socket.once('close', () => this.#tlsSockets.delete(socket));
      });
    }
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.#upgrade(req, socket, head));
    // Node's default (5 s) is shorter than many clients' idle timeouts; avoid racing them.
    if ('keepAliveTimeout' in server) server.keepAliveTimeout = 65_000;
    return server;
  }

  reloadCertificate(): boolean {
    if (!this.#certificates) throw new InvalidOptionError('tls', undefined, 'is not set: reloadCertificate() needs a gateway created with tls');
    return this.#certificates.reload();
  }

  async listen(): Promise<string> {
    if (this.#closing) throw new ClosedError('gateway');
    if (!this.#upstreams) {
      this.#upstreams = await Upstreams.connect(this.#registry);
      for (const service of this.#table.services) this.#client(service);
    }
    const upstreams = this.#upstreams;
    const startTimeoutMs = this.#config.discovery?.startTimeoutMs ?? 10_000;
    // The key's routes are in place before the first request (a restarted worker never serves stale ones).
    if (this.#routesSource && !(await this.#routesSource.start(upstreams, startTimeoutMs)) && !this.#closing) {
      const error = new TimeoutError('Reading the routesSource key', startTimeoutMs);
      throw new Error(`gateway: cannot read routes: ${upstreams.describeFailure(this.#routesSource.watchFailure ?? error, this.#routesSource.key)}`);
    }
    if (this.#config.discovery?.enabled !== false && !this.catalog) {
      const catalog = upstreams.watchServices(this.#config.catalog);
      this.catalog = catalog;
      catalog.on('update', (services) => this.#syncCatalog(services));
      catalog.on('error', () => undefined); // shown on the status page via lastError
      // Routes from the catalog exist before the first request; a registry that cannot be reached fails the start.
      try {
        await upstreams.firstServices(catalog, startTimeoutMs);
      } catch (error) {
        if (this.#closing) throw error;
        throw new Error(`gateway: ${(error as Error).message}`, { cause: error });
      }
    }
    if (this.#accessLogConfig && !this.#accessLog) this.#accessLog = await AccessLog.open(this.#accessLogConfig);
    const port = this.#config.port ?? 8080;
    const host = this.#config.host ?? '127.0.0.1';
    this.server.listen(port, host);
    try {
      await once(this.server, 'listening');
    } catch (error) {
      throw listenError(error, port, host);
    }
    // Watched from here on (not in the constructor: the CLI's primary makes a gateway it never listens with).
    this.#certificates?.attach(this.server as HttpsServer);
    return this.url;
  }

  get url(): string {
    const address = this.server.address() as AddressInfo | null;
    if (!address) throw new Error('gateway: not listening yet (await listen() first)');
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${this.#certificates ? 'https' : 'http'}://${host}:${address.port}`;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get registryLabel(): string {
    return this.#upstreams?.label ?? '';
  }

  registration(): Pick<RegistrarOptions, 'registry'> {
    if (!this.#upstreams) throw new Error('gateway: registration() needs a connected registry (await listen() first)');
    return this.#upstreams.registration();
  }

  reopenAccessLog(): void {
    this.#accessLog?.reopen();
  }

  #client(service: string): Upstream {
    let client = this.#clients.get(service);
    if (!client) {
      if (!this.#upstreams) throw new Error('gateway: not connected');
      client = this.#upstreams.open(service, this.#idleTimeoutMs(service), this.#backend);
      this.#clients.set(service, client);
    }
    return client;
  }

  /** The longest `idleTimeoutMs` of the routes to `service` (its `/<service>/**` catalog route included): one pool, one body timeout. */
  #idleTimeoutMs(service: string): number {
    const catalogRouted = this.#config.discovery?.enabled !== false && !this.#ignored.has(service);
    let ms = catalogRouted ? catalogRoute(service, this.#config).idleTimeoutMs : 0;
    for (const route of this.#table.routes) if (route.service === service) ms = Math.max(ms, route.idleTimeoutMs);
    return Math.min(ms, 1_200_000); // a longer route timeoutMs is not a body timeout
  }

  #syncCatalog(services: ReadonlyMap<string, readonly string[]>): void {
    if (this.#closing) return;
    const explicit = this.#table.services;
    for (const name of services.keys()) {
      if (this.#ignored.has(name)) continue;
      this.#catalogServices.add(name);
      this.#client(name);
    }
    for (const name of [...this.#catalogServices]) {
      if (services.has(name)) continue;
      this.#catalogServices.delete(name);
      this.#catalogRoutes.delete(name);
      if (explicit.has(name)) continue;
      const client = this.#clients.get(name);
      this.#clients.delete(name);
      void client?.close();
    }
  }

  /**
   * Puts a new route table in place: one reference swap, so a request matches the old table or
   * the new one, never a mix, and one in flight keeps the route it matched. Clients for the new
   * table's services open now; those no route and no catalog entry uses any more, and those whose
   * `idleTimeoutMs` changed (replaced by new ones), close once their exchanges in flight ended.
   */
  #swapRoutes(table: RouteTable): void {
    if (this.#closing) return;
    // Routes whose limit did not change keep their buckets (see RouteTable.keepRateLimitsOf).
    this.#table = table.keepRateLimitsOf(this.#table);
    if (!this.#upstreams) return;
    const now = this.#table.services;
    for (const [service, client] of [...this.#clients]) {
      const unused = !now.has(service) && !this.#catalogServices.has(service);
      // A pool's body timeout is fixed: after a change, new exchanges go to new pools (opened below).
      if (unused || client.idleTimeoutMs !== this.#idleTimeoutMs(service)) {
        this.#clients.delete(service);
        this.#retire(client);
      }
    }
    for (const service of now) this.#client(service);
  }

  /** Closes `client` once it has no exchange in flight (at once when it has none): a long event stream on it is not cut. */
  #retire(client: Upstream): void {
    if (client.active === 0) void client.close();
    else this.#retired.add(client);
  }

  /** Finds the route for a request: explicit routes (by precedence, see {@link RouteTable}) first, then `/<service>/**`. */
  #match(path: string, req: IncomingMessage): ResolvedRoute | undefined {
    const explicit = this.#table.match(path, req);
    if (explicit) return explicit;
    if (this.#config.discovery?.enabled === false) return undefined;
    const end = path.indexOf('/', 1);
    const first = end === -1 ? path.slice(1) : path.slice(1, end);
    let service: string;
    try {
      service = first.includes('%') ? decodeURIComponent(first) : first;
    } catch {
      return undefined;
    }
    if (!this.#catalogServices.has(service)) return undefined;
    let route = this.#catalogRoutes.get(service);
    if (!route) this.#catalogRoutes.set(service, (route = catalogRoute(service, this.#config)));
    return route;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    const query = queryAt === -1 ? '' : url.slice(queryAt);
    if (path === statusPrefix || path.startsWith(statusPrefixSlash)) {
      this.#handleAdmin(path, req, res);
      return;
    }
    this.#requests++;
    // Draining (a rolling restart, SIGTERM): the client's next request opens a connection another worker accepts.
    if (this.#closing) res.shouldKeepAlive = false;
    const log = this.#accessLog;
    const logStart = log ? performance.now() : 0;
    // Kept: req.socket is null once a response closed on a connection that then ended.
    const socket = req.socket;
    const logBytes = log ? socket.bytesWritten : 0;
    const route = this.#match(path, req);
    if (!route) {
      this.#noRoute++;
      req.resume();
      if (log) {
        // Now: an HTTP/2 stream's socket cannot be read once its session closed.
        const clientIp = clientIpOf(socket, req.headers, this.#trust);
        res.once('close', () => this.#logLine(log, req, socket, res, path, query, logStart, logBytes, clientIp, 'noRoute'));
      }
      sendJson(res, 404, { error: 'no_route', message: `no route for ${path}` });
      return;
    }
    if (route.rateLimit !== null && this.#overLimit(route, req, res, socket, log, path, query, logStart, logBytes)) return;
    this.#inFlight++;
    const exchange: Exchange = { upstreamBroke: false, rejected: false, upstream: undefined, call: undefined, answer: undefined };
    const rest = route.stripPrefix ? path.slice(route.prefix.length) : path;
    const forwarded = upstreamRequestHeaders(req, route.stripPrefix ? route.prefix : undefined, this.#trust);
    const ctx = new RequestContext(req, forwarded.clientIp, route, (rest.startsWith('/') ? rest : `/${rest}`) + query, forwarded.headers);
    // One listener does the bookkeeping and, when the client left early, cancels the upstream call or its body.
    res.once('close', () => {
      if (!res.writableFinished) {
        if (exchange.answer) exchange.answer.abort();
        else exchange.call?.stop();
      }
      this.#inFlight--;
      const upstream = exchange.upstream;
      if (upstream !== undefined && --upstream.active === 0 && this.#retired.delete(upstream)) void upstream.close();
      const outcome = outcomeOf(exchange, res);
      this.#count(route, outcome);
      if (log) this.#logLine(log, req, socket, res, path, query, logStart, logBytes, ctx, outcome);
      if (this.#inFlight === 0) this.#idle?.();
    });
    try {
      for (const filter of this.#chain.pre) {
        const ran = filter.run(ctx);
        // A filter that decided synchronously costs no microtask turn.
        const answer = ran instanceof Promise ? await ran : ran;
        if (answer) {
          exchange.rejected = isRejection(answer.status);
          await this.#answer(ctx, res, answer);
          return;
        }
      }
      for (const filter of this.#chain.route) {
        const ran = filter.run(ctx);
        const answer = ran instanceof Promise ? await ran : ran;
        if (answer) {
          await this.#answer(ctx, res, answer);
          return;
        }
      }
      await this.#forward(ctx, res, exchange);
    } catch (failure) {
      if (exchange.rejected) {
        // A chunked body passed maxBodyBytes: the upstream call is aborted; 413 if the client has no head yet.
        if (res.headersSent) res.destroy();
        else await this.#refuseBody(ctx, res, exchange);
        return;
      }
      const mapped = errorResponse(failure);
      ctx.error = { status: mapped.status, code: mapped.code };
      if (res.headersSent) {
        res.destroy(failure as Error);
        return;
      }
      const error = mapped.status === 504 ? 'gateway_timeout' : mapped.status === 503 ? 'service_unavailable' : 'bad_gateway';
      await this.#answer(ctx, res, { status: mapped.status, body: { error, code: mapped.code, message: mapped.message, requestId: ctx.requestId } });
    }
  }

  /**
   * Answers 429 when the request is over its route's rate limit (true), doing as little as it can: no
   * filter context, no upstream headers, no filter, no in-flight bookkeeping; the answer carries the
   * request id, `Retry-After` and `X-Proxyless-Route`. Only when the gateway has post filters of its
   * user does the answer go through them (on a context with no upstream headers: nothing is forwarded).
   */
  #overLimit(route: ResolvedRoute, req: IncomingMessage, res: ServerResponse, socket: Socket, log: AccessLog | undefined, path: string, query: string, logStart: number, logBytes: number): boolean {
    const clientIp = clientIpOf(socket, req.headers, this.#trust);
    const answer = this.#limits.check(route, req, clientIp);
    if (!answer) return false;
    req.resume();
    const requestId = requestIdOf(req);
    this.#count(route, 'rejected');
    if (log) res.once('close', () => this.#logLine(log, req, socket, res, path, query, logStart, logBytes, { route, clientIp, requestId, upstream: undefined }, 'rejected'));
    const body = { ...answer.body, requestId };
    if (!this.#userPost) {
      sendJson(res, answer.status, body, { ...answer.headers, 'x-request-id': requestId, 'x-proxyless-route': route.id });
      return true;
    }
    const ctx: FilterContext = { req, clientIp, requestId, route, upstreamPath: '', upstreamHeaders: {}, responseHeaders: {}, startedAt: Date.now(), attributes: new Map() };
    void this.#answer(ctx, res, { ...answer, body });
    return true;
  }

  /** An upgrade request (WebSocket): routed and filtered like any request, then tunnelled by {@link UpgradeProxy}. */
  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined); // a reset client is handled by close; never an uncaught error
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    const query = queryAt === -1 ? '' : url.slice(queryAt);
    const log = this.#accessLog;
    // Off the request path: an upgrade is one line per connection, written when it ends.
    const logEnd = log ? this.#upgradeLogger(log, req, socket, head, path, query) : undefined;
    const route = this.#closing || path.startsWith(statusPrefix) ? undefined : this.#match(path, req);
    if (!route) {
      const status = this.#closing ? 503 : 404;
      if (this.#closing) writeRawJson(socket, 503, { error: 'service_unavailable', message: 'the gateway is shutting down' });
      else writeRawJson(socket, 404, { error: 'no_route', message: `no route for ${path}` });
      logEnd?.(undefined, { status, endpoint: null, attempts: 0 }, this.#closing ? 'upstreamFailure' : 'noRoute');
      return;
    }
    const rest = route.stripPrefix ? path.slice(route.prefix.length) : path;
    const forwarded = upstreamRequestHeaders(req, route.stripPrefix ? route.prefix : undefined, this.#trust);
    const ctx = new RequestContext(req, forwarded.clientIp, route, (rest.startsWith('/') ? rest : `/${rest}`) + query, forwarded.headers);
    const ended = (end: UpgradeEnd): void => logEnd?.(ctx, end);
    const limited = this.#limits.check(route, req, ctx.clientIp);
    if (limited) {
      ctx.requestId = requestIdOf(req);
      writeRawJson(socket, limited.status, { ...limited.body, requestId: ctx.requestId });
      ended({ status: limited.status, endpoint: null, attempts: 0 });
      return;
    }
    try {
      for (const filter of [...this.#chain.pre, ...this.#chain.route]) {
        const answer = await filter.run(ctx);
        if (answer) {
          writeRawJson(socket, answer.status, answer.body);
          ended({ status: answer.status, endpoint: null, attempts: 0 });
          return;
        }
      }
      await this.#upgrades.forward(ctx, this.#client(route.service), socket, head, ended);
    } catch (failure) {
      const mapped = errorResponse(failure);
      writeRawJson(socket, mapped.status, { error: 'bad_gateway', code: mapped.code, message: mapped.message, requestId: ctx.requestId });
      ended({ status: mapped.status, endpoint: null, attempts: 0 });
    }
  }

  /**
   * The access log line of an upgrade, written once its connection closed (so the duration and
   * byte counts are the connection's whole life). `ctx` undefined: no route (the client's own address is logged).
   */
  #upgradeLogger(log: AccessLog, req: IncomingMessage, socket: Duplex & Partial<Pick<Socket, 'bytesRead' | 'bytesWritten' | 'remoteAddress'>>, head: Buffer, path: string, query: string): (ctx: FilterContext | undefined, end: UpgradeEnd, outcome?: AccessLogOutcome) => void {
    const start = performance.now();
    // The head's bytes were read with the request's; they go through the tunnel.
    const readBefore = (socket.bytesRead ?? 0) - head.length;
    const writtenBefore = socket.bytesWritten ?? 0;
    const clientIp = clientIpOf(socket, req.headers, this.#trust);
    let logged = false;
    return (ctx, end, outcome) => {
      if (logged) return;
      logged = true;
      const write = (): void =>
        log.write({
          time: new Date(performance.timeOrigin + start).toISOString(),
          method: req.method ?? '',
          path: log.includeQuery ? path + redactQuery(query) : path,
          status: end.status,
          bytes: (socket.bytesWritten ?? 0) - writtenBefore,
          durationMs: Math.round((performance.now() - start) * 1000) / 1000,
          route: ctx?.route.id ?? null,
          service: ctx?.route.service ?? null,
          endpoint: end.endpoint,
          attempts: end.attempts,
          clientIp: ctx?.clientIp ?? clientIp,
          requestId: ctx?.requestId || null,
          outcome: outcome ?? upgradeOutcome(end.status),
          upgrade: (req.headers.upgrade ?? '').toLowerCase(),
          bytesReceived: (socket.bytesRead ?? 0) - readBefore,
          ...(end.closedBy === undefined ? {} : { closedBy: end.closedBy, closeCode: end.closeCode ?? null }),
        });
      if (socket.closed) write();
      else socket.once('close', write);
    };
  }

  /** Files the finished exchange under its outcome on its route. */
  #count(route: ResolvedRoute, outcome: Exclude<AccessLogOutcome, 'noRoute'>): void {
    let counters = this.#routeCounters.get(route.id);
    if (!counters) {
      counters = { id: route.id, service: route.service, requests: 0, succeeded: 0, clientErrors: 0, rejected: 0, clientHangups: 0, upstreamFailures: 0 };
      this.#routeCounters.set(route.id, counters);
    }
    counters.requests++;
    counters[counterOf[outcome]]++;
  }

  /** Queues the request's access log line. */
  #logLine(log: AccessLog, req: IncomingMessage, socket: Socket, res: ServerResponse, path: string, query: string, start: number, bytesBefore: number, ctx: Pick<FilterContext, 'route' | 'clientIp' | 'requestId' | 'upstream'> | string, outcome: AccessLogOutcome): void {
    // No route: ctx is the client's address.
    const routed = typeof ctx === 'string' ? undefined : ctx;
    const upstream = routed?.upstream;
    log.write({
      time: new Date(performance.timeOrigin + start).toISOString(),
      method: req.method ?? '',
      path: log.includeQuery ? path + redactQuery(query) : path,
      status: res.headersSent ? res.statusCode : 0,
      // HTTP/2 streams share one connection: its byte count is not this response's.
      bytes: req.httpVersionMajor === 2 ? null : socket.bytesWritten - bytesBefore,
      durationMs: Math.round((performance.now() - start) * 1000) / 1000,
      route: routed?.route.id ?? null,
      service: routed?.route.service ?? null,
      endpoint: upstream?.endpoint ?? null,
      attempts: upstream?.attempts ?? 0,
      clientIp: typeof ctx === 'string' ? ctx : ctx.clientIp,
      requestId: routed?.requestId || null,
      outcome,
    });
  }

  async #forward(ctx: FilterContext, res: ServerResponse, exchange: Exchange): Promise<void> {
    const req = ctx.req;
    const length = req.headers['content-length'];
    const hasBody = req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0') || h2HasBody(req);
    if (!hasBody) req.resume();
    const max = ctx.route.maxBodyBytes;
    if (hasBody && max > 0 && declaresTooLarge(req, max)) {
      await this.#refuseBody(ctx, res, exchange);
      return;
    }
    // The dispatcher path: the answer's body goes from undici's handler straight to `res` (AnswerWriter),
    // with no body stream and no AbortController per request; the client going away stops the call
    // (the close listener in #handle).
    const upstream = this.#client(ctx.route.service);
    upstream.active++;
    exchange.upstream = upstream;
    const call = upstream.forward({
      method: req.method ?? 'GET',
      path: ctx.upstreamPath,
      headers: ctx.upstreamHeaders,
      // Content-Length within the limit is enforced by Node's parser; a chunked body is counted.
      body: !hasBody ? null : max > 0 && length === undefined ? limitBody(req, max, () => (exchange.rejected = true)) : req,
      timeoutMs: ctx.route.timeoutMs,
      retries: ctx.route.retries,
      retryOnStatus: ctx.route.retryOnStatus,
    });
    exchange.call = call;
    const answer = await call.response;
    exchange.answer = answer;
    ctx.upstream = { endpoint: answer.endpoint, statusCode: answer.statusCode, attempts: answer.attempts };
    if (res.destroyed) {
      answer.abort(); // the client left while the instance answered
      return;
    }
    const post = this.#runPost(ctx);
    if (post) await post;
    if (res.destroyed) {
      answer.abort();
      return;
    }
    answer.pipe(new AnswerWriter(res, ctx, exchange));
  }

  /** Runs the post filters; returns a promise only when one of them is asynchronous. */
  #runPost(ctx: FilterContext): Promise<void> | undefined {
    const filters = this.#chain.post;
    // Indexed: no iterator or [index, value] pair per filter per request.
    for (let i = 0; i < filters.length; i++) {
      const ran = (filters[i] as Filter).run(ctx);
      if (ran instanceof Promise) return ran.then(() => this.#runRest(ctx, i + 1));
    }
    return undefined;
  }

  async #runRest(ctx: FilterContext, from: number): Promise<void> {
    const filters = this.#chain.post;
    for (let i = from; i < filters.length; i++) await (filters[i] as Filter).run(ctx);
  }

  /** 413 without reading the rest of the body: the connection closes after the answer. */
  async #refuseBody(ctx: FilterContext, res: ServerResponse, exchange: Exchange): Promise<void> {
    exchange.rejected = true;
    ctx.error = { status: 413, code: 'ERR_BODY_TOO_LARGE' };
    res.shouldKeepAlive = false;
    try {
      await this.#runPost(ctx);
    } catch {
      // a failing post filter does not stop the answer
    }
    const body = { error: 'body_too_large', message: `request body over this route's limit of ${ctx.route.maxBodyBytes} bytes (maxBodyBytes)`, requestId: ctx.requestId };
    // HTTP/2 has no Connection header (Node drops it with a warning): the stream ends with the answer.
    sendJson(res, 413, body, ctx.req.httpVersionMajor === 2 ? ctx.responseHeaders : { ...ctx.responseHeaders, connection: 'close' });
  }

  async #answer(ctx: FilterContext, res: ServerResponse, answer: FilterResponse): Promise<void> {
    ctx.req.resume();
    try {
      await this.#runPost(ctx);
    } catch {
      // a failing post filter does not stop the answer
    }
    sendJson(res, answer.status, answer.body, { ...answer.headers, ...ctx.responseHeaders });
  }

  #handleAdmin(path: string, req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    if (path === `${statusPrefix}/status` || path === `${statusPrefix}/status/`) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(statusPageHtml);
    } else if (path === `${statusPrefix}/status.json`) {
      const source = this.statusSource;
      if (!source) sendJson(res, 200, this.status(), { 'cache-control': 'no-store' });
      else {
        source().then(
          (status) => sendJson(res, 200, status, { 'cache-control': 'no-store' }),
          (error: unknown) => sendJson(res, 503, { error: 'status_unavailable', message: (error as Error).message }),
        );
      }
    } else if (path === `${statusPrefix}/health`) {
      sendJson(res, this.#closing ? 503 : 200, { status: this.#closing ? 'draining' : 'ok' });
    } else {
      sendJson(res, 404, { error: 'not_found' });
    }
  }

  status(): GatewayStatus {
    const now = Date.now();
    const routesOf = (service: string): string[] => [
      ...new Set(this.#table.routes.filter((r) => r.service === service).map((r) => `${r.prefix}/**`)),
      ...(this.#catalogServices.has(service) ? [`/${service}/**`] : []),
    ];
    return {
      gateway: {
        name: this.name,
        startedAt: this.#startedAt,
        uptimeMs: now - this.#startedAt,
        requests: this.#requests,
        inFlight: this.#inFlight,
        noRoute: this.#noRoute,
        outcomes: sumCounters([...this.#routeCounters.values()]),
        catalogError: this.catalog?.lastError?.message ?? null,
        // The registry reset (wiped, restarted): services it forgot still route, for the reset grace.
        catalogStale: this.catalog?.stale ?? false,
        upgrades: this.#upgrades.counters(),
        ...(this.#certificates ? { tls: this.#certificates.status() } : {}),
      },
      ...(this.#routesSource ? { routesSource: this.#routesSource.status() } : {}),
      routes: [...this.#routeCounters.values()].map((c) => ({ ...c })),
      events: this.#upstreams?.events.slice(0, 20) ?? [],
      services: [...this.#clients.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, client]) => ({ name, routes: routesOf(name), endpoints: client.stats().sort((a, b) => a.key.localeCompare(b.key)) })),
      generatedAt: now,
    };
  }

  workerStatus(): WorkerStatus {
    return { status: this.status(), samples: Object.fromEntries([...this.#clients].map(([name, client]) => [name, client.samples()])) };
  }

  close(options: CloseOptions = {}): Promise<void> {
    this.#closing ??= this.#close(options.graceMs ?? 10_000);
    return this.#closing;
  }

  destroy(): Promise<void> {
    return this.close({ graceMs: 0 });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(graceMs: number): Promise<void> {
    // A gateway that never listened (its start failed) has no connection to give a last call to.
    const wasListening = this.server.listening;
    const closed = wasListening ? once(this.server, 'close') : Promise.resolve([]);
    // Closing a kept-alive socket between two of its requests races the client's next request, which
    // then fails (wrk: read errors; a SIGHUP restart under load lost ~15 per worker). So first a last
    // call: every answer now says `Connection: close`, and a busy client's next request gets one;
    // only sockets that stayed idle through it are closed (what any keep-alive timeout does).
    // http's close() would close the idle ones at once (Node >= 19): net's stops accepting only.
    if (wasListening) NetServer.prototype.close.call(this.server);
    this.#certificates?.close();
    // HTTP/2: a GOAWAY now; the client sends its next requests on a new connection (another worker's), the streams in flight finish.
    for (const session of this.#sessions) session.close();
    // Upgraded sockets are not the http server's any more: they get their 1001 now, and the server's close waits for them.
    const tunnelsClosed = this.#upgrades.drain(graceMs);
    const lastCallMs = Math.min(graceMs, lastCallMaxMs);
    if (lastCallMs > 0 && wasListening) await new Promise((resolve) => setTimeout(resolve, lastCallMs).unref());
    if ('closeIdleConnections' in this.server) this.server.closeIdleConnections();
    if (this.#inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        timer.unref();
        this.#idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    if ('closeAllConnections' in this.server) this.server.closeAllConnections();
    // The http2 server has no closeAllConnections(): its sessions and HTTP/1.1 sockets are closed here.
    for (const session of this.#sessions) session.destroy();
    for (const socket of this.#tlsSockets) socket.destroy();
    await tunnelsClosed;
    await closed;
    this.#routesSource?.close();
    await this.catalog?.close();
    await Promise.all([...this.#clients.values(), ...this.#retired].map((c) => c.close()));
    this.#clients.clear();
    this.#retired.clear();
    await this.#upstreams?.close();
    // Last: every request's line is queued by now (the server closed after its connections).
    await this.#accessLog?.close();
  }
}

/** A failed listen as the option to change (`bind EADDRINUSE …` alone names no fix). */
function listenError(error: unknown, port: number, host: string): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  const portFix = 'set "port" in the config or PORT (0: any free port)';
  if (code === 'EADDRINUSE') return new InvalidOptionError('port', port, `is in use on ${host} (EADDRINUSE): stop what listens there, or ${portFix}`);
  if (code === 'EACCES') return new InvalidOptionError('port', port, `needs privileges on ${host} (EACCES; ports below 1024 do without CAP_NET_BIND_SERVICE): ${portFix}`);
  if (code === 'EADDRNOTAVAIL') return new InvalidOptionError('host', host, `is not an address of this machine (EADDRNOTAVAIL): set "host" in the config or GATEWAY_HOST (0.0.0.0: every interface)`);
  return error;
}

/**
 * One request's {@link FilterContext}: a class (one shape for every request), whose `attributes`
 * Map is made only when a filter uses it.
 */
class RequestContext implements FilterContext {
  requestId = '';
  upstream?: { endpoint: string; statusCode: number; attempts: number };
  error?: { status: number; code: string };
  readonly responseHeaders: OutgoingHttpHeaders = {};
  readonly startedAt = Date.now();
  #attributes: Map<string, unknown> | undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly clientIp: string,
    readonly route: ResolvedRoute,
    public upstreamPath: string,
    readonly upstreamHeaders: Record<string, string | string[]>,
  ) {}

  get attributes(): Map<string, unknown> {
    return (this.#attributes ??= new Map());
  }
}

/** What the counters need to know about one exchange beyond its response. */
interface Exchange {
  /** The instance broke off its response body (the client's answer is cut short by the gateway, not by the client). */
  upstreamBroke: boolean;
  /** The gateway refused it for a limit (429 rate limit, 413 body size): neither a client nor an upstream failure. */
  rejected: boolean;
  /** The upstream it was forwarded through (its `active` count includes this exchange until the response closes). */
  upstream: Upstream | undefined;
  /** The upstream call, once forwarding started (stopped when the client leaves before the answer). */
  call: ForwardedRequest | undefined;
  /** The instance's answer, once it came (aborted when the client leaves during its body). */
  answer: UpstreamAnswer | undefined;
}

/**
 * Writes an instance's answer to the client's response as undici hands it
 * over: the head once the post filters ran, each chunk with `res.write()`
 * (pausing the instance's connection while `res` is full), `res.end()` at the
 * end. In place of `body.pipe(res)`: no readable stream per answer.
 */
class AnswerWriter implements AnswerSink {
  readonly #res: ServerResponse;
  readonly #ctx: FilterContext;
  readonly #exchange: Exchange;
  #resume: (() => void) | undefined;
  #waiting = false;

  constructor(res: ServerResponse, ctx: FilterContext, exchange: Exchange) {
    this.#res = res;
    this.#ctx = ctx;
    this.#exchange = exchange;
  }

  headers(statusCode: number, _rawHeaders: Buffer[], headers: IncomingHttpHeaders, resume: () => void): boolean {
    const res = this.#res;
    this.#resume = resume;
    res.writeHead(statusCode, clientResponseHeaders(headers, this.#ctx.responseHeaders));
    // An event stream's client learns it is open now, not at the first event (Node sends headers with the first chunk).
    if (headers['content-type']?.startsWith('text/event-stream') === true) res.flushHeaders();
    return true;
  }

  data(chunk: Buffer): boolean {
    if (this.#res.write(chunk)) return true;
    if (!this.#waiting) {
      this.#waiting = true;
      this.#res.once('drain', this.#drained);
    }
    return false;
  }

  readonly #drained = (): void => {
    this.#waiting = false;
    this.#resume?.();
  };

  end(): void {
    this.#res.end();
  }

  /** The instance breaking off its body cuts the client's response short, blamed on the instance. */
  error(): void {
    const res = this.#res;
    if (!res.destroyed && !this.#exchange.rejected) this.#exchange.upstreamBroke = true;
    res.destroy();
  }
}

/** An HTTP/2 request may carry a body with neither Content-Length nor Transfer-Encoding: it has one unless its HEADERS frame ended the stream. */
function h2HasBody(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2 && !(req as unknown as Http2ServerRequest).stream.endAfterHeaders;
}

function sumCounters(all: readonly RouteCounters[]): RouteCounters {
  const sum = { requests: 0, succeeded: 0, clientErrors: 0, rejected: 0, clientHangups: 0, upstreamFailures: 0 };
  for (const c of all) for (const k of Object.keys(sum) as (keyof RouteCounters)[]) sum[k] += c[k];
  return sum;
}

/** The route counter each outcome is filed under. */
const counterOf = {
  succeeded: 'succeeded',
  clientError: 'clientErrors',
  rejected: 'rejected',
  clientHangup: 'clientHangups',
  upstreamFailure: 'upstreamFailures',
} as const satisfies Record<Exclude<AccessLogOutcome, 'noRoute'>, keyof RouteCounters>;

/** What became of a finished exchange. */
function outcomeOf(exchange: Exchange, res: ServerResponse): Exclude<AccessLogOutcome, 'noRoute'> {
  // Which side broke first decides: the instance breaking off its body closes the client's
  // response too, and a client hanging up aborts the upstream body too.
  if (exchange.rejected) return 'rejected';
  if (exchange.upstreamBroke) return 'upstreamFailure';
  if (!res.writableFinished) return 'clientHangup';
  if (res.statusCode >= 500) return 'upstreamFailure';
  if (res.statusCode >= 400) return 'clientError';
  return 'succeeded';
}

/** What became of an upgrade, by the status its client got (0: it left before an answer). */
function upgradeOutcome(status: number): Exclude<AccessLogOutcome, 'noRoute'> {
  if (status === 0) return 'clientHangup';
  if (isRejection(status)) return 'rejected';
  if (status >= 500) return 'upstreamFailure';
  if (status >= 400) return 'clientError';
  return 'succeeded';
}

/** A pre filter's answer that is a limit's refusal (counted as `rejected`). */
function isRejection(status: number): boolean {
  return status === 429 || status === 413;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
