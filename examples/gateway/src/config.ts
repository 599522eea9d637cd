/** Gateway configuration: types, defaults and validation. */
import { readFileSync } from 'node:fs';
import { InvalidOptionError, validateServiceName } from '@proxyless/core';

/** Timeout and retry policy of a route. */
export interface RoutePolicy {
  /** Time until the upstream's response headers arrive, per try, in ms. Default 10 000. */
  timeoutMs?: number;
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
}

/** An explicit route. */
export interface RouteConfig extends RoutePolicy {
  /** Path prefix, written `/api/users/**` or `/api/users`. */
  path: string;
  /** Service to send it to. */
  service: string;
  /** Remove the matched prefix before forwarding. Default true (Zuul's `stripPrefix`). */
  stripPrefix?: boolean;
}

/** Everything the gateway needs. */
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
     * A registry that cannot be reached by then fails the start with one line naming it and its address.
     */
    startTimeoutMs?: number;
  };
  /** Policy for every route that does not set its own. */
  defaults?: RoutePolicy;
  /** Bearer tokens accepted on `auth: true` routes (the example auth hook). */
  authTokens?: string[];
}

/** A route with every default applied. */
export interface ResolvedRoute {
  readonly id: string;
  /** Matched prefix, without the trailing `/**`. */
  readonly prefix: string;
  readonly service: string;
  readonly stripPrefix: boolean;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryOnStatus: readonly number[];
  readonly auth: boolean;
  readonly source: 'config' | 'catalog';
}

const builtInDefaults: Required<RoutePolicy> = { timeoutMs: 10_000, retries: 1, retryOnStatus: [], auth: false };

function checkInt(option: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(option, value, `must be an integer between ${min} and ${max}`);
  }
  return value;
}

/** Applies defaults to a policy and validates it. */
export function resolvePolicy(option: string, policy: RoutePolicy, base: Required<RoutePolicy> = builtInDefaults): Required<RoutePolicy> {
  const out = { ...base };
  if (policy.timeoutMs !== undefined) out.timeoutMs = checkInt(`${option}.timeoutMs`, policy.timeoutMs, 1, 3_600_000);
  if (policy.retries !== undefined) out.retries = checkInt(`${option}.retries`, policy.retries, 0, 10);
  if (policy.retryOnStatus !== undefined) {
    if (!Array.isArray(policy.retryOnStatus)) throw new InvalidOptionError(`${option}.retryOnStatus`, policy.retryOnStatus, 'must be an array of statuses');
    out.retryOnStatus = policy.retryOnStatus.map((s, i) => checkInt(`${option}.retryOnStatus[${i}]`, s, 100, 599));
  }
  if (policy.auth !== undefined) {
    if (typeof policy.auth !== 'boolean') throw new InvalidOptionError(`${option}.auth`, policy.auth, 'must be a boolean');
    out.auth = policy.auth;
  }
  return out;
}

/** Normalises `/api/users/**` and `/api/users/` to `/api/users`. */
export function routePrefix(option: string, path: unknown): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError(option, path, 'must be a path starting with /');
  const prefix = path.replace(/\/\*\*$/, '').replace(/\/+$/, '');
  if (prefix.includes('*')) throw new InvalidOptionError(option, path, 'may only end with /**');
  return prefix;
}

/** Validates explicit routes and sorts them longest prefix first. */
export function resolveRoutes(config: GatewayConfig): ResolvedRoute[] {
  const defaults = resolvePolicy('defaults', config.defaults ?? {});
  const routes = (config.routes ?? []).map((route, i): ResolvedRoute => {
    const option = `routes[${i}]`;
    const policy = resolvePolicy(option, route, defaults);
    if (route.stripPrefix !== undefined && typeof route.stripPrefix !== 'boolean') {
      throw new InvalidOptionError(`${option}.stripPrefix`, route.stripPrefix, 'must be a boolean');
    }
    return {
      id: `${route.path} -> ${route.service}`,
      prefix: routePrefix(`${option}.path`, route.path),
      service: validateServiceName(route.service, `${option}.service`),
      stripPrefix: route.stripPrefix ?? true,
      ...policy,
      source: 'config',
    };
  });
  return routes.sort((a, b) => b.prefix.length - a.prefix.length);
}

/** The policy applied to catalog routes. */
export function catalogRoute(service: string, config: GatewayConfig): ResolvedRoute {
  return { id: `/${service}/** -> ${service}`, prefix: `/${service}`, service, stripPrefix: true, ...resolvePolicy('defaults', config.defaults ?? {}), source: 'catalog' };
}

/** Reads a JSON config file. */
export function loadConfigFile(path: string): GatewayConfig {
  return JSON.parse(readFileSync(path, 'utf8')) as GatewayConfig;
}
