/**
 * The rate limit step: a request over its route's limit is answered 429 with
 * `Retry-After` before the gateway builds anything for it (no filter context,
 * no upstream headers, no filter run). Apart from the limiter so that
 * config.ts (which validates limits) and the gateway stay acyclic.
 */
import type { IncomingMessage } from 'node:http';
import type { ResolvedRoute } from './config.js';
import type { FilterResponse } from './filters.js';
import { RateLimiter, type ResolvedRateLimit } from './rate-limit.js';

/** The limiters of every route, by rule. */
export class RouteLimits {
  // One limiter per configured rule: the shares of a weighted route have one rule object and share
  // it; a reload keeps the rule object of a route whose limit did not change (RouteTable.keepRateLimitsOf),
  // so its buckets carry over. Old tables' rules go with them.
  readonly #limiters = new WeakMap<ResolvedRateLimit, RateLimiter>();

  /**
   * Takes a token for the request; `undefined` when it may go on, else the
   * 429 answer (its body without the request id, which the caller adds).
   * Synchronous: no promise per request.
   */
  check(route: ResolvedRoute, req: IncomingMessage, clientIp: string): FilterResponse | undefined {
    const rule = route.rateLimit;
    if (!rule) return undefined;
    let limiter = this.#limiters.get(rule);
    if (!limiter) this.#limiters.set(rule, (limiter = new RateLimiter(rule)));
    const waitMs = limiter.take(limiter.keyOf(req, clientIp));
    if (waitMs === 0) return undefined;
    const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
    return {
      status: 429,
      body: { error: 'rate_limited', message: `over this route's limit of ${rule.ratePerSecond}/s (burst ${rule.burst}); retry in ${retryAfter} s` },
      headers: { 'retry-after': String(retryAfter) },
    };
  }
}
