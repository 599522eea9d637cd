import { InvalidOptionError, checkNumber, validateServiceName, type Balancer, type Resolver } from '@proxyless/core';

/** Circuit breaker settings, per endpoint (opossum). */
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
  /** Response statuses counted as failures by outlier detection and breakers. Default: 500–599. */
  failureStatuses?: readonly number[];
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

/** Retry settings. */
export interface RetryOptions {
  /** Retries after the first attempt. Default 2. */
  maxRetries?: number;
  /** Backoff base, in ms: retry n waits a uniformly random time in [0, min(max, base × 2^(n-1))] (full jitter). Default 25. */
  baseDelayMs?: number;
  /** Backoff cap, in ms (also caps how long a `Retry-After` is honoured). Default 1 000. */
  maxDelayMs?: number;
  /** Statuses that are retried (when the request is safe to retry). Default [502, 503, 504]. */
  retryOnStatuses?: readonly number[];
  /** The retry budget. */
  budget?: RetryBudgetOptions;
}

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** Service name to call. */
  service: string;
  /** Where endpoints come from; the client watches `service` on it. */
  resolver: Resolver;
  /** Resolver-specific query (tags, datacenter…) passed to `resolver.watch()`. */
  query?: object;
  /** Balancing strategy. Default: `peakEwma()` from `@proxyless/core`. */
  balancer?: Balancer;
  /** Overall deadline of one request (all attempts and backoff), in ms. Default 10 000. */
  timeoutMs?: number;
  /** Time limit of one attempt (to response headers, and between body chunks), in ms. Default 5 000. */
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
  /** Circuit breakers; `false` disables them. */
  breaker?: BreakerOptions | false;
  /** Outlier detection; `false` disables it. */
  outlierDetection?: OutlierDetectionOptions | false;
  /** Retries; `false` disables them. */
  retry?: RetryOptions | false;
}

/** @internal */
export interface ResolvedOptions {
  service: string;
  resolver: Resolver;
  query: object | undefined;
  balancer: Balancer | undefined;
  timeoutMs: number;
  perTryTimeoutMs: number;
  connectTimeoutMs: number;
  connectionsPerEndpoint: number | null;
  keepAliveTimeoutMs: number;
  maxResponseBytes: number;
  drainTimeoutMs: number;
  breaker: Required<BreakerOptions> | false;
  outlier: Required<OutlierDetectionOptions> | false;
  retry: (Required<Omit<RetryOptions, 'budget'>> & { budget: Required<RetryBudgetOptions> }) | false;
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

const FIVE_XX = Object.freeze(Array.from({ length: 100 }, (_, i) => 500 + i));

/** Validates and defaults client options; throws `InvalidOptionError` naming the option. @internal */
export function resolveOptions(options: ClientOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', options, 'must be an object');
  const { service, resolver, balancer } = options;
  validateServiceName(service);
  if (typeof resolver !== 'object' || resolver === null || typeof (resolver as Partial<Resolver>).watch !== 'function') {
    throw new InvalidOptionError('resolver', resolver, 'must implement Resolver (watch())');
  }
  if (balancer !== undefined && (typeof balancer !== 'object' || balancer === null || typeof balancer.createPicker !== 'function')) {
    throw new InvalidOptionError('balancer', balancer, 'must implement Balancer (createPicker())');
  }
  if (options.query !== undefined && (typeof options.query !== 'object' || options.query === null)) {
    throw new InvalidOptionError('query', options.query, 'must be an object');
  }
  const timeoutMs = checkNumber('timeoutMs', options.timeoutMs, 10_000, { integer: true, min: 1, max: 3_600_000 });
  const perTryTimeoutMs = checkNumber('perTryTimeoutMs', options.perTryTimeoutMs, Math.min(5_000, timeoutMs), { integer: true, min: 1, max: 3_600_000 });
  const connections = options.connectionsPerEndpoint;
  const connectionsPerEndpoint =
    connections === null ? null : checkNumber('connectionsPerEndpoint', connections, 256, { integer: true, min: 1, max: 65_536 });

  const b = obj('breaker', options.breaker) as BreakerOptions | false | undefined;
  const breaker =
    b === false
      ? false
      : {
          errorThresholdPercentage: checkNumber('breaker.errorThresholdPercentage', b?.errorThresholdPercentage, 50, { min: 1, max: 100 }),
          volumeThreshold: checkNumber('breaker.volumeThreshold', b?.volumeThreshold, 20, { integer: true, min: 1 }),
          resetTimeoutMs: checkNumber('breaker.resetTimeoutMs', b?.resetTimeoutMs, 10_000, { integer: true, min: 1, max: 3_600_000 }),
          rollingWindowMs: checkNumber('breaker.rollingWindowMs', b?.rollingWindowMs, 10_000, { integer: true, min: 10, max: 3_600_000 }),
          rollingBuckets: checkNumber('breaker.rollingBuckets', b?.rollingBuckets, 10, { integer: true, min: 1, max: 1000 }),
        };
  if (breaker && breaker.rollingWindowMs % breaker.rollingBuckets !== 0) {
    throw new InvalidOptionError('breaker.rollingBuckets', breaker.rollingBuckets, 'must divide breaker.rollingWindowMs evenly');
  }

  const o = obj('outlierDetection', options.outlierDetection) as OutlierDetectionOptions | false | undefined;
  const outlier =
    o === false
      ? false
      : {
          consecutiveFailures: checkNumber('outlierDetection.consecutiveFailures', o?.consecutiveFailures, 5, { integer: true, min: 1 }),
          baseEjectionTimeMs: checkNumber('outlierDetection.baseEjectionTimeMs', o?.baseEjectionTimeMs, 10_000, { integer: true, min: 1, max: 3_600_000 }),
          maxEjectionTimeMs: checkNumber('outlierDetection.maxEjectionTimeMs', o?.maxEjectionTimeMs, 300_000, { integer: true, min: 1, max: 3_600_000 }),
          maxEjectionPercent: checkNumber('outlierDetection.maxEjectionPercent', o?.maxEjectionPercent, 50, { min: 0, max: 100 }),
          panicThresholdPercent: checkNumber('outlierDetection.panicThresholdPercent', o?.panicThresholdPercent, 50, { min: 0, max: 100 }),
          failureStatuses: statuses('outlierDetection.failureStatuses', o?.failureStatuses, FIVE_XX),
        };
  if (outlier && outlier.maxEjectionTimeMs < outlier.baseEjectionTimeMs) {
    throw new InvalidOptionError('outlierDetection.maxEjectionTimeMs', outlier.maxEjectionTimeMs, 'must be ≥ outlierDetection.baseEjectionTimeMs');
  }

  const r = obj('retry', options.retry) as RetryOptions | false | undefined;
  let retry: ResolvedOptions['retry'] = false;
  if (r !== false) {
    const bud = obj('retry.budget', r?.budget) as RetryBudgetOptions | false | undefined;
    if (bud === false) throw new InvalidOptionError('retry.budget', false, 'must be an object');
    retry = {
      maxRetries: checkNumber('retry.maxRetries', r?.maxRetries, 2, { integer: true, min: 0, max: 100 }),
      baseDelayMs: checkNumber('retry.baseDelayMs', r?.baseDelayMs, 25, { integer: true, min: 0, max: 60_000 }),
      maxDelayMs: checkNumber('retry.maxDelayMs', r?.maxDelayMs, 1_000, { integer: true, min: 0, max: 600_000 }),
      retryOnStatuses: statuses('retry.retryOnStatuses', r?.retryOnStatuses, [502, 503, 504]),
      budget: {
        ratio: checkNumber('retry.budget.ratio', bud?.ratio, 0.2, { min: 0, max: 1000 }),
        windowMs: checkNumber('retry.budget.windowMs', bud?.windowMs, 10_000, { integer: true, min: 1_000, max: 600_000 }),
        minRetriesPerSecond: checkNumber('retry.budget.minRetriesPerSecond', bud?.minRetriesPerSecond, 10, { min: 0, max: 1e6 }),
      },
    };
    if (retry.maxDelayMs < retry.baseDelayMs) throw new InvalidOptionError('retry.maxDelayMs', retry.maxDelayMs, 'must be ≥ retry.baseDelayMs');
  }

  return {
    service,
    resolver,
    query: options.query,
    balancer,
    timeoutMs,
    perTryTimeoutMs,
    connectTimeoutMs: checkNumber('connectTimeoutMs', options.connectTimeoutMs, 1_000, { integer: true, min: 1, max: 600_000 }),
    connectionsPerEndpoint,
    keepAliveTimeoutMs: checkNumber('keepAliveTimeoutMs', options.keepAliveTimeoutMs, 4_000, { integer: true, min: 1, max: 3_600_000 }),
    maxResponseBytes: checkNumber('maxResponseBytes', options.maxResponseBytes, 8 * 1024 * 1024, { integer: true, min: 1 }),
    drainTimeoutMs: checkNumber('drainTimeoutMs', options.drainTimeoutMs, 30_000, { integer: true, min: 0, max: 3_600_000 }),
    breaker,
    outlier,
    retry,
  };
}
