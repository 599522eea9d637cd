/** Gateway configuration: types, defaults and validation. */
import { readFileSync } from 'node:fs';
import type { BlockList } from 'node:net';
import { InvalidOptionError } from '@proxyless/core';
import { checkKnownKeys, optionKeys } from '@proxyless/core/internal';
import { defaultMaxBodyBytes } from './body-limit.js';
import { checkTrustedProxies } from './trusted-proxies.js';
import { checkAccessLog, type AccessLogConfig, type ResolvedAccessLog } from './access-log.js';
import { checkRateLimit, type RateLimitConfig, type ResolvedRateLimit } from './rate-limit.js';
import { checkBackends, checkTls, type BackendsConfig, type TlsConfig } from './tls.js';

/** Timeout and retry policy of a route. */
export interface RoutePolicy {
  /** Time until the upstream's response headers arrive, per try, in ms. Default 10 000. */
  timeoutMs?: number;
  /**
   * Longest silence between two chunks of the instance's response body, ms
   * (up to 1 200 000): a server-sent event stream or a long download lives as
   * long as it keeps sending; set it above the stream's heartbeat interval.
   * Default: the route's `timeoutMs`. Every route to a service shares its
   * connection pools, so the service gets the longest of its routes' values
   * (undici's `bodyTimeout`, checked about once a second). A reload that
   * changes it gives the service new pools; exchanges in flight finish on the old ones.
   */
  idleTimeoutMs?: number;
  /**
   * Extra tries on another instance after a connection failure or a
   * `retryOnStatus` answer. Only requests without a body are retried (a
   * streamed body cannot be replayed). Default 1.
   */
  retries?: number;
  /** Upstream statuses retried like failures. Default `[]`. */
  retryOnStatus?: number[];
  /** Require `Authorization: Bearer <token>`. Default false. */
  auth?: boolean;
  /**
   * Local rate limit per client key (a token bucket); `null` turns off one set in `defaults`.
   * Default none. With `--workers N` each worker limits on its own (see the README). A routes
   * reload keeps the buckets of a route (same path, host and headers) whose limit is unchanged.
   * Checked before any filter: a request over the limit is answered 429 without reaching one
   * (post filters given in `filters` still shape the answer).
   */
  rateLimit?: RateLimitConfig | null;
  /**
   * Largest request body forwarded, bytes; 0 for no limit. Default 1 048 576 (nginx's
   * `client_max_body_size` 1m). Over it the gateway answers 413.
   */
  maxBodyBytes?: number;
}

/** One service of a weighted route (`services`). */
export interface WeightedService {
  /** Service to send this share to. */
  service: string;
  /**
   * Its share, relative to the route's other services (`95` and `5` send 95 % and 5 %).
   * A number ≥ 0; `0` sends it nothing (a canary turned off). The weights must not all be 0.
   */
  weight: number;
}

/**
 * Keeps a client on one service of a weighted route: the request's value of
 * this header or cookie is hashed to the same share every time (while the
 * weights stay the same). Requests without it are split at random.
 */
export type StickyConfig = { header: string } | { cookie: string };

/**
 * An explicit route. It matches on its path prefix, and optionally on the
 * request's `host` and `headers`; it sends to one `service` or splits over
 * weighted `services` (a canary).
 *
 * Precedence: the longest matching `path` wins; among routes with the same
 * path, the most specific one: an exact `host` before a `*.` wildcard (the
 * longer wildcard first) before none, then more `headers` conditions before
 * fewer, then the order in the config.
 */
export interface RouteConfig extends RoutePolicy {
  /** Path prefix, written `/api/users/**` or `/api/users`. */
  path: string;
  /** Service to send it to. Either `service` or `services`. */
  service?: string;
  /**
   * Weighted services to split the route's requests over, e.g. a canary:
   * `[{ "service": "users", "weight": 95 }, { "service": "users-v2", "weight": 5 }]`.
   * Each request picks one at random by weight (or by `sticky`). Either `service` or `services`.
   */
  services?: WeightedService[];
  /** With `services`: pick by the hash of this header's or cookie's value instead of at random. */
  sticky?: StickyConfig;
  /**
   * Match only requests for this host (the `Host` header, without its port; case-insensitive):
   * `api.example.com`, or `*.example.com` for any subdomain (not `example.com` itself).
   */
  host?: string;
  /**
   * Match only requests with these headers (names case-insensitive): a string is the exact
   * value, `true` any value (present), `false` absent. E.g. `{ "x-canary": "1" }`.
   */
  headers?: Record<string, string | boolean>;
  /** Remove the matched prefix before forwarding. Default true (Zuul's `stripPrefix`). */
  stripPrefix?: boolean;
}

/** Where hot-reloaded routes live: one key, in the registry the gateway uses (`consulKey` with Consul, `etcdKey` with etcd). */
export interface RoutesSourceConfig {
  /** A Consul KV key, e.g. `proxyless/gateway/routes` (watched with a blocking query; read needs `key:read`). */
  consulKey?: string;
  /** An etcd key, e.g. `/proxyless/gateway/routes` (watched with an etcd watch). */
  etcdKey?: string;
}

/** Everything the gateway needs: the JSON config file's shape (`proxyless-gateway --config <file>`). */
export interface GatewayConfig {
  /** Where services are registered: `consul` or `etcd`. Default `consul`. */
  registry?: 'consul' | 'etcd';
  /** Consul HTTP address, `host:port` or URL. Default `CONSUL_HTTP_ADDR` or `127.0.0.1:8500`. */
  consulAddress?: string;
  /** etcd client URLs (registry `etcd`). Default `ETCDCTL_ENDPOINTS` or `127.0.0.1:2379`; TLS and auth from `ETCDCTL_*`. */
  etcdEndpoints?: string[];
  /** Listen address. Default `127.0.0.1`. */
  host?: string;
  /** Listen port; 0 picks a free one. Default 8080. */
  port?: number;
  /** The gateway's own service name (registration; never routed). Default `gateway`. */
  serviceName?: string;
  /** Explicit routes; checked before the catalog routes, longest prefix first. */
  routes?: RouteConfig[];
  /** Catalog routes: `/<service>/**` → `<service>` with `/<service>` stripped. */
  discovery?: {
    /** Default true. */
    enabled?: boolean;
    /** Services never routed by name (`consul` and the gateway itself never are). */
    ignored?: string[];
    /**
     * How long `listen()` waits for the registry's first list of services, ms. Default 10000.
     * A registry that has not answered by then fails the start with one line naming it and its address;
     * one where nothing answers at the address (refused, unknown host, TLS) fails it at once.
     */
    startTimeoutMs?: number;
  };
  /** Policy for every route that does not set its own. */
  defaults?: RoutePolicy;
  /** Bearer tokens accepted on `auth: true` routes (the example auth hook). */
  authTokens?: string[];
  /**
   * Routes hot-reloaded from a registry key (Zuul's dynamic routing, consul-template's job):
   * the key holds a JSON array of routes, checked exactly like `routes`. A valid value replaces
   * the explicit routes at once (no reload, no dropped connection; a request in flight keeps its
   * route); an invalid one is refused and reported (the last good routes stay); while the key is
   * absent, `routes` from the config apply. Default none.
   */
  routesSource?: RoutesSourceConfig;
  /**
   * Peers allowed to say who the client is: IP addresses, CIDRs (IPv4 or
   * IPv6: `"10.0.0.0/8"`, `"2001:db8::/32"`) and the shorthands `loopback`,
   * `private` (RFC 1918 and `fc00::/7`) and `linklocal`. A request's
   * `X-Forwarded-*`, `Forwarded` and `X-Real-IP` headers are honoured only
   * when the socket's peer is one of them (`X-Forwarded-For` is then appended
   * to, and the client's address, for rate limits and the access log, is the
   * right-most untrusted `X-Forwarded-For` entry); from anyone else they are
   * dropped and replaced by the gateway's own. Default `[]`: trust nobody.
   */
  trustedProxies?: string[];
  /**
   * TLS termination: the port speaks TLS (HTTPS, and HTTP/2 by ALPN unless
   * `tls.http2` is false) with this certificate, reloaded when its files
   * change. Default: plain HTTP/1.1.
   */
  tls?: TlsConfig;
  /** How instances are reached: HTTP/2 (`allowH2`) and TLS settings for HTTPS instances. Default: HTTP/1.1, Node's CA roots. */
  backends?: BackendsConfig;
  /**
   * One JSON line per request (time, method, path, status, bytes, duration,
   * route, service, endpoint, attempts, client address, request id, outcome)
   * to `stdout` or appended to a file, and per WebSocket upgrade when it ends
   * (status 101 and the tunnel's life, bytes each way, who closed it, the
   * close code; or the refusal's status). Default off. Headers are never logged;
   * the query only with `includeQuery` (secret-looking values redacted).
   */
  accessLog?: AccessLogConfig;
}

/** A route with every default applied. */
export interface ResolvedRoute {
  readonly id: string;
  /** Matched prefix, without the trailing `/**`. */
  readonly prefix: string;
  readonly service: string;
  readonly stripPrefix: boolean;
  readonly timeoutMs: number;
  /** Longest silence between two response body chunks, ms (`idleTimeoutMs`, else `timeoutMs`). */
  readonly idleTimeoutMs: number;
  readonly retries: number;
  readonly retryOnStatus: readonly number[];
  readonly auth: boolean;
  readonly rateLimit: ResolvedRateLimit | null;
  /** 0: no limit. */
  readonly maxBodyBytes: number;
  readonly source: 'config' | 'catalog';
}

/** A policy with every default applied (`rateLimit` validated). */
export type FullPolicy = Required<Omit<RoutePolicy, 'rateLimit'>> & { rateLimit: ResolvedRateLimit | null };

/** `idleTimeoutMs: 0` stands for "the route's `timeoutMs`" until a route is resolved. */
const builtInDefaults: FullPolicy = { timeoutMs: 10_000, idleTimeoutMs: 0, retries: 1, retryOnStatus: [], auth: false, rateLimit: null, maxBodyBytes: defaultMaxBodyBytes };

function checkInt(option: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(option, value, `must be an integer between ${min} and ${max}`);
  }
  return value;
}

/** The keys of a policy (`defaults`), checked so that a misspelt `timeoutMS` fails instead of being ignored. */
const policyKeys = optionKeys<RoutePolicy>({ timeoutMs: true, idleTimeoutMs: true, retries: true, retryOnStatus: true, auth: true, rateLimit: true, maxBodyBytes: true });

/** The keys of a route: its policy's, plus where it matches and where it sends. @internal */
export const routeKeys: readonly string[] = [
  ...policyKeys,
  ...optionKeys<Omit<RouteConfig, keyof RoutePolicy>>({ path: true, service: true, services: true, sticky: true, host: true, headers: true, stripPrefix: true }),
];

const discoveryKeys = optionKeys<NonNullable<GatewayConfig['discovery']>>({ enabled: true, ignored: true, startTimeoutMs: true });

/** Checks that `value` is an object with only `known` keys (the nearest one named when not). @internal */
export function checkObject(option: string, value: unknown, known: readonly string[], owner: string, example: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidOptionError(option, value, `must be an object such as ${example}`);
  checkKnownKeys(option, value, known, owner);
}

/** Applies defaults to a policy and validates it (`defaults`: its keys too; a route's are checked by `resolveRouteTable`). */
export function resolvePolicy(option: string, policy: RoutePolicy, base: FullPolicy = builtInDefaults): FullPolicy {
  if (option === 'defaults') checkObject(option, policy, policyKeys, 'a route policy (defaults)', '{ "timeoutMs": 2000, "retries": 1 }');
  const out = { ...base };
  if (policy.timeoutMs !== undefined) out.timeoutMs = checkInt(`${option}.timeoutMs`, policy.timeoutMs, 1, 3_600_000);
  if (policy.idleTimeoutMs !== undefined) out.idleTimeoutMs = checkInt(`${option}.idleTimeoutMs`, policy.idleTimeoutMs, 1, 1_200_000);
  if (policy.retries !== undefined) out.retries = checkInt(`${option}.retries`, policy.retries, 0, 10);
  if (policy.retryOnStatus !== undefined) {
    if (!Array.isArray(policy.retryOnStatus)) throw new InvalidOptionError(`${option}.retryOnStatus`, policy.retryOnStatus, 'must be an array of statuses');
    out.retryOnStatus = policy.retryOnStatus.map((s, i) => checkInt(`${option}.retryOnStatus[${i}]`, s, 100, 599));
  }
  if (policy.auth !== undefined) {
    if (typeof policy.auth !== 'boolean') throw new InvalidOptionError(`${option}.auth`, policy.auth, 'must be a boolean');
    out.auth = policy.auth;
  }
  if (policy.maxBodyBytes !== undefined) out.maxBodyBytes = checkInt(`${option}.maxBodyBytes`, policy.maxBodyBytes, 0, Number.MAX_SAFE_INTEGER);
  if (policy.rateLimit !== undefined) out.rateLimit = checkRateLimit(`${option}.rateLimit`, policy.rateLimit);
  return out;
}

/** Normalises `/api/users/**` and `/api/users/` to `/api/users`. */
export function routePrefix(option: string, path: unknown): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError(option, path, 'must be a path starting with /');
  const prefix = path.replace(/\/\*\*$/, '').replace(/\/+$/, '');
  if (prefix.includes('*')) throw new InvalidOptionError(option, path, 'may only end with /**');
  return prefix;
}

/** The policy applied to catalog routes. */
export function catalogRoute(service: string, config: GatewayConfig): ResolvedRoute {
  const policy = resolvePolicy('defaults', config.defaults ?? {});
  return { id: `/${service}/** -> ${service}`, prefix: `/${service}`, service, stripPrefix: true, ...policy, idleTimeoutMs: policy.idleTimeoutMs || policy.timeoutMs, source: 'catalog' };
}

/** `routesSource`: one key, in the registry the gateway uses. */
function checkRoutesSource(value: unknown, registry: string): void {
  checkObject('routesSource', value, ['consulKey', 'etcdKey'], 'routesSource', '{ "consulKey": "proxyless/gateway/routes" } or { "etcdKey": "/proxyless/gateway/routes" }');
  const v = value as RoutesSourceConfig;
  const option = registry === 'etcd' ? 'etcdKey' : 'consulKey';
  const other = registry === 'etcd' ? 'consulKey' : 'etcdKey';
  if (v[other] !== undefined) throw new InvalidOptionError(`routesSource.${other}`, v[other], `needs registry "${other === 'etcdKey' ? 'etcd' : 'consul'}" (the registry is "${registry}"): use routesSource.${option}`);
  const key = v[option];
  if (typeof key !== 'string' || key === '' || key.length > 512 || (option === 'consulKey' && key.startsWith('/'))) {
    throw new InvalidOptionError(`routesSource.${option}`, key, option === 'consulKey' ? 'must be a Consul KV key such as "proxyless/gateway/routes" (no leading /)' : 'must be an etcd key such as "/proxyless/gateway/routes"');
  }
}

/** The config file's keys. @internal */
export const configKeys = optionKeys<GatewayConfig>({
  registry: true, consulAddress: true, etcdEndpoints: true, host: true, port: true, serviceName: true, routes: true, discovery: true, defaults: true, authTokens: true, trustedProxies: true, tls: true, backends: true, accessLog: true, routesSource: true,
});

/**
 * Checks the config's shape once, before anything starts: unknown keys (with
 * the nearest known one), the listen address, the registry. Route policies are
 * checked by `resolveRouteTable`.
 */
export function checkConfig(config: unknown, known: readonly string[] = configKeys): asserts config is GatewayConfig {
  checkedConfig(config, known);
}

/** What checking the config builds on the way, kept so the gateway does not build it again. @internal */
export interface CheckedConfig {
  /** `trustedProxies` as a BlockList; undefined: trust nobody. */
  readonly trust: BlockList | undefined;
  /** `accessLog`; undefined: off. */
  readonly accessLog: ResolvedAccessLog | undefined;
}

/** {@link checkConfig}, returning what it built. @internal */
export function checkedConfig(config: unknown, known: readonly string[] = configKeys): CheckedConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new InvalidOptionError('config', config, 'must be a JSON object');
  checkKnownKeys('', config, known, 'the gateway config');
  const c = config as GatewayConfig;
  if (c.port !== undefined) checkInt('port', c.port, 0, 65_535);
  if (c.host !== undefined && (typeof c.host !== 'string' || c.host === '')) throw new InvalidOptionError('host', c.host, 'must be an address such as 127.0.0.1 or 0.0.0.0');
  if (c.registry !== undefined && c.registry !== 'consul' && c.registry !== 'etcd') throw new InvalidOptionError('registry', c.registry, 'must be "consul" or "etcd"');
  if (c.routes !== undefined && !Array.isArray(c.routes)) throw new InvalidOptionError('routes', c.routes, 'must be an array of routes');
  if (c.routesSource !== undefined) checkRoutesSource(c.routesSource, c.registry ?? 'consul');
  if (c.discovery !== undefined) checkObject('discovery', c.discovery, discoveryKeys, 'discovery', '{ "enabled": true, "ignored": ["legacy"] }');
  if (c.etcdEndpoints !== undefined && (!Array.isArray(c.etcdEndpoints) || c.etcdEndpoints.some((e) => typeof e !== 'string'))) {
    throw new InvalidOptionError('etcdEndpoints', c.etcdEndpoints, 'must be an array of URLs such as ["http://127.0.0.1:2379"]');
  }
  if (c.authTokens !== undefined && (!Array.isArray(c.authTokens) || c.authTokens.some((t) => typeof t !== 'string'))) {
    throw new InvalidOptionError('authTokens', '<not shown>', 'must be an array of strings');
  }
  const trust = checkTrustedProxies('trustedProxies', c.trustedProxies);
  if (c.tls !== undefined) checkTls(c.tls);
  if (c.backends !== undefined) checkBackends(c.backends);
  return { trust, accessLog: checkAccessLog('accessLog', c.accessLog) };
}

/**
 * Reads and checks a JSON config file. A file that cannot be read or parsed
 * is an `InvalidOptionError` on `config` naming the file and the reason.
 */
export function loadConfigFile(path: string): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new InvalidOptionError('config', path, `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); pass an existing JSON file to --config or GATEWAY_CONFIG`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InvalidOptionError('config', path, `is not valid JSON (${(error as Error).message})`);
  }
  checkConfig(parsed);
  return parsed;
}
