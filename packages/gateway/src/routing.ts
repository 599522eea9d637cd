/**
 * The explicit routes as one immutable table: validated once, sorted by
 * precedence, matched per request on path prefix, host and headers, and
 * split over weighted services. A reload builds a new table and swaps the
 * reference: a request in flight keeps the route it matched.
 */
import type { IncomingMessage } from 'node:http';
import { InvalidOptionError, hashKey32, validateServiceName } from '@proxyless/core';
import { checkObject, resolvePolicy, routeKeys, routePrefix, type FullPolicy, type GatewayConfig, type ResolvedRoute } from './config.js';
import type { ResolvedRateLimit } from './rate-limit.js';

/** A route's host condition: exact, or a `*.` suffix. */
type HostRule = { readonly exact: string } | { readonly suffix: string };

/** One header condition: an exact value, present (`true`) or absent (`false`). */
interface HeaderRule {
  readonly name: string;
  readonly value: string | boolean;
}

/** One configured route, resolved: where it matches and the routes (one per service) it sends to. */
interface Rule {
  /** What makes it the same route in another table: its path and its host and header conditions. */
  readonly identity: string;
  readonly prefix: string;
  readonly host: HostRule | undefined;
  readonly headers: readonly HeaderRule[];
  /** One per service; a plain route has one. */
  readonly targets: readonly ResolvedRoute[];
  /** Running sums of the targets' weights (the last is the total). */
  readonly cumulative: readonly number[];
  readonly sticky: { readonly header: string } | { readonly cookie: string } | undefined;
  /** Position in the config: the last tie-break. */
  readonly order: number;
}

const tokenPattern = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const hostPattern = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

function checkHost(option: string, value: unknown): HostRule {
  const host = typeof value === 'string' ? value.toLowerCase().replace(/\.$/, '') : undefined;
  if (host === undefined || !hostPattern.test(host)) {
    throw new InvalidOptionError(option, value, 'must be a host name such as "api.example.com", or "*.example.com" for its subdomains (no port, no scheme)');
  }
  return host.startsWith('*.') ? { suffix: host.slice(1) } : { exact: host };
}

function checkHeaders(option: string, value: unknown): HeaderRule[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(option, value, 'must be an object of header conditions such as { "x-canary": "1", "x-debug": true }');
  }
  return Object.entries(value as Record<string, unknown>).map(([name, v]) => {
    if (!tokenPattern.test(name)) throw new InvalidOptionError(`${option}.${name}`, name, 'is not a header name');
    if (typeof v !== 'string' && typeof v !== 'boolean') {
      throw new InvalidOptionError(`${option}.${name}`, v, 'must be a string (the exact value), true (present) or false (absent)');
    }
    return { name: name.toLowerCase(), value: v };
  });
}

function checkSticky(option: string, value: unknown): Rule['sticky'] {
  checkObject(option, value, ['header', 'cookie'], 'sticky', '{ "header": "x-user-id" } or { "cookie": "session" }');
  const v = value as { header?: unknown; cookie?: unknown };
  if ((v.header === undefined) === (v.cookie === undefined)) throw new InvalidOptionError(option, value, 'must name one of "header" or "cookie"');
  const name = v.header ?? v.cookie;
  if (typeof name !== 'string' || !tokenPattern.test(name)) throw new InvalidOptionError(`${option}.${v.header === undefined ? 'cookie' : 'header'}`, name, 'must be a header or cookie name');
  return v.header === undefined ? { cookie: name } : { header: name.toLowerCase() };
}

/** The request's host, lower case, without port or trailing dot (HTTP/2's `:authority` when there is no `Host`). */
export function requestHost(req: IncomingMessage): string {
  const raw = req.headers.host ?? (req.headers[':authority'] as string | undefined) ?? '';
  let host = raw.startsWith('[') ? raw.slice(0, raw.indexOf(']') + 1) : raw.split(':', 1)[0] ?? '';
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host.toLowerCase();
}

/** One cookie's value from the `Cookie` header. */
function cookieValue(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Precedence among routes: longer prefix, then exact host, longer wildcard, no host; then more header conditions; then config order. */
function byPrecedence(a: Rule, b: Rule): number {
  const hostRank = (r: Rule): number => (r.host === undefined ? 0 : 'exact' in r.host ? 100_000 : r.host.suffix.length);
  return b.prefix.length - a.prefix.length || hostRank(b) - hostRank(a) || b.headers.length - a.headers.length || a.order - b.order;
}

/** `95 %`-style share of a weight, for route ids. */
function share(weight: number, total: number): string {
  return `${Math.round((weight / total) * 1000) / 10}%`;
}

/**
 * The explicit routes, ready to match: validated, sorted by precedence.
 * Immutable; a reload makes a new one.
 */
export class RouteTable {
  /** Every route a request may be given (one per service of each configured route), in precedence order. */
  readonly routes: readonly ResolvedRoute[];
  readonly #rules: readonly Rule[];
  readonly #random: () => number;

  constructor(rules: readonly Rule[], random: () => number = Math.random) {
    this.#rules = [...rules].sort(byPrecedence);
    this.routes = this.#rules.flatMap((r) => r.targets);
    this.#random = random;
  }

  /**
   * This table, but with `previous`'s rate-limit rule objects where a route
   * (same path, host and header conditions) kept an equal `rateLimit`
   * (`ratePerSecond`, `burst`, `key`, `maxKeys`): limiters belong to a rule
   * object, so those routes keep their buckets across a reload, and a reload
   * never hands out a fresh burst. A changed limit keeps its new object (new,
   * full buckets); a route that is new or lost its limit has nothing to keep.
   */
  keepRateLimitsOf(previous: RouteTable): RouteTable {
    const before = new Map<string, ResolvedRateLimit>();
    for (const rule of previous.#rules) {
      const limit = rule.targets[0]?.rateLimit;
      // Two routes with one identity: the first in precedence is the one that matches.
      if (limit && !before.has(rule.identity)) before.set(rule.identity, limit);
    }
    let kept = false;
    const rules = this.#rules.map((rule): Rule => {
      const limit = rule.targets[0]?.rateLimit;
      const old = before.get(rule.identity);
      if (!limit || !old || limit === old || !sameLimit(limit, old)) return rule;
      kept = true;
      // The shares of a weighted route share one rule object: they keep sharing the old one.
      return { ...rule, targets: rule.targets.map((t) => ({ ...t, rateLimit: old })) };
    });
    return kept ? new RouteTable(rules, this.#random) : this;
  }

  /** The services the routes send to. */
  get services(): Set<string> {
    return new Set(this.routes.map((r) => r.service));
  }

  /** The route for a request, or `undefined` when no explicit route matches (then the catalog's `/<service>/**` is tried). */
  match(path: string, req: IncomingMessage): ResolvedRoute | undefined {
    let host: string | undefined;
    for (const rule of this.#rules) {
      const prefix = rule.prefix;
      if (!(prefix === '' || (path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47 /* / */)))) continue;
      if (rule.host !== undefined) {
        host ??= requestHost(req);
        if ('exact' in rule.host ? host !== rule.host.exact : !host.endsWith(rule.host.suffix) || host.length === rule.host.suffix.length) continue;
      }
      if (rule.headers.length > 0 && !rule.headers.every((h) => matchesHeader(req, h))) continue;
      const targets = rule.targets;
      return targets.length === 1 ? targets[0] : this.#pick(rule, req);
    }
    return undefined;
  }

  /** A weighted pick: by the sticky key's hash when the request has one, else at random. */
  #pick(rule: Rule, req: IncomingMessage): ResolvedRoute | undefined {
    const total = rule.cumulative[rule.cumulative.length - 1] ?? 0;
    let key: string | undefined;
    if (rule.sticky !== undefined) {
      if ('header' in rule.sticky) {
        const value = req.headers[rule.sticky.header];
        key = Array.isArray(value) ? value[0] : value;
      } else key = cookieValue(req, rule.sticky.cookie);
    }
    const point = (key ? hashKey32(key) / 2 ** 32 : this.#random()) * total;
    for (let i = 0; i < rule.cumulative.length; i++) if (point < (rule.cumulative[i] ?? 0)) return rule.targets[i];
    return rule.targets[rule.targets.length - 1];
  }
}

function sameLimit(a: ResolvedRateLimit, b: ResolvedRateLimit): boolean {
  return a.ratePerSecond === b.ratePerSecond && a.burst === b.burst && a.header === b.header && a.maxKeys === b.maxKeys;
}

function matchesHeader(req: IncomingMessage, condition: HeaderRule): boolean {
  const value = req.headers[condition.name];
  if (condition.value === true) return value !== undefined;
  if (condition.value === false) return value === undefined;
  return (Array.isArray(value) ? value.join(', ') : value) === condition.value;
}

/**
 * Validates routes (the config file's `routes`, or a registry key's value) against `defaults`
 * and builds their table. `option` names them in errors (`routes`, or the key).
 */
export function resolveRouteTable(routes: unknown, config: Pick<GatewayConfig, 'defaults'>, option = 'routes', random?: () => number): RouteTable {
  const defaults = resolvePolicy('defaults', config.defaults ?? {});
  if (routes === undefined) return new RouteTable([], random);
  if (!Array.isArray(routes)) throw new InvalidOptionError(option, routes, 'must be an array of routes such as [{ "path": "/api/**", "service": "users" }]');
  return new RouteTable(routes.map((route: unknown, i) => resolveRule(`${option}[${i}]`, route, defaults, i)), random);
}

function resolveRule(option: string, value: unknown, defaults: FullPolicy, order: number): Rule {
  checkObject(option, value, routeKeys, 'a route', '{ "path": "/api/**", "service": "users" }');
  const route = value as Record<string, unknown>;
  const resolved = resolvePolicy(option, route, defaults);
  // Its own rule object: the rate limiter is per rule, and routes inheriting `defaults` must not share buckets.
  const policy = { ...resolved, rateLimit: resolved.rateLimit && { ...resolved.rateLimit } };
  if (route['stripPrefix'] !== undefined && typeof route['stripPrefix'] !== 'boolean') {
    throw new InvalidOptionError(`${option}.stripPrefix`, route['stripPrefix'], 'must be a boolean');
  }
  const prefix = routePrefix(`${option}.path`, route['path']);
  const host = route['host'] === undefined ? undefined : checkHost(`${option}.host`, route['host']);
  const headers = route['headers'] === undefined ? [] : checkHeaders(`${option}.headers`, route['headers']);
  const split = splitOf(option, route);
  const sticky = route['sticky'] === undefined ? undefined : checkSticky(`${option}.sticky`, route['sticky']);
  if (sticky !== undefined && route['services'] === undefined) throw new InvalidOptionError(`${option}.sticky`, route['sticky'], 'applies to weighted "services" only');
  const conditions = [
    ...(host === undefined ? [] : [`host=${'exact' in host ? host.exact : `*${host.suffix}`}`]),
    ...headers.map((h) => (h.value === true ? h.name : h.value === false ? `!${h.name}` : `${h.name}=${h.value}`)),
  ];
  // Sorted: the same conditions written in another order are the same route.
  const identity = `${prefix} [${[...conditions].sort().join(', ')}]`;
  const base = `${String(route['path'])}${conditions.length > 0 ? ` [${conditions.join(', ')}]` : ''} -> `;
  const total = split.reduce((a, s) => a + s.weight, 0);
  let sum = 0;
  return {
    identity,
    prefix,
    host,
    headers,
    targets: split.map((s) => ({
      id: base + s.service + (route['services'] === undefined ? '' : ` (${share(s.weight, total)})`),
      prefix,
      service: s.service,
      stripPrefix: (route['stripPrefix'] as boolean | undefined) ?? true,
      ...policy,
      idleTimeoutMs: policy.idleTimeoutMs || policy.timeoutMs,
      source: 'config',
    })),
    cumulative: split.map((s) => (sum += s.weight)),
    sticky,
    order,
  };
}

/** `service`, or the weighted `services`: exactly one of them. */
function splitOf(option: string, route: Record<string, unknown>): { service: string; weight: number }[] {
  if ((route['service'] === undefined) === (route['services'] === undefined)) {
    throw new InvalidOptionError(option, '<route>', 'needs either "service" or weighted "services" (not both)');
  }
  if (route['service'] !== undefined) return [{ service: validateServiceName(route['service'], `${option}.service`), weight: 1 }];
  const services = route['services'];
  if (!Array.isArray(services) || services.length === 0) {
    throw new InvalidOptionError(`${option}.services`, services, 'must be a non-empty array such as [{ "service": "users", "weight": 95 }, { "service": "users-v2", "weight": 5 }]');
  }
  const seen = new Set<string>();
  const split = services.map((entry: unknown, i) => {
    const at = `${option}.services[${i}]`;
    checkObject(at, entry, ['service', 'weight'], 'a weighted service', '{ "service": "users", "weight": 95 }');
    const e = entry as { service?: unknown; weight?: unknown };
    const service = validateServiceName(e.service, `${at}.service`);
    if (seen.has(service)) throw new InvalidOptionError(`${at}.service`, service, 'is listed twice in this route');
    seen.add(service);
    if (typeof e.weight !== 'number' || !Number.isFinite(e.weight) || e.weight < 0) throw new InvalidOptionError(`${at}.weight`, e.weight, 'must be a number of at least 0');
    return { service, weight: e.weight };
  });
  if (split.every((s) => s.weight === 0)) throw new InvalidOptionError(`${option}.services`, '<weights>', 'must give at least one service a weight above 0');
  return split;
}
