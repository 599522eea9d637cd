/**
 * Local rate limiting: a token bucket per route and client key, refilled
 * lazily from the clock on each request (no timer), in a bounded LRU map.
 * Hand-written (~40 lines): the maintained libraries either keep a timer per
 * key (`rate-limiter-flexible`'s memory store) or have no key bound.
 */
import { performance } from 'node:perf_hooks';
import type { IncomingMessage } from 'node:http';
import { InvalidOptionError } from '@proxyless/core';
import { checkKnownKeys } from '@proxyless/core/internal';

/** A route's rate limit (`rateLimit` in a route or in `defaults`). */
export interface RateLimitConfig {
  /** Tokens added per second, per key (may be fractional: 0.5 is one request every 2 s). */
  ratePerSecond: number;
  /** Bucket size: requests a key may send at once after being idle. Default `ceil(ratePerSecond)`, at least 1. */
  burst?: number;
  /**
   * What identifies a client: `ip` (the socket's remote address, or the client
   * behind `trustedProxies`; default) or
   * `header:<name>` (an API key, say). A request without that header is keyed by its ip.
   */
  key?: string;
  /** Keys remembered per route; past it the least recently seen key is forgotten. Default 10 000. */
  maxKeys?: number;
}

/** A rate limit with every default applied. */
export interface ResolvedRateLimit {
  readonly ratePerSecond: number;
  readonly burst: number;
  /** `undefined` for `ip`, else the lower-cased header name. */
  readonly header: string | undefined;
  readonly maxKeys: number;
}

const rateLimitKeys = ['ratePerSecond', 'burst', 'key', 'maxKeys'];

/** Validates a `rateLimit` object (`null` turns off an inherited default). */
export function checkRateLimit(option: string, value: unknown): ResolvedRateLimit | null {
  if (value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionError(option, value, 'must be an object such as { "ratePerSecond": 10, "burst": 20, "key": "ip" }, or null for no limit');
  }
  checkKnownKeys(option, value, rateLimitKeys, option);
  const c = value as RateLimitConfig;
  if (typeof c.ratePerSecond !== 'number' || !Number.isFinite(c.ratePerSecond) || c.ratePerSecond <= 0) {
    throw new InvalidOptionError(`${option}.ratePerSecond`, c.ratePerSecond, 'must be a number above 0 (requests per second per key; use null to turn the limit off)');
  }
  const burst = c.burst ?? Math.max(1, Math.ceil(c.ratePerSecond));
  if (!Number.isInteger(burst) || burst < 1) throw new InvalidOptionError(`${option}.burst`, c.burst, 'must be an integer of at least 1');
  const maxKeys = c.maxKeys ?? 10_000;
  if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new InvalidOptionError(`${option}.maxKeys`, c.maxKeys, 'must be an integer of at least 1');
  const key = c.key ?? 'ip';
  let header: string | undefined;
  if (key !== 'ip') {
    const match = typeof key === 'string' ? /^header:([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(key) : null;
    if (!match?.[1]) throw new InvalidOptionError(`${option}.key`, key, 'must be "ip" or "header:<name>", e.g. "header:x-api-key"');
    header = match[1].toLowerCase();
  }
  return { ratePerSecond: c.ratePerSecond, burst, header, maxKeys };
}

interface Bucket {
  tokens: number;
  /** performance.now() of the last refill. */
  at: number;
}

/** Token buckets for one route, one per client key. */
export class RateLimiter {
  readonly #rule: ResolvedRateLimit;
  /** Insertion order is recency order: a hit moves its key to the end. */
  readonly #buckets = new Map<string, Bucket>();
  /** How long an untouched bucket takes to be full again, ms: past that, forgetting it changes nothing. */
  readonly #fullAfterMs: number;

  constructor(rule: ResolvedRateLimit) {
    this.#rule = rule;
    this.#fullAfterMs = (rule.burst / rule.ratePerSecond) * 1000;
  }

  /** The client key of a request from `clientIp` (the peer, or the client behind trusted proxies). */
  keyOf(req: IncomingMessage, clientIp: string): string {
    const header = this.#rule.header;
    if (header !== undefined) {
      const value = req.headers[header];
      if (typeof value === 'string' && value !== '') return `h:${value}`;
    }
    return `ip:${clientIp}`;
  }

  /** Takes a token for `key`: 0 when allowed, else the ms until one is available. */
  take(key: string, now = performance.now()): number {
    const rule = this.#rule;
    const buckets = this.#buckets;
    let bucket = buckets.get(key);
    if (bucket) {
      buckets.delete(key);
      bucket.tokens = Math.min(rule.burst, bucket.tokens + ((now - bucket.at) * rule.ratePerSecond) / 1000);
      bucket.at = now;
    } else {
      bucket = { tokens: rule.burst, at: now };
      // Idle eviction without timers: the oldest bucket, once full again, is as good as absent.
      const oldest = buckets.entries().next().value;
      if (oldest && (buckets.size >= rule.maxKeys || now - oldest[1].at >= this.#fullAfterMs)) buckets.delete(oldest[0]);
    }
    buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return ((1 - bucket.tokens) / rule.ratePerSecond) * 1000;
  }

  /** Keys remembered now. */
  get size(): number {
    return this.#buckets.size;
  }
}
