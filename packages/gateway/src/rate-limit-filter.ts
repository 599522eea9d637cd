/** The `rateLimit` pre filter, apart from the limiter so that config.ts (which validates limits) and filters.ts stay acyclic. */
import type { Filter, FilterResponse } from './filters.js';
import { RateLimiter, type ResolvedRateLimit } from './rate-limit.js';

/**
 * The `rateLimit` pre filter: a request over its route's limit is answered
 * 429 with `Retry-After` (whole seconds until a token) and never forwarded.
 * Synchronous: no promise per request.
 */
export function rateLimitFilter(): Filter {
  // One limiter per configured rule: the shares of a weighted route have one rule object and share
  // it; a route reloaded from the registry has a new one (its new limit applies). Old tables' rules go with them.
  const limiters = new WeakMap<ResolvedRateLimit, RateLimiter>();
  return {
    name: 'rateLimit',
    type: 'pre',
    // After requestId (its answer carries the id), before auth (a flood never reaches the auth hook).
    order: 5,
    run(ctx): FilterResponse | undefined {
      const rule = ctx.route.rateLimit;
      if (!rule) return undefined;
      let limiter = limiters.get(rule);
      if (!limiter) limiters.set(rule, (limiter = new RateLimiter(rule)));
      const waitMs = limiter.take(limiter.keyOf(ctx.req, ctx.clientIp));
      if (waitMs === 0) return undefined;
      const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
      return {
        status: 429,
        body: { error: 'rate_limited', message: `over this route's limit of ${rule.ratePerSecond}/s (burst ${rule.burst}); retry in ${retryAfter} s`, requestId: ctx.requestId },
        headers: { 'retry-after': String(retryAfter) },
      };
    },
  };
}
