import { randomUUID } from 'node:crypto';
import { InvalidOptionError, resolveSubset, validateServiceName, type Balancer, type ConfigLogger, type ResolvedSubset, type Resolver, type ServiceInstance, type SubsetOptions } from '@proxyless/core';
import { checkBackoffSpelling, checkBalancer, checkKnownKeys, checkNumber, optionKeys, type NumberRule } from '@proxyless/core/internal';
import { clientDefaults, clientLimits, type ClientDefaults } from './defaults.js';
import type { ConcurrencyLimitAlgorithm } from '../shared/limit-types.js';
import { checkNoLocation } from './call-options.js';
import { buildPolicy, type PolicyOptions, type RequestPolicy, type RetryOptions } from './policy.js';

/** Another layer that retries around (or below) this client: a gateway, an SDK, a service mesh. */
export interface RetryLayer {
  /** A name for the warning, e.g. `gateway`. */
  name: string;
  /** Attempts that layer makes per call at most (1 + its retries). */
  attempts: number;
}

/** Circuit breaker settings, per endpoint (opossum's error-rate rule, as one health state with outlier detection). */
export interface BreakerOptions {
  /** Error rate (percent of calls in the rolling window) above which the breaker opens. Default 50. */
  errorThresholdPercentage?: number;
  /** Calls in the rolling window before the error rate is considered. Default 20. */
  volumeThreshold?: number;
  /** Time an open breaker waits before letting one trial call through (half-open), in ms. Default 10 000. */
  resetTimeoutMs?: number;
  /** Length of the rolling statistics window, in ms. Default 10 000. */
  rollingWindowMs?: number;
  /** Buckets in the rolling window. Default 10. */
  rollingBuckets?: number;
}

/** Passive outlier detection settings (Envoy-style consecutive failures). */
export interface OutlierDetectionOptions {
  /** Consecutive failures (connect errors, resets, timeouts, failure statuses) that eject an endpoint. Default 5. */
  consecutiveFailures?: number;
  /** First ejection time, in ms; the n-th consecutive ejection lasts n × this. Default 10 000. */
  baseEjectionTimeMs?: number;
  /** Cap on one ejection's duration, in ms. Default 300 000. */
  maxEjectionTimeMs?: number;
  /** Never eject more than this percent of endpoints (at least one may always be ejected). Default 50. */
  maxEjectionPercent?: number;
  /**
   * When fewer than this percent of endpoints are available, balance over all
   * of them (panic mode) instead of overloading the few or failing. Default 50; 0 disables.
   */
  panicThresholdPercent?: number;
}

/** Retry budget (Finagle/Linkerd style): retries ≤ ratio × recent requests + a floor. */
export interface RetryBudgetOptions {
  /** Retries allowed per request in the window. Default 0.2. */
  ratio?: number;
  /** Window over which requests are counted, in ms. Default 10 000. */
  windowMs?: number;
  /** Retries always allowed per second, whatever the traffic. Default 10. */
  minRetriesPerSecond?: number;
}

export type { ConcurrencyLimitAlgorithm };

/**
 * An adaptive concurrency limit per endpoint (Netflix concurrency-limits):
 * each endpoint may have at most `limit` attempts in flight, and the limit is
 * learnt from its latency — it falls when answers queue up (RTT rises above
 * the no-load RTT) and rises again when they do not. A pick never chooses an
 * endpoint at its limit; when every endpoint is at its limit the request
 * fails at once with `ConcurrencyLimitError` (no client-side queue: it would
 * hold the very queue the limit keeps off the servers).
 */
export interface ConcurrencyLimitOptions {
  /**
   * `vegas` (default: TCP Vegas, the no-load RTT as the least RTT seen; in
   * bench/overload.bench.ts it held the same goodput as gradient2 at 3× with a
   * lower admitted p99, 63 vs 73 ms, and needed no recovery time) or
   * `gradient2` (Netflix's Gradient2: long-term vs short-term RTT).
   */
  algorithm?: ConcurrencyLimitAlgorithm;
  /** The limit an endpoint starts with. Default 20. */
  initialLimit?: number;
  /** The least the limit falls to. Default 1. */
  minLimit?: number;
  /** The most the limit rises to. Default 200. */
  maxLimit?: number;
}

/**
 * Client-side admission control (Google SRE book, "adaptive throttling";
 * Envoy `admission_control`): over a sliding window, each attempt (first
 * tries and retries) is rejected locally, with `AdmissionRejectedError`, with
 * probability `max(0, (requests − k × accepts) / (requests + 1))`. An attempt
 * is *not* accepted when it timed out or the service answered 503 or 429
 * (overload); any other answer is accepted.
 */
export interface AdmissionControlOptions {
  /** SRE's K: the client sends up to K times what the service accepts (Envoy's `1 / sr_threshold`). Default 2. */
  k?: number;
  /** The window over which attempts and accepts are counted, ms. Default 10 000. */
  windowMs?: number;
  /** Attempts in the window before any local rejection (Envoy's `rps_threshold` × window). Default 20. */
  minRequests?: number;
  /** The highest rejection probability (Envoy's `max_rejection_probability`). Default 0.8. */
  maxRejectProbability?: number;
}

/** {@link ConcurrencyLimitOptions}, resolved. @internal */
export interface ResolvedConcurrencyLimit {
  readonly algorithm: ConcurrencyLimitAlgorithm;
  readonly initialLimit: number;
  readonly minLimit: number;
  readonly maxLimit: number;
}

/** {@link AdmissionControlOptions}, resolved. @internal */
export interface ResolvedAdmissionControl {
  readonly k: number;
  readonly windowMs: number;
  readonly minRequests: number;
  readonly maxRejectProbability: number;
}

/** Retry settings of a client: a {@link RetryOptions} plus the client-wide budget. */
export interface ClientRetryOptions extends RetryOptions {
  /**
   * The retry budget (client-wide, shared by every policy). It exists even
   * with `retry: false`, so per-request policies can retry; to tune it
   * while the client's own default does not retry, pass
   * `retry: { maxRetries: 0, budget: { … } }`.
   */
  budget?: RetryBudgetOptions;
}

/**
 * TLS to the backends (HTTPS). Files are read by the caller: pass PEM
 * contents, never paths. Passed to undici's connector (Node's `tls.connect`).
 */
export interface BackendTlsOptions {
  /** Trusted CA certificate(s), PEM: a private CA. Default: Node's bundled roots. */
  ca?: string | Buffer | readonly (string | Buffer)[];
  /** Client certificate chain, PEM (mutual TLS). */
  cert?: string | Buffer;
  /** Client private key, PEM (mutual TLS). */
  key?: string | Buffer;
  /** Server name to verify (SNI) when instances are addressed by IP. */
  servername?: string;
  /** Verify the server's certificate. Default true; set false only in tests. */
  rejectUnauthorized?: boolean;
}

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** Service name to call. */
  service: string;
  /** Where endpoints come from; the client watches `service` on it. */
  resolver: Resolver;
  /** Resolver-specific query (tags, datacenter…) passed to `resolver.watch()`. */
  query?: object;
  /**
   * Balancing strategy. Default: `prequalWhenReported()` from
   * `@proxyless/core`: peak EWMA, and Prequal probing once every server
   * reports its load (servers running `@proxyless/load-report`); with servers
   * that do not report, exactly `peakEwma()`.
   */
  balancer?: Balancer;
  /** Overall deadline of one request (all attempts and backoff), in ms. Default 10 000. */
  timeoutMs?: number;
  /**
   * Time limit of one attempt (until its response headers), in ms, enforced
   * by the client's own timer. Default: 2/5 of `timeoutMs` when retries are on
   * (so two full attempts and their backoff fit in the deadline and a third
   * gets what is left), else `timeoutMs`. Also bounds the gap between two body
   * chunks (undici's `bodyTimeout`, coarse: ~1 s resolution).
   */
  perTryTimeoutMs?: number;
  /** TCP connect timeout, in ms. Default 1 000. */
  connectTimeoutMs?: number;
  /** Most connections per endpoint; `null` for no limit. Default 256. */
  connectionsPerEndpoint?: number | null;
  /** Idle keep-alive time of a pooled connection, in ms. Default 4 000. */
  keepAliveTimeoutMs?: number;
  /** Largest body the buffered helpers (`text()`, `json()`) accept, in bytes. Default 8 MiB. */
  maxResponseBytes?: number;
  /** Time a removed endpoint's pool may drain its in-flight requests before it is destroyed, in ms. Default 30 000. */
  drainTimeoutMs?: number;
  /**
   * Response statuses counted as an endpoint's failure, by the breakers and by
   * outlier detection alike (a request answered with one is still returned to
   * the caller; retries follow `retry.retryOnStatuses`). Default: 500–599.
   * (It was `outlierDetection.failureStatuses`, which also drove the breakers
   * and could not be set with `outlierDetection: false`; that spelling now
   * throws `InvalidOptionError` naming this one.)
   */
  failureStatuses?: readonly number[];
  /** Circuit breakers; `false` disables them. */
  breaker?: BreakerOptions | false;
  /** Outlier detection; `false` disables it. */
  outlierDetection?: OutlierDetectionOptions | false;
  /**
   * The client's default retries; `false` means the default policy does not
   * retry. The retry budget exists either way, so a per-request policy
   * (`retry: { maxRetries: 2 }`) still retries on a `retry: false` client.
   */
  retry?: ClientRetryOptions | false;
  /**
   * `http` or `https` to every instance, or `auto` (default): `https` for an
   * instance whose meta has `scheme: "https"` or that carries the tag `https`.
   */
  scheme?: 'http' | 'https' | 'auto';
  /** TLS settings for HTTPS backends. */
  tls?: BackendTlsOptions;
  /**
   * Offer HTTP/2 to HTTPS instances by ALPN (undici's `allowH2`): an instance
   * that picks `h2` gets one connection with up to 100 concurrent streams
   * (the server's `SETTINGS_MAX_CONCURRENT_STREAMS` when lower), one that
   * picks `http/1.1` stays on HTTP/1.1 pools. Plain-`http` instances always use
   * HTTP/1.1 (no h2c). Default false.
   */
  allowH2?: boolean;
  /**
   * Where configuration warnings go (the `configWarning` event fires too);
   * `false` silences the logger. Default `console`.
   */
  logger?: ConfigLogger | false;
  /**
   * Other layers that retry around (or below) this client, for the
   * configuration doctor's retry-amplification check: `[{ name: 'gateway', attempts: 3 }]`.
   */
  retryLayers?: readonly RetryLayer[];
  /**
   * Subsetting for large fleets: connect to a stable subset of the service's
   * instances, not all of them. `{ size: 20 }` alone: rendezvous hashing
   * (gRPC A68; no coordination; busiest instance ≈ 1.3× the average
   * connections at 1,000 clients × 300 instances). With
   * `coordinate: { index, count }` (this client's place among its peers), or
   * `peers: { service, id }` to read that place from a watch of its own
   * service: deterministic aperture (≈ 1.005× the average). A member whose breaker
   * opens or that is ejected is backed by the next candidate (at most `size`
   * extra) until it is ready again. Default `false`: every instance.
   * @example
   * ```ts
   * createClient({ service: 'users', resolver, subset: { size: 20 } });
   * createClient({ service: 'users', resolver, subset: { size: 20, coordinate: { index: ordinal, count: replicas } } });
   * createClient({ service: 'users', resolver, subset: { size: 20, peers: { service: 'web', id: registrar.id } } });
   * ```
   */
  subset?: SubsetOptions | false;
  /**
   * An adaptive concurrency limit per endpoint; `true` for the defaults. Off
   * by default (`false`): with it, requests beyond what the endpoints take fail
   * fast instead of queuing, a behaviour to choose knowingly.
   */
  concurrencyLimit?: ConcurrencyLimitOptions | boolean;
  /**
   * Client-side admission control for the service; `true` for the defaults.
   * Off by default (`false`): it rejects requests locally, a behaviour to choose knowingly.
   */
  admissionControl?: AdmissionControlOptions | boolean;
}

/** Client options that are not about which service: what a dispatcher shares between its clients. @internal */
export type ClientSettings = Omit<ClientOptions, 'service' | 'resolver'>;

/** @internal */
export interface ResolvedOptions extends ResolvedSettings {
  service: string;
  resolver: Resolver;
}

/** {@link ClientSettings}, validated and defaulted. @internal */
export interface ResolvedSettings {
  /** The defaults table the settings were resolved against (the doctor and `explainConfig` quote it). */
  defaults: ClientDefaults;
  query: object | undefined;
  balancer: Balancer | undefined;
  /** The client's default request policy. */
  policy: RequestPolicy;
  /** Whether the caller set `perTryTimeoutMs` (else policies derive it from their deadline). */
  perTryExplicit: boolean;
  bodyTimeoutMs: number;
  connectTimeoutMs: number;
  connectionsPerEndpoint: number | null;
  keepAliveTimeoutMs: number;
  maxResponseBytes: number;
  drainTimeoutMs: number;
  breaker: Required<BreakerOptions> | false;
  outlier: Required<OutlierDetectionOptions> | false;
  /** Statuses counted as endpoint failures (breakers and outlier detection). */
  failureStatuses: readonly number[];
  budget: Required<RetryBudgetOptions>;
  scheme: (instance: ServiceInstance) => 'http' | 'https';
  tls: BackendTlsOptions;
  allowH2: boolean;
  /** Subsetting, validated; `undefined`: every instance. */
  subset: ResolvedSubset | undefined;
  /** Undefined when off. */
  concurrencyLimit: ResolvedConcurrencyLimit | undefined;
  /** Undefined when off. */
  admissionControl: ResolvedAdmissionControl | undefined;
}

function obj(option: string, value: unknown): object | false | undefined {
  if (value === undefined || value === false) return value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(option, value, 'must be an object or false');
  }
  return value;
}

function statuses(option: string, value: unknown, fallback: readonly number[]): readonly number[] {
  if (value === undefined) return fallback;
  if (!Array.isArray(value) || value.some((s) => typeof s !== 'number' || !Number.isInteger(s) || s < 100 || s > 599)) {
    throw new InvalidOptionError(option, value, 'must be an array of HTTP status codes (100–599)');
  }
  return Object.freeze([...(value as number[])]);
}


/** Every documented key, for the typo check (the compiler keeps each list equal to its type). @internal */
export const clientOptionKeys = optionKeys<ClientOptions>({
  service: true, resolver: true, query: true, balancer: true, timeoutMs: true, perTryTimeoutMs: true, connectTimeoutMs: true,
  connectionsPerEndpoint: true, keepAliveTimeoutMs: true, maxResponseBytes: true, drainTimeoutMs: true, breaker: true,
  outlierDetection: true, retry: true, scheme: true, tls: true, allowH2: true, logger: true, retryLayers: true, failureStatuses: true, subset: true,
  concurrencyLimit: true, admissionControl: true,
});
const concurrencyLimitKeys = optionKeys<ConcurrencyLimitOptions>({ algorithm: true, initialLimit: true, minLimit: true, maxLimit: true });
const admissionKeys = optionKeys<AdmissionControlOptions>({ k: true, windowMs: true, minRequests: true, maxRejectProbability: true });
const breakerKeys = optionKeys<BreakerOptions>({ errorThresholdPercentage: true, volumeThreshold: true, resetTimeoutMs: true, rollingWindowMs: true, rollingBuckets: true });
const outlierKeys = optionKeys<OutlierDetectionOptions>({
  consecutiveFailures: true, baseEjectionTimeMs: true, maxEjectionTimeMs: true, maxEjectionPercent: true, panicThresholdPercent: true,
});
const clientRetryKeys = optionKeys<ClientRetryOptions>({ maxRetries: true, initialMs: true, maxMs: true, retryOnStatuses: true, budget: true });
const budgetKeys = optionKeys<RetryBudgetOptions>({ ratio: true, windowMs: true, minRetriesPerSecond: true });
const tlsKeys = optionKeys<BackendTlsOptions>({ ca: true, cert: true, key: true, servername: true, rejectUnauthorized: true });

/** Validates and defaults client options; throws `InvalidOptionError` naming the option. @internal */
export function resolveOptions(options: ClientOptions, d: ClientDefaults = clientDefaults): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', options, 'must be an object');
  checkNoLocation(options, 'createClient()', 'name the service ({ service: \'users\' }) and where its instances are found ({ resolver: new ConsulResolver() }, or a StaticResolver listing host and port)');
  checkKnownKeys('', options, clientOptionKeys, 'createClient()');
  const { service, resolver, ...settings } = options;
  validateServiceName(service);
  if (typeof resolver !== 'object' || resolver === null || typeof (resolver as Partial<Resolver>).watch !== 'function') {
    throw new InvalidOptionError('resolver', resolver, 'must implement Resolver (watch())');
  }
  return { service, resolver, ...resolveSettings(settings, 'createClient()', '', d) };
}

const settingKeys = clientOptionKeys.filter((key) => key !== 'service' && key !== 'resolver');

/** Checks a group of numbers against the defaults table: every key of `defaults`, in the table's order, with its limit. */
function checkGroup<K extends string>(option: string, value: Partial<Record<K, unknown>> | undefined, defaults: Readonly<Record<K, number>>, limits: Readonly<Record<K, NumberRule>>): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const key of Object.keys(defaults) as K[]) out[key] = checkNumber(`${option}.${key}`, value?.[key], defaults[key], limits[key]);
  return out;
}

/**
 * Validates and defaults the settings of a client, whatever its service
 * (a dispatcher checks the settings its clients share with this, once);
 * errors name the option under `prefix`.
 * @internal
 */
export function resolveSettings(options: ClientSettings, owner = 'createClient()', prefix = '', d: ClientDefaults = clientDefaults): ResolvedSettings {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError(prefix || 'options', options, 'must be an object');
  const at = (key: string): string => (prefix ? `${prefix}.${key}` : key);
  checkKnownKeys(prefix, options, settingKeys, owner);
  const outlierOptions: unknown = options.outlierDetection;
  if (typeof outlierOptions === 'object' && outlierOptions !== null && Object.hasOwn(outlierOptions, 'failureStatuses')) {
    // Moved, not renamed: the unknown-key check would only say "not an option".
    throw new InvalidOptionError(at('outlierDetection.failureStatuses'), (outlierOptions as { failureStatuses: unknown }).failureStatuses,
      `has moved to the top level: set ${at('failureStatuses')} (it drives the breakers and outlier detection alike)`);
  }
  checkKnownKeys(at('breaker'), options.breaker, breakerKeys, owner);
  checkKnownKeys(at('outlierDetection'), options.outlierDetection, outlierKeys, owner);
  checkBackoffSpelling(at('retry'), options.retry);
  checkKnownKeys(at('retry'), options.retry, clientRetryKeys, owner);
  if (options.retry) checkKnownKeys(at('retry.budget'), options.retry.budget, budgetKeys, owner);
  checkKnownKeys(at('tls'), options.tls, tlsKeys, owner);
  if (typeof options.concurrencyLimit === 'object') checkKnownKeys(at('concurrencyLimit'), options.concurrencyLimit, concurrencyLimitKeys, owner);
  if (typeof options.admissionControl === 'object') checkKnownKeys(at('admissionControl'), options.admissionControl, admissionKeys, owner);
  const { balancer } = options;
  if (balancer !== undefined) checkBalancer('balancer', balancer);
  if (options.query !== undefined && (typeof options.query !== 'object' || options.query === null)) {
    throw new InvalidOptionError('query', options.query, 'must be an object');
  }
  const connections = options.connectionsPerEndpoint;
  const connectionsPerEndpoint =
    connections === null ? null : checkNumber(at('connectionsPerEndpoint'), connections, d.connectionsPerEndpoint, clientLimits.connectionsPerEndpoint);

  const b = obj('breaker', options.breaker) as BreakerOptions | false | undefined;
  const breaker = b === false ? false : checkGroup(at('breaker'), b, d.breaker, clientLimits.breaker);
  if (breaker && breaker.rollingWindowMs % breaker.rollingBuckets !== 0) {
    throw new InvalidOptionError('breaker.rollingBuckets', breaker.rollingBuckets, 'must divide breaker.rollingWindowMs evenly');
  }

  const o = obj('outlierDetection', options.outlierDetection) as OutlierDetectionOptions | false | undefined;
  const outlier = o === false ? false : checkGroup(at('outlierDetection'), o, d.outlierDetection, clientLimits.outlierDetection);
  if (outlier && outlier.maxEjectionTimeMs < outlier.baseEjectionTimeMs) {
    throw new InvalidOptionError('outlierDetection.maxEjectionTimeMs', outlier.maxEjectionTimeMs, 'must be ≥ outlierDetection.baseEjectionTimeMs');
  }

  const r = obj('retry', options.retry) as ClientRetryOptions | false | undefined;
  // The budget exists whatever the client's default: a per-request policy may retry on a `retry: false` client.
  let budget = resolveBudget(undefined, d, at);
  const policyOptions: PolicyOptions = { retry: r === undefined ? {} : r };
  if (options.timeoutMs !== undefined) policyOptions.timeoutMs = options.timeoutMs;
  if (options.perTryTimeoutMs !== undefined) policyOptions.perTryTimeoutMs = options.perTryTimeoutMs;
  if (r !== false) {
    const { budget: bud, ...retryRest } = r ?? {};
    policyOptions.retry = retryRest;
    budget = resolveBudget(bud, d, at);
  }
  const { policy, perTryExplicit } = buildPolicy(policyOptions, undefined, false, true, d);

  const scheme = options.scheme ?? d.scheme;
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 'auto') throw new InvalidOptionError('scheme', scheme, 'must be "http", "https" or "auto"');
  const tls = checkTls(options.tls);
  const allowH2 = options.allowH2 ?? d.allowH2;
  if (typeof allowH2 !== 'boolean') throw new InvalidOptionError(at('allowH2'), allowH2, 'must be a boolean');
  // A random id per settings object when none is given (A68's salt): restarts spread anew.
  const subset = options.subset === undefined || options.subset === false ? undefined : resolveSubset(at('subset'), options.subset, randomUUID, owner);

  return {
    defaults: d,
    query: options.query,
    balancer,
    policy,
    perTryExplicit,
    bodyTimeoutMs: policy.perTryTimeoutMs,
    connectTimeoutMs: checkNumber(at('connectTimeoutMs'), options.connectTimeoutMs, d.connectTimeoutMs, clientLimits.connectTimeoutMs),
    connectionsPerEndpoint,
    keepAliveTimeoutMs: checkNumber(at('keepAliveTimeoutMs'), options.keepAliveTimeoutMs, d.keepAliveTimeoutMs, clientLimits.keepAliveTimeoutMs),
    maxResponseBytes: checkNumber(at('maxResponseBytes'), options.maxResponseBytes, d.maxResponseBytes, clientLimits.maxResponseBytes),
    drainTimeoutMs: checkNumber(at('drainTimeoutMs'), options.drainTimeoutMs, d.drainTimeoutMs, clientLimits.drainTimeoutMs),
    breaker,
    outlier,
    failureStatuses: statuses(at('failureStatuses'), options.failureStatuses, d.failureStatuses),
    budget,
    scheme: scheme === 'auto' ? instanceScheme : scheme === 'https' ? () => 'https' : () => 'http',
    tls,
    allowH2,
    subset,
    concurrencyLimit: resolveConcurrencyLimit(options.concurrencyLimit, d, at),
    admissionControl: resolveAdmission(options.admissionControl, d, at),
  };
}

/** `false`/absent: off; `true`: the defaults; an object: checked against the table. */
function enabled<T>(option: string, value: T | boolean | undefined): T | undefined | false {
  if (value === undefined || value === false) return false;
  if (value === true) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidOptionError(option, value, 'must be true, false or an object');
  return value;
}

function resolveConcurrencyLimit(value: ConcurrencyLimitOptions | boolean | undefined, d: ClientDefaults, at: (key: string) => string): ResolvedConcurrencyLimit | undefined {
  const o = enabled(at('concurrencyLimit'), value);
  if (o === false) return undefined;
  const algorithm = o?.algorithm ?? d.concurrencyLimitAlgorithm;
  if (algorithm !== 'vegas' && algorithm !== 'gradient2') throw new InvalidOptionError(at('concurrencyLimit.algorithm'), algorithm, 'must be "vegas" or "gradient2"');
  const { algorithm: _, ...numbers } = o ?? {};
  const n = checkGroup(at('concurrencyLimit'), numbers, d.concurrencyLimit, clientLimits.concurrencyLimit);
  if (n.minLimit > n.maxLimit) throw new InvalidOptionError(at('concurrencyLimit.minLimit'), n.minLimit, `must be ≤ concurrencyLimit.maxLimit (${n.maxLimit})`);
  return Object.freeze({ ...n, algorithm });
}

function resolveAdmission(value: AdmissionControlOptions | boolean | undefined, d: ClientDefaults, at: (key: string) => string): ResolvedAdmissionControl | undefined {
  const o = enabled(at('admissionControl'), value);
  if (o === false) return undefined;
  return Object.freeze(checkGroup(at('admissionControl'), o, d.admissionControl, clientLimits.admissionControl));
}

function resolveBudget(value: unknown, d: ClientDefaults, at: (key: string) => string): Required<RetryBudgetOptions> {
  const b = obj(at('retry.budget'), value) as RetryBudgetOptions | false | undefined;
  if (b === false) throw new InvalidOptionError(at('retry.budget'), false, 'must be an object (the budget cannot be turned off; a large ratio lifts it)');
  return checkGroup(at('retry.budget'), b, d.retry.budget, clientLimits.retry.budget);
}

/**
 * The scheme a client with `scheme: "auto"` (the default) uses for an
 * instance: `https` for one that says so (meta `scheme: https`, or the tag
 * `https`), else `http`. Exported for code that connects to instances itself
 * (a gateway's WebSocket tunnels) and must agree with the client.
 */
export function instanceScheme(instance: ServiceInstance): 'http' | 'https' {
  return instance.meta['scheme'] === 'https' || instance.tags.includes('https') ? 'https' : 'http';
}

function checkTls(value: unknown): BackendTlsOptions {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidOptionError('tls', value, 'must be an object');
  const tls = value as BackendTlsOptions;
  const pem = (field: string, v: unknown): void => {
    if (v !== undefined && typeof v !== 'string' && !Buffer.isBuffer(v)) throw new InvalidOptionError(`tls.${field}`, '<redacted>', 'must be PEM text or a Buffer');
  };
  if (Array.isArray(tls.ca)) tls.ca.forEach((c, i) => pem(`ca[${i}]`, c));
  else pem('ca', tls.ca);
  pem('cert', tls.cert);
  pem('key', tls.key);
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new InvalidOptionError('tls.key', '<redacted>', 'and tls.cert must be given together');
  if (tls.servername !== undefined && (typeof tls.servername !== 'string' || tls.servername === '')) throw new InvalidOptionError('tls.servername', tls.servername, 'must be a host name');
  if (tls.rejectUnauthorized !== undefined && typeof tls.rejectUnauthorized !== 'boolean') throw new InvalidOptionError('tls.rejectUnauthorized', tls.rejectUnauthorized, 'must be a boolean');
  const out: BackendTlsOptions = {};
  if (tls.ca !== undefined) out.ca = tls.ca;
  if (tls.cert !== undefined) out.cert = tls.cert;
  if (tls.key !== undefined) out.key = tls.key;
  if (tls.servername !== undefined) out.servername = tls.servername;
  if (tls.rejectUnauthorized !== undefined) out.rejectUnauthorized = tls.rejectUnauthorized;
  return Object.freeze(out);
}
