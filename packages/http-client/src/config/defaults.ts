/**
 * Every default of a client in one object literal (pino's shape): option
 * resolution fills from it, `explainConfig()` reports what it resolved to and
 * the configuration doctor's fixes quote it. Change a default here and all
 * three follow. The limits beside it are the ranges validation accepts.
 * @internal
 * @module
 */
import type { NumberRule } from '@proxyless/core/internal';

const FIVE_XX: readonly number[] = Object.freeze(Array.from({ length: 100 }, (_, i) => 500 + i));

/** The defaults of {@link ClientOptions}, by option path. @internal */
export const clientDefaults = Object.freeze({
  timeoutMs: 10_000,
  /**
   * Share of `timeoutMs` an attempt gets when retries are on and no
   * `perTryTimeoutMs` is set: 2/5, so two full attempts and their backoff fit
   * in the deadline and a third gets what is left (retries off: all of it).
   */
  perTryTimeoutShare: 2 / 5,
  connectTimeoutMs: 1_000,
  connectionsPerEndpoint: 256,
  keepAliveTimeoutMs: 4_000,
  maxResponseBytes: 8 * 1024 * 1024,
  drainTimeoutMs: 30_000,
  failureStatuses: FIVE_XX,
  scheme: 'auto',
  allowH2: false,
  breaker: Object.freeze({ errorThresholdPercentage: 50, volumeThreshold: 20, resetTimeoutMs: 10_000, rollingWindowMs: 10_000, rollingBuckets: 10 }),
  outlierDetection: Object.freeze({ consecutiveFailures: 5, baseEjectionTimeMs: 10_000, maxEjectionTimeMs: 300_000, maxEjectionPercent: 50, panicThresholdPercent: 50 }),
  retry: Object.freeze({
    maxRetries: 2,
    initialMs: 25,
    maxMs: 1_000,
    retryOnStatuses: Object.freeze<number[]>([502, 503, 504]),
    budget: Object.freeze({ ratio: 0.2, windowMs: 10_000, minRetriesPerSecond: 10 }),
  }),
  /**
   * Hedging (off unless a policy sets `hedge`): one hedge (the Tail at Scale's
   * figures are for one; gRPC A6 caps copies at 5), a percentile delay never
   * below 5 ms (below it a hedge races answers still in the socket) and armed
   * after 100 samples (a p95 of fewer is one or two samples).
   */
  hedge: Object.freeze({ maxHedges: 1, minDelayMs: 5, minSamples: 100 }),
  /**
   * Adaptive concurrency limits (off unless `concurrencyLimit` is set). Vegas
   * by measurement (bench/overload.bench.ts); initial 20 as Netflix's; min 1 so
   * a backend with few slots is not flooded; max 200, under the pool's 256 connections.
   */
  concurrencyLimitAlgorithm: 'vegas',
  concurrencyLimit: Object.freeze({ initialLimit: 20, minLimit: 1, maxLimit: 200 }),
  /**
   * Admission control (off unless `admissionControl` is set): SRE's K = 2 and
   * Envoy's 80 % cap; a 10 s window like the retry budget's and the breaker's;
   * 20 attempts in the window before any local rejection (a quiet client does not
   * reject on its first overload answer).
   */
  admissionControl: Object.freeze({ k: 2, windowMs: 10_000, minRequests: 20, maxRejectProbability: 0.8 }),
} as const);

/** The shape of {@link clientDefaults} (a test may resolve options against another table of this shape). @internal */
export interface ClientDefaults {
  readonly timeoutMs: number;
  readonly perTryTimeoutShare: number;
  readonly connectTimeoutMs: number;
  readonly connectionsPerEndpoint: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxResponseBytes: number;
  readonly drainTimeoutMs: number;
  readonly failureStatuses: readonly number[];
  readonly scheme: 'http' | 'https' | 'auto';
  readonly allowH2: boolean;
  readonly breaker: { readonly [K in keyof typeof clientDefaults.breaker]: number };
  readonly outlierDetection: { readonly [K in keyof typeof clientDefaults.outlierDetection]: number };
  readonly retry: {
    readonly maxRetries: number;
    readonly initialMs: number;
    readonly maxMs: number;
    readonly retryOnStatuses: readonly number[];
    readonly budget: { readonly [K in keyof typeof clientDefaults.retry.budget]: number };
  };
  readonly hedge: { readonly [K in keyof typeof clientDefaults.hedge]: number };
  readonly concurrencyLimitAlgorithm: 'vegas' | 'gradient2';
  readonly concurrencyLimit: { readonly [K in keyof typeof clientDefaults.concurrencyLimit]: number };
  readonly admissionControl: { readonly [K in keyof typeof clientDefaults.admissionControl]: number };
}

const ms = (min: number, max = 3_600_000): NumberRule => ({ integer: true, min, max });

/** The range validation accepts for each number option, by option path. @internal */
export const clientLimits = Object.freeze({
  timeoutMs: ms(1),
  perTryTimeoutMs: ms(1),
  connectTimeoutMs: ms(1, 600_000),
  connectionsPerEndpoint: { integer: true, min: 1, max: 65_536 },
  keepAliveTimeoutMs: ms(1),
  maxResponseBytes: { integer: true, min: 1 },
  drainTimeoutMs: ms(0),
  breaker: {
    errorThresholdPercentage: { min: 1, max: 100 },
    volumeThreshold: { integer: true, min: 1 },
    resetTimeoutMs: ms(1),
    rollingWindowMs: ms(10),
    rollingBuckets: { integer: true, min: 1, max: 1000 },
  },
  outlierDetection: {
    consecutiveFailures: { integer: true, min: 1 },
    baseEjectionTimeMs: ms(1),
    maxEjectionTimeMs: ms(1),
    maxEjectionPercent: { min: 0, max: 100 },
    panicThresholdPercent: { min: 0, max: 100 },
  },
  retry: {
    maxRetries: { integer: true, min: 0, max: 100 },
    budget: { ratio: { min: 0, max: 1000 }, windowMs: ms(1_000, 600_000), minRetriesPerSecond: { min: 0, max: 1e6 } },
  },
  hedge: {
    // gRPC A6 caps maxAttempts at 5: four hedges after the first copy.
    maxHedges: { integer: true, min: 1, max: 4 },
    delayMs: ms(0, 600_000),
    // Below the median most requests would be hedged.
    percentile: { min: 50, max: 99.99 },
    minDelayMs: ms(0, 600_000),
    // The latency window keeps the last 1 000 answers.
    minSamples: { integer: true, min: 1, max: 1000 },
  },
  concurrencyLimit: {
    initialLimit: { integer: true, min: 1, max: 100_000 },
    minLimit: { integer: true, min: 1, max: 100_000 },
    maxLimit: { integer: true, min: 1, max: 100_000 },
  },
  admissionControl: {
    k: { min: 1, max: 100 },
    windowMs: ms(1_000, 600_000),
    minRequests: { integer: true, min: 0, max: 1e9 },
    maxRejectProbability: { min: 0, max: 1 },
  },
} satisfies Record<string, NumberRule | Record<string, NumberRule | Record<string, NumberRule>>>);
