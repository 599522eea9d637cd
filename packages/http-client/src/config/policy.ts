import { InvalidOptionError, requestPriorities, type BackoffOptions, type RequestPriority } from '@proxyless/core';
import { clientDefaults, clientLimits, type ClientDefaults } from './defaults.js';
import { checkBackoff, checkBackoffSpelling, checkKnownKeys, checkNumber, checkOptions, optionKeys, type BackoffRule } from '@proxyless/core/internal';

/**
 * Retry settings of a {@link RequestPolicy} or a client. The backoff between
 * attempts is core's {@link BackoffOptions} (`initialMs`, `maxMs`), spelt as
 * everywhere in Proxyless; the earlier `baseDelayMs`/`maxDelayMs` throw
 * `InvalidOptionError` naming these.
 */
export interface RetryOptions extends BackoffOptions {
  /** Retries after the first attempt. Default 2. */
  maxRetries?: number;
  /** Backoff ceiling of the first retry, in ms: retry n waits a uniformly random time in [0, min(maxMs, initialMs × 2^(n-1))) (full jitter). Default 25; 0 retries at once. */
  initialMs?: number;
  /** Largest backoff, in ms (also caps how long a `Retry-After` is honoured). Default 1 000. */
  maxMs?: number;
  /** Statuses that are retried (when the request is safe to retry). Default [502, 503, 504]. */
  retryOnStatuses?: readonly number[];
}

/** What a policy sets; any field left out keeps the client's value. */
export interface PolicyOptions {
  /** Overall deadline of one request (all attempts and backoff), in ms. */
  timeoutMs?: number;
  /**
   * Time limit of one attempt (until the response headers), in ms. Default:
   * 2/5 of `timeoutMs` when retries are on (two full attempts and their
   * backoff fit in the deadline, a third gets what is left), `timeoutMs`
   * when they are off.
   */
  perTryTimeoutMs?: number;
  /** Retries; `false` disables them. */
  retry?: RetryOptions | false;
  /**
   * The request's priority, sent in core's `priorityHeader`
   * (`x-proxyless-priority`): a server with `@proxyless/load-report`'s
   * shedding on turns lower priorities away first when it is overloaded
   * (`background` first, then `low`, `normal`, `high`; `critical` last).
   * A shed answer (`503` + `x-proxyless-shed`) is not charged to the endpoint
   * and is retried on another endpoint, never the same one. Default: none
   * sent (the server treats the request as `normal`).
   */
  priority?: RequestPriority;
  /**
   * Hedged requests (The Tail at Scale): when the first copy has not
   * answered after a delay, send another copy to a different endpoint; the
   * first answer wins and the other copies are cancelled. Default `false`
   * (off): every hedge is extra load on the service, and only requests safe
   * to send twice are hedged (an idempotent method, or `idempotent: true`,
   * and a replayable body); others run as if hedging were off. Hedges are
   * paid from the retry budget, so under overload they stop.
   */
  hedge?: HedgeOptions | false;
}

/**
 * When and how often a request is hedged. Set exactly one of `delayMs` and
 * `percentile`.
 * @example
 * ```ts
 * const hedged = client.policy({ hedge: { percentile: 95 } }); // a second copy after the set's recent p95
 * await client.request({ path: '/users/42', policy: hedged });
 * ```
 */
export interface HedgeOptions {
  /** Fixed delay before each hedge, in ms. */
  delayMs?: number;
  /**
   * Delay before each hedge as a percentile (50–99.99) of the latency of
   * the client's recent answers (its last 1 000 successful attempts, every
   * endpoint), as tower's `hedge` does. Until `minSamples` answers were
   * seen the request is not hedged.
   */
  percentile?: number;
  /** With `percentile`: the delay is never shorter than this, ms. Default 5. */
  minDelayMs?: number;
  /** With `percentile`: answers seen before hedging starts. Default 100 (at most 1 000). */
  minSamples?: number;
  /** Hedges per request after the first copy (1–4). Default 1. */
  maxHedges?: number;
}

/** A resolved hedge policy (immutable). */
export interface HedgePolicy {
  readonly maxHedges: number;
  /** The fixed delay, ms; undefined with `percentile`. */
  readonly delayMs: number | undefined;
  /** The latency percentile; undefined with a fixed `delayMs`. */
  readonly percentile: number | undefined;
  readonly minDelayMs: number;
  readonly minSamples: number;
}

const policyKeys = optionKeys<PolicyOptions>({ timeoutMs: true, perTryTimeoutMs: true, retry: true, priority: true, hedge: true });
const hedgeKeys = optionKeys<HedgeOptions>({ delayMs: true, percentile: true, minDelayMs: true, minSamples: true, maxHedges: true });
const retryKeys = optionKeys<RetryOptions>({ maxRetries: true, initialMs: true, maxMs: true, retryOnStatuses: true });

/** A resolved retry policy (immutable). */
export interface RetryPolicy {
  readonly maxRetries: number;
  /** Backoff ceiling of the first retry, ms. */
  readonly initialMs: number;
  /** Largest backoff, ms. */
  readonly maxMs: number;
  readonly retryOnStatuses: readonly number[];
  /** Lookup table: `retryStatus[code] === 1` when `code` is retried. @internal */
  readonly retryStatus: Uint8Array;
}

/**
 * A request policy: deadline, per-try timeout and retry rules, validated once
 * and frozen. The client holds a default one; build others with
 * {@link ProxylessClient.policy} and pass them per request — nothing is merged
 * on the request path.
 */
export interface RequestPolicy {
  readonly timeoutMs: number;
  readonly perTryTimeoutMs: number;
  /** `false` when retries are off. */
  readonly retry: RetryPolicy | false;
  /** The priority sent with each attempt (`x-proxyless-priority`); `undefined`: none sent. */
  readonly priority?: RequestPriority | undefined;
  /** `false` when requests are not hedged (the default). */
  readonly hedge: HedgePolicy | false;
}

const policies = new WeakSet<RequestPolicy>();

/** Was `value` built by {@link buildPolicy} (so it needs no validation)? @internal */
export function isRequestPolicy(value: unknown): value is RequestPolicy {
  return typeof value === 'object' && value !== null && policies.has(value as RequestPolicy);
}

function statusList(option: string, value: unknown, fallback: readonly number[]): readonly number[] {
  if (value === undefined) return fallback;
  if (!Array.isArray(value) || value.some((s) => typeof s !== 'number' || !Number.isInteger(s) || s < 100 || s > 599)) {
    throw new InvalidOptionError(option, value, 'must be an array of HTTP status codes (100–599)');
  }
  return Object.freeze([...(value as number[])]);
}

/** A 600-entry lookup table of statuses. @internal */
export function statusTable(statuses: readonly number[]): Uint8Array {
  const t = new Uint8Array(600);
  for (const s of statuses) t[s] = 1;
  return t;
}

/** A request's retries are bounded by `maxRetries` and its deadline, so a 0 backoff (retry at once) is allowed. */
const RETRY_BACKOFF_RULE: BackoffRule = { integer: true, minInitialMs: 0, maxInitialMs: 60_000, maxMs: 600_000, inline: true };


/** The rule for the default per-try timeout (see {@link PolicyOptions.perTryTimeoutMs}). @internal */
export function defaultPerTryTimeoutMs(timeoutMs: number, retries: boolean, share = clientDefaults.perTryTimeoutShare): number {
  return retries ? Math.max(1, Math.floor(timeoutMs * share)) : timeoutMs;
}

/**
 * Validates `options` over `base` (the client's policy, or built-in
 * defaults when absent) and returns a frozen policy. Errors name the field,
 * prefixed with `prefix` (e.g. `retry.maxRetries`).
 * @internal
 */
export function buildPolicy(options: PolicyOptions, base: RequestPolicy | undefined, perTryExplicit: boolean, checkKeys = true, d: ClientDefaults = clientDefaults): { policy: RequestPolicy; perTryExplicit: boolean } {
  checkOptions('policy', options);
  if (checkKeys) checkKnownKeys('', options, policyKeys, 'a policy');
  const timeoutMs = checkNumber('timeoutMs', options.timeoutMs, base?.timeoutMs ?? d.timeoutMs, clientLimits.timeoutMs);
  const r = options.retry;
  if (r !== undefined && r !== false) {
    checkOptions('retry', r);
    checkBackoffSpelling('retry', r);
    checkKnownKeys('retry', r, retryKeys, 'a policy');
  }
  let retry: RetryPolicy | false;
  if (r === false) retry = false;
  else if (r === undefined && base !== undefined) retry = base.retry;
  else {
    const from = base?.retry || undefined;
    const maxRetries = checkNumber('retry.maxRetries', r?.maxRetries, from?.maxRetries ?? d.retry.maxRetries, clientLimits.retry.maxRetries);
    const { initialMs, maxMs } = checkBackoff('retry', r, { initialMs: from?.initialMs ?? d.retry.initialMs, maxMs: from?.maxMs ?? d.retry.maxMs }, RETRY_BACKOFF_RULE);
    const retryOnStatuses = statusList('retry.retryOnStatuses', r?.retryOnStatuses, from?.retryOnStatuses ?? d.retry.retryOnStatuses);
    retry = Object.freeze({ maxRetries, initialMs, maxMs, retryOnStatuses, retryStatus: statusTable(retryOnStatuses) });
  }
  const retries = retry !== false && retry.maxRetries > 0;
  const explicit = options.perTryTimeoutMs !== undefined || (perTryExplicit && base !== undefined);
  const fallback = explicit && base !== undefined ? base.perTryTimeoutMs : defaultPerTryTimeoutMs(timeoutMs, retries, d.perTryTimeoutShare);
  // An attempt never outlives its request: a per-try timeout above the deadline is the deadline.
  const perTryTimeoutMs = Math.min(timeoutMs, checkNumber('perTryTimeoutMs', options.perTryTimeoutMs, fallback, clientLimits.perTryTimeoutMs));
  const priority = options.priority === undefined ? base?.priority : options.priority;
  if (priority !== undefined && !requestPriorities.includes(priority)) {
    throw new InvalidOptionError('priority', priority, `must be one of ${requestPriorities.map((p) => `'${p}'`).join(', ')}`);
  }
  const h = options.hedge;
  const hedge = h === undefined ? (base?.hedge ?? false) : h === false ? false : buildHedge(h, d);
  const policy: RequestPolicy = Object.freeze({ timeoutMs, perTryTimeoutMs, retry, priority, hedge });
  policies.add(policy);
  return { policy, perTryExplicit: explicit };
}

/** Validates a policy's `hedge`. */
function buildHedge(h: HedgeOptions, d: ClientDefaults): HedgePolicy {
  checkOptions('hedge', h);
  checkKnownKeys('hedge', h, hedgeKeys, 'a hedge policy');
  if ((h.delayMs === undefined) === (h.percentile === undefined)) {
    throw new InvalidOptionError('hedge', h, 'must set exactly one of delayMs (a fixed delay) and percentile (e.g. { percentile: 95 })');
  }
  const l = clientLimits.hedge;
  const maxHedges = checkNumber('hedge.maxHedges', h.maxHedges, d.hedge.maxHedges, l.maxHedges);
  const delayMs = h.delayMs === undefined ? undefined : checkNumber('hedge.delayMs', h.delayMs, undefined, l.delayMs);
  const percentile = h.percentile === undefined ? undefined : checkNumber('hedge.percentile', h.percentile, undefined, l.percentile);
  const minDelayMs = checkNumber('hedge.minDelayMs', h.minDelayMs, d.hedge.minDelayMs, l.minDelayMs);
  const minSamples = checkNumber('hedge.minSamples', h.minSamples, d.hedge.minSamples, l.minSamples);
  return Object.freeze({ maxHedges, delayMs, percentile, minDelayMs, minSamples });
}
