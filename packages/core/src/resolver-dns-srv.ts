import { isIP } from 'node:net';
import type * as dnsPacket from 'dns-packet';
import { DnsTransport, type DnsQueryType, type DnsTransportOptions } from './dns-transport.js';
import {
  AbortedError,
  ClosedError,
  InvalidOptionError,
  InvalidServiceNameError,
  NoHealthyInstancesError,
  ResolutionFailedError,
} from './errors.js';
import type { CallOptions, Resolver, ServiceWatch } from './resolver.js';
import { createServiceInstance, type ServiceInstance } from './service-instance.js';
import { checkKnownKeys, checkNumber, optionKeys, validateDatacenter, validateServiceName } from './validate.js';
import { checkDnsTtl, checkLogger, formatConfigWarning, type ConfigLogger } from './doctor.js';
import { backoffDelay, checkBackoff, type BackoffOptions } from './backoff.js';
import { sleep } from './sleep.js';
import { withDeadline } from './deadline.js';
import { WatchHub, type WatchSink } from './watch-hub.js';

/** Per-query options of {@link DnsSrvResolver}. */
export interface DnsSrvQuery {
  /** Consul names: only instances with this tag (`<tag>.<service>.service.consul`). At most one (DNS limit). */
  tags?: readonly string[];
  /** Consul names: datacenter label (`<service>.service.<dc>.consul`). */
  datacenter?: string;
  /** A full SRV name to ask instead, e.g. RFC 2782 `_web._tcp.example.com`. */
  name?: string;
}

/** Options of {@link DnsSrvResolver}. */
export interface DnsSrvResolverOptions extends DnsTransportOptions {
  /** A transport to use (not closed by the resolver). Default: a new one from these options. */
  transport?: DnsTransport;
  /** Consul's DNS domain. Default `consul`. */
  domain?: string;
  /** Name style for services: `consul` (`web.service.consul`) or `rfc2782` (`_web._tcp.service.consul`). Default `consul`. */
  style?: 'consul' | 'rfc2782';
  /** TTL floor, in ms: also the re-query period of a watch when records say TTL 0, as Consul's do. Default 1000. The TTL settings are at most a day. */
  minTtlMs?: number;
  /** TTL ceiling, in ms. Default 300 000 (or `minTtlMs` when higher). */
  maxTtlMs?: number;
  /** How long an NXDOMAIN is remembered, in ms (upper bound on the SOA minimum). Default 5000 (or `minTtlMs` when higher). */
  negativeTtlMs?: number;
  /** Backoff of a watch on errors. Default `{ initialMs: 250, maxMs: 30 000 }`. */
  backoff?: BackoffOptions;
  /** Most cached answers kept. Default 1000. */
  maxCacheEntries?: number;
  /**
   * How fast a change (an instance leaving) should reach callers, in ms, for
   * the configuration doctor: a TTL floor above it is warned about. Default 10 000.
   */
  expectedPropagationMs?: number;
  /** Where configuration warnings go; `false` silences them. Default `console`. */
  logger?: ConfigLogger | false;
}

/** A decoded SRV record. */
export interface SrvRecord {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
}

/**
 * Orders SRV records as RFC 2782 says: ascending priority; within a priority,
 * a weighted random order (weight-0 records first in the running sum, so they
 * are chosen rarely but not never).
 */
export function orderSrvRecords<T extends { readonly priority: number; readonly weight: number }>(records: readonly T[], random: () => number = Math.random): T[] {
  const byPriority = new Map<number, T[]>();
  for (const record of records) {
    const group = byPriority.get(record.priority);
    if (group) group.push(record);
    else byPriority.set(record.priority, [record]);
  }
  const out: T[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const remaining = [...(byPriority.get(priority) ?? [])].sort((a, b) => (a.weight === 0 ? 0 : 1) - (b.weight === 0 ? 0 : 1));
    while (remaining.length > 0) {
      const sum = remaining.reduce((s, r) => s + r.weight, 0);
      const pick = Math.floor(random() * (sum + 1)); // uniform in [0, sum]
      let running = 0;
      let index = remaining.length - 1;
      for (let i = 0; i < remaining.length; i++) {
        running += remaining[i]?.weight ?? 0;
        if (running >= pick) {
          index = i;
          break;
        }
      }
      out.push(...remaining.splice(index, 1));
    }
  }
  return out;
}

/**
 * Decodes Consul's `<hex>.addr.<dc>.consul` SRV targets: 8 hex digits are an
 * IPv4 address, 32 an IPv6 one. Returns `undefined` for any other name.
 */
export function decodeAddrTarget(target: string): string | undefined {
  const m = /^([0-9a-f]{8}|[0-9a-f]{32})\.addr\.[A-Za-z0-9_.-]+?\.?$/i.exec(target);
  if (!m) return undefined;
  const hex = (m[1] ?? '').toLowerCase();
  if (hex.length === 8) return [0, 2, 4, 6].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 32; i += 4) groups.push(hex.slice(i, i + 4));
  // Canonical (compressed) form, the same Node and Consul print.
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}

/** A cache entry of {@link TtlCache}. @internal */
interface CacheEntry<T> {
  value: T;
  expiresAt: number;
  negative: boolean;
}

/**
 * A small TTL cache: positive answers live for their record TTL clamped to
 * `[minTtlMs, maxTtlMs]` (Consul sends TTL 0); negative ones (NXDOMAIN) for
 * the SOA minimum clamped to `[minTtlMs, negativeTtlMs]`.
 * @internal
 */
export class TtlCache<T> {
  readonly #entries = new Map<string, CacheEntry<T>>();

  constructor(
    readonly minTtlMs: number,
    readonly maxTtlMs: number,
    readonly negativeTtlMs: number,
    readonly maxEntries = 1000,
    readonly now: () => number = Date.now,
  ) {}

  /** Applies the floor and ceiling to a TTL in seconds; returns ms. */
  clamp(ttlSeconds: number | undefined): number {
    const ms = ttlSeconds === undefined || !Number.isFinite(ttlSeconds) ? 0 : ttlSeconds * 1000;
    return Math.min(this.maxTtlMs, Math.max(this.minTtlMs, ms));
  }

  get(key: string): CacheEntry<T> | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /** Stores a positive answer; returns the TTL applied, in ms. */
  set(key: string, value: T, ttlSeconds: number | undefined): number {
    const ttlMs = this.clamp(ttlSeconds);
    this.#store(key, { value, expiresAt: this.now() + ttlMs, negative: false });
    return ttlMs;
  }

  /** Stores a negative answer; returns the TTL applied, in ms. */
  setNegative(key: string, value: T, soaMinimumSeconds: number | undefined): number {
    const ms = soaMinimumSeconds === undefined || !Number.isFinite(soaMinimumSeconds) ? this.negativeTtlMs : soaMinimumSeconds * 1000;
    const ttlMs = Math.min(this.negativeTtlMs, Math.max(this.minTtlMs, ms));
    this.#store(key, { value, expiresAt: this.now() + ttlMs, negative: true });
    return ttlMs;
  }

  #store(key: string, entry: CacheEntry<T>): void {
    this.#entries.delete(key);
    if (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, entry);
  }

  clear(): void {
    this.#entries.clear();
  }
}

const dnsLabel = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;

/** Validates a full DNS name (labels of letters, digits, `-`, `_`; at most 253 characters). @internal */
export function validateDnsName(name: unknown, option = 'name'): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 254) {
    throw new InvalidServiceNameError(option, name, 'is not a valid DNS name');
  }
  const labels = name.replace(/\.$/, '').split('.');
  if (!labels.every((l) => dnsLabel.test(l))) throw new InvalidServiceNameError(option, name, 'is not a valid DNS name');
  return name.replace(/\.$/, '');
}

interface Lookup {
  instances: ServiceInstance[];
  ttlMs: number;
}

function lower(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function srvOf(answer: dnsPacket.Answer, name: string): (SrvRecord & { ttl: number }) | undefined {
  if (answer.type !== 'SRV' || typeof answer.name !== 'string' || lower(answer.name) !== lower(name)) return undefined;
  const data = answer.data as Partial<SrvRecord> | undefined;
  if (typeof data !== 'object' || data === null) return undefined;
  const { priority, weight, port, target } = data;
  const u16 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535;
  if (!u16(priority) || !u16(weight) || !u16(port) || port === 0 || typeof target !== 'string') return undefined;
  return { priority, weight, port, target, ttl: typeof answer.ttl === 'number' ? answer.ttl : 0 };
}

function addressesOf(records: readonly dnsPacket.Answer[] | undefined): Map<string, { address: string; ttl: number }[]> {
  const map = new Map<string, { address: string; ttl: number }[]>();
  for (const record of records ?? []) {
    if ((record.type !== 'A' && record.type !== 'AAAA') || typeof record.name !== 'string') continue;
    const address = record.data;
    if (typeof address !== 'string' || isIP(address) !== (record.type === 'A' ? 4 : 6)) continue;
    const key = lower(record.name);
    const list = map.get(key) ?? [];
    list.push({ address, ttl: typeof record.ttl === 'number' ? record.ttl : 0 });
    map.set(key, list);
  }
  return map;
}

const dnsSrvResolverKeys = optionKeys<DnsSrvResolverOptions>({
  servers: true, timeoutMs: true, attempts: true, udpPayloadSize: true,
  transport: true, domain: true, style: true, minTtlMs: true, maxTtlMs: true, negativeTtlMs: true, backoff: true,
  maxCacheEntries: true, expectedPropagationMs: true, logger: true,
});

/**
 * Resolves and watches services through DNS SRV records (Consul's DNS
 * interface or any RFC 2782 name), on its own sockets via {@link DnsTransport}.
 *
 * Targets get addresses from the additional section, from Consul's
 * `<hex>.addr.` names, or from follow-up A/AAAA queries. Instances come in
 * RFC 2782 order. Answers are cached for their TTL within `[minTtlMs,
 * maxTtlMs]`; NXDOMAIN means zero instances and is cached too. A watch
 * re-queries when the TTL (at least the floor) expires and publishes only
 * real changes.
 *
 * @example
 * ```ts
 * const dns = new DnsSrvResolver({ servers: ['127.0.0.1:8600'], minTtlMs: 1000 });
 * const instances = await dns.resolve('web', { tags: ['v2'] }); // v2.web.service.consul
 * const other = await dns.resolve('web', { name: '_web._tcp.example.com' });
 * await dns.close();
 * ```
 */
export class DnsSrvResolver implements Resolver<DnsSrvQuery> {
  /** The transport in use. */
  readonly transport: DnsTransport;
  readonly #ownsTransport: boolean;
  readonly #domain: string;
  readonly #style: 'consul' | 'rfc2782';
  readonly #cache: TtlCache<ServiceInstance[]>;
  readonly #backoff: Required<BackoffOptions>;
  readonly #hub: WatchHub<DnsSrvQuery>;
  readonly #closeController = new AbortController();
  #closed = false;

  constructor(options: DnsSrvResolverOptions = {}) {
    checkKnownKeys('', options, dnsSrvResolverKeys, 'DnsSrvResolver');
    const { transport, domain, style, minTtlMs, maxTtlMs, negativeTtlMs, backoff, maxCacheEntries, expectedPropagationMs, logger, ...transportOptions } = options;
    this.#domain = validateDnsName(domain ?? 'consul', 'domain');
    this.#style = style ?? 'consul';
    if (this.#style !== 'consul' && this.#style !== 'rfc2782') throw new InvalidOptionError('style', style, 'must be consul or rfc2782');
    // At most a day: a watch sleeps for these (a Node timer cannot wait 2^31 ms); the defaults rise with a raised floor.
    const floor = checkNumber('minTtlMs', minTtlMs, 1000, { min: 0, max: 86_400_000 });
    const ceiling = checkNumber('maxTtlMs', maxTtlMs, Math.max(300_000, floor), { min: floor, minOf: 'minTtlMs', max: 86_400_000 });
    const negative = checkNumber('negativeTtlMs', negativeTtlMs, Math.max(5000, floor), { min: floor, minOf: 'minTtlMs', max: 86_400_000 });
    const entries = checkNumber('maxCacheEntries', maxCacheEntries, 1000, { integer: true, min: 1 });
    this.#cache = new TtlCache(floor, ceiling, negative, entries);
    const propagation = checkNumber('expectedPropagationMs', expectedPropagationMs, 10_000, { min: 0 });
    const log = checkLogger(logger);
    for (const w of checkDnsTtl({ minTtlMs: floor, expectedPropagationMs: propagation })) log?.warn(formatConfigWarning('DNS SRV resolver', w));
    this.#backoff = checkBackoff('backoff', backoff);
    if (transport !== undefined) {
      if (!(transport instanceof DnsTransport)) throw new InvalidOptionError('transport', transport, 'must be a DnsTransport');
      this.transport = transport;
      this.#ownsTransport = false;
    } else {
      this.transport = new DnsTransport(transportOptions);
      this.#ownsTransport = true;
    }
    this.#hub = new WatchHub<DnsSrvQuery>('dns', (service, query, sink) => this.#run(service, query, sink));
  }

  /** The SRV name asked for a service and query (validated). */
  srvName(service: string, query: DnsSrvQuery = {}): string {
    validateServiceName(service);
    // A Consul filter expression cannot be expressed in DNS: ignoring it would return instances the caller excluded.
    const filter = (query as { filter?: unknown }).filter;
    if (filter !== undefined) throw new InvalidOptionError('filter', filter, 'cannot be applied over DNS (map the query for the DNS resolver)');
    if (query.name !== undefined) return validateDnsName(query.name);
    const tags = query.tags ?? [];
    if (!Array.isArray(tags) || tags.length > 1) throw new InvalidOptionError('tags', tags, 'must hold at most one tag for DNS');
    const tag: unknown = tags[0];
    if (tag !== undefined && (typeof tag !== 'string' || !dnsLabel.test(tag))) throw new InvalidServiceNameError('tags[0]', tag, 'is not a valid DNS label');
    const dc = query.datacenter === undefined ? '' : `.${validateDatacenter(query.datacenter)}`;
    if (this.#style === 'rfc2782') return `_${service}._${tag ?? 'tcp'}.service${dc}.${this.#domain}`;
    return `${tag === undefined ? '' : `${tag}.`}${service}.service${dc}.${this.#domain}`;
  }

  async #addresses(target: string, signal: AbortSignal): Promise<{ address: string; ttl: number }[]> {
    const found: { address: string; ttl: number }[] = [];
    const ask = async (type: DnsQueryType): Promise<void> => {
      const { packet } = await this.transport.query(target, type, { signal });
      for (const a of addressesOf(packet.answers).get(lower(target)) ?? []) found.push(a);
    };
    const results = await Promise.allSettled([ask('A'), ask('AAAA')]);
    if (found.length === 0) {
      const failure = results.find((r) => r.status === 'rejected');
      if (failure) throw failure.reason;
    }
    return found;
  }

  async #lookup(service: string, query: DnsSrvQuery, signal: AbortSignal): Promise<Lookup> {
    const name = this.srvName(service, query);
    const { packet } = await this.transport.query(name, 'SRV', { signal });
    if (packet.rcode === 'NXDOMAIN') {
      // Consul answers NXDOMAIN for zero instances.
      const soa = (packet.authorities ?? []).find((r) => r.type === 'SOA');
      const minimum = soa?.type === 'SOA' && typeof soa.data.minimum === 'number' ? soa.data.minimum : undefined;
      const ttlMs = this.#cache.setNegative(name, [], minimum);
      return { instances: [], ttlMs };
    }
    const records: (SrvRecord & { ttl: number })[] = [];
    for (const answer of packet.answers ?? []) {
      const record = srvOf(answer, name);
      if (record && record.target !== '' && record.target !== '.') records.push(record);
    }
    const additional = addressesOf(packet.additionals);
    let minTtl = records.reduce((m, r) => Math.min(m, r.ttl), Number.POSITIVE_INFINITY);
    const missing = new Set<string>();
    for (const record of records) {
      if (decodeAddrTarget(record.target) === undefined && !additional.has(lower(record.target))) missing.add(lower(record.target));
    }
    const followUp = new Map<string, { address: string; ttl: number }[]>();
    let followUpError: Error | undefined;
    await Promise.all(
      [...missing].map(async (target) => {
        try {
          followUp.set(target, await this.#addresses(target, signal));
        } catch (error) {
          followUpError = error instanceof Error ? error : new Error(String(error));
        }
      }),
    );
    const instances: ServiceInstance[] = [];
    const seen = new Set<string>();
    for (const record of orderSrvRecords(records)) {
      const decoded = decodeAddrTarget(record.target);
      const addresses = decoded !== undefined ? [{ address: decoded, ttl: record.ttl }] : (additional.get(lower(record.target)) ?? followUp.get(lower(record.target)) ?? []);
      for (const { address, ttl } of addresses) {
        minTtl = Math.min(minTtl, ttl);
        const key = `${address}:${record.port}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const node = /^([A-Za-z0-9_-]+)\.node\./.exec(record.target)?.[1];
        try {
          instances.push(
            createServiceInstance({
              key,
              id: key,
              service,
              address,
              port: record.port,
              weights: { passing: record.weight, warning: record.weight },
              datacenter: query.datacenter,
              node,
              tags: query.tags ?? [],
            }),
          );
        } catch {
          // An unusable record is dropped, never turned into a wrong instance.
        }
      }
    }
    if (instances.length === 0 && records.length > 0 && followUpError !== undefined) throw followUpError;
    const ttlMs = this.#cache.set(name, instances, Number.isFinite(minTtl) ? minTtl : undefined);
    return { instances, ttlMs };
  }

  async #run(service: string, query: DnsSrvQuery, sink: WatchSink): Promise<void> {
    const signal = sink.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const { instances, ttlMs } = await this.#lookup(service, query, signal);
        if (signal.aborted) return;
        failures = 0;
        sink.publish(instances, { info: { ttlMs } });
        await sleep(ttlMs, signal);
      } catch (error) {
        if (signal.aborted) return;
        sink.fail(new ResolutionFailedError(service, 'dns', error));
        await sleep(Math.max(this.#cache.minTtlMs, backoffDelay(failures++, this.#backoff)), signal);
      }
    }
  }

  /**
   * Resolves once, from the cache when fresh.
   * @throws {@link NoHealthyInstancesError} (also for NXDOMAIN), {@link ResolutionFailedError},
   *   {@link InvalidServiceNameError}, {@link InvalidOptionError}, {@link ClosedError}, {@link AbortedError}.
   */
  async resolve(service: string, options: DnsSrvQuery & CallOptions = {}): Promise<readonly ServiceInstance[]> {
    if (this.#closed) throw new ClosedError('Resolver');
    const { signal, timeoutMs, ...query } = options;
    const name = this.srvName(service, query);
    let instances = this.#cache.get(name)?.value;
    if (instances === undefined) {
      if (signal?.aborted) throw new AbortedError(`Resolving "${service}"`, signal.reason);
      const linked = signal ? AbortSignal.any([signal, this.#closeController.signal]) : this.#closeController.signal;
      const lookup = (s: AbortSignal): Promise<Lookup> => this.#lookup(service, query, s);
      try {
        // withDeadline, not AbortSignal.timeout() inside any(): on Node 20 that timeout can be collected and never fire.
        instances = (await (timeoutMs === undefined ? lookup(linked) : withDeadline(linked, timeoutMs, lookup, { what: `Resolving "${service}"` }))).instances;
      } catch (error) {
        if (signal?.aborted) throw new AbortedError(`Resolving "${service}"`, signal.reason);
        if (this.#closed) throw new ClosedError('Resolver');
        throw new ResolutionFailedError(service, 'dns', error);
      }
    }
    if (instances.length === 0) throw new NoHealthyInstancesError(service);
    return instances;
  }

  /**
   * Watches a service's SRV name. Equal (service, query) pairs share one loop.
   * @throws {@link InvalidServiceNameError}, {@link InvalidOptionError}, {@link ClosedError}.
   */
  watch(service: string, query: DnsSrvQuery = {}): ServiceWatch {
    if (this.#closed) throw new ClosedError('Resolver');
    const name = this.srvName(service, query);
    const canonical: DnsSrvQuery = { ...query, name };
    return this.#hub.subscribe(`${service}|${lower(name)}`, service, canonical);
  }

  /** Stops every watch and cancels in-flight queries. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeController.abort(new ClosedError('Resolver'));
    await this.#hub.close();
    this.#cache.clear();
    if (this.#ownsTransport) await this.transport.close();
  }

  /** Same as {@link DnsSrvResolver.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
