/**
 * The client's configuration doctor: warnings (never errors) for settings
 * that work but hurt in production, each naming the fix, and
 * {@link ExplainedConfig}, the resolved configuration with every default spelled out.
 * @module
 */
import { InvalidOptionError, type ConfigLogger, type ConfigWarning } from '@proxyless/core';
import { checkLogger, checkNumber, formatConfigWarning } from '@proxyless/core/internal';
import { clientDefaults, type ClientDefaults } from './defaults.js';
import type { AdmissionControlOptions, ConcurrencyLimitOptions, ResolvedOptions, RetryLayer } from './options.js';
import type { RequestPolicy } from './policy.js';

/** The resolved configuration of a client, every default spelled out ({@link ProxylessClient.explainConfig}). */
export interface ExplainedConfig {
  readonly service: string;
  /** The resolver's class name. */
  readonly resolver: string;
  readonly query: object | undefined;
  /** The balancer's name. */
  readonly balancer: string;
  readonly timeoutMs: number;
  readonly perTryTimeoutMs: number;
  /** Where the per-try timeout came from. */
  readonly perTryTimeoutFrom: 'perTryTimeoutMs' | `default: ${string} of timeoutMs` | 'default: timeoutMs (retries off)';
  readonly retry: { maxRetries: number; initialMs: number; maxMs: number; retryOnStatuses: readonly number[] } | false;
  readonly retryBudget: { ratio: number; windowMs: number; minRetriesPerSecond: number };
  /** Worst-case attempts per user request across this client and the declared `retryLayers`. */
  readonly worstCaseAttempts: number;
  readonly connectTimeoutMs: number;
  readonly connectionsPerEndpoint: number | null;
  readonly keepAliveTimeoutMs: number;
  /** undici's gap-between-body-chunks limit (the per-try timeout; ~1 s resolution). */
  readonly bodyTimeoutMs: number;
  readonly maxResponseBytes: number;
  readonly drainTimeoutMs: number;
  readonly breaker: Readonly<ResolvedOptions['breaker']>;
  readonly outlierDetection: Readonly<ResolvedOptions['outlier']>;
  /** Statuses counted as endpoint failures, by the breakers and outlier detection alike. */
  readonly failureStatuses: readonly number[];
  readonly scheme: 'http' | 'https' | 'auto';
  /** TLS settings with every secret left out. */
  readonly tls: { ca: 'custom' | 'Node roots'; clientCertificate: boolean; servername: string | undefined; rejectUnauthorized: boolean };
  /** HTTP/2 offered to HTTPS instances by ALPN. */
  readonly allowH2: boolean;
  readonly retryLayers: readonly RetryLayer[];
  readonly logger: 'console' | 'custom' | false;
  /** Subsetting: its mode, size, client id and coordinate; `false`: every instance. */
  readonly subset: {
    mode: 'rendezvous' | 'aperture';
    size: number;
    clientId: string;
    coordinate: { index: number; count: number } | undefined;
    /** Where the coordinate is read from (`subset.peers`): the service and this process's id in it. */
    peers: { service: string; id: string } | undefined;
  } | false;
  /** The adaptive concurrency limit per endpoint, or false (off, the default). */
  readonly concurrencyLimit: Readonly<Required<ConcurrencyLimitOptions>> | false;
  /** Client-side admission control, or false (off, the default). */
  readonly admissionControl: Readonly<Required<AdmissionControlOptions>> | false;
}

/** Checks `retryLayers`. @internal */
export function checkRetryLayers(value: unknown): readonly RetryLayer[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new InvalidOptionError('retryLayers', value, 'must be an array of { name, attempts }');
  return Object.freeze(
    value.map((layer: unknown, i) => {
      const l = layer as Partial<RetryLayer> | null;
      if (typeof l !== 'object' || l === null || typeof l.name !== 'string' || l.name === '') throw new InvalidOptionError(`retryLayers[${i}].name`, l?.name, 'must be a non-empty string');
      return Object.freeze({ name: l.name, attempts: checkNumber(`retryLayers[${i}].attempts`, l.attempts, undefined, { integer: true, min: 1 }) });
    }),
  );
}

/** A share as the simplest fraction (0.4 → `2/5`), as the docs write it. */
function fraction(share: number): string {
  for (let d = 1; d <= 100; d++) {
    const n = share * d;
    if (Math.abs(n - Math.round(n)) < 1e-9) return d === 1 ? String(Math.round(n)) : `${Math.round(n)}/${d}`;
  }
  return String(share);
}

function attemptsOf(policy: RequestPolicy): number {
  return policy.retry === false ? 1 : 1 + policy.retry.maxRetries;
}

/**
 * Retry amplification: retries at more than one layer multiply. Warns when
 * this client and at least one declared layer both retry.
 */
export function checkRetryAmplification(policy: RequestPolicy, layers: readonly RetryLayer[]): ConfigWarning[] {
  const ours = attemptsOf(policy);
  const retrying = layers.filter((l) => l.attempts > 1);
  if (ours <= 1 || retrying.length === 0) return [];
  const total = retrying.reduce((n, l) => n * l.attempts, ours);
  const chain = [...retrying.map((l) => `${l.name} ${l.attempts}`), `this client ${ours}`].join(' × ');
  return [
    {
      code: 'RETRY_AMPLIFICATION',
      option: 'retry.maxRetries',
      message: `retries at ${retrying.length + 1} layers multiply: ${chain} = up to ${total} attempts on the service per user request, just when it is overloaded.`,
      fix: `retry at one layer only: set retry: false here, or turn retries off in ${retrying.map((l) => `"${l.name}"`).join(', ')} (this client's retry budget caps its own retries only).`,
    },
  ];
}

/**
 * A per-try timeout that leaves no room for a retry inside the deadline:
 * after one attempt times out, a retry would get less than half the time
 * the first attempt had.
 */
export function checkPerTryRoom(policy: RequestPolicy): ConfigWarning[] {
  return perTryRoom(policy, clientDefaults);
}

/** {@link checkPerTryRoom}, its fix quoting `defaults`. @internal */
export function perTryRoom(policy: RequestPolicy, defaults: ClientDefaults): ConfigWarning[] {
  if (policy.retry === false || policy.retry.maxRetries === 0) return [];
  const room = policy.timeoutMs - policy.perTryTimeoutMs;
  if (room * 2 >= policy.perTryTimeoutMs) return [];
  return [
    {
      code: 'PER_TRY_TIMEOUT_LEAVES_NO_RETRY',
      option: 'perTryTimeoutMs',
      message: `a per-try timeout of ${policy.perTryTimeoutMs} ms inside a ${policy.timeoutMs} ms deadline leaves ${room} ms after a timed-out attempt: the retries configured (${policy.retry.maxRetries}) cannot help against a hung endpoint.`,
      fix: `set perTryTimeoutMs ≤ ${Math.floor(policy.timeoutMs * defaults.perTryTimeoutShare)} ms (${fraction(defaults.perTryTimeoutShare)} of timeoutMs, the default when it is not set) or raise timeoutMs to ≥ ${Math.ceil(policy.perTryTimeoutMs * 1.5)} ms.`,
    },
  ];
}

/**
 * Max-ejection percentage vs the number of endpoints: a cap that rounds to
 * less than one endpoint (one is ejected anyway, a larger share than asked),
 * or one that lets every endpoint go at once with panic mode off.
 */
export function checkEjectionCap(outlier: ResolvedOptions['outlier'], endpoints: number): ConfigWarning[] {
  return ejectionCap(outlier, endpoints, clientDefaults);
}

/** {@link checkEjectionCap}, its fix quoting `defaults`. @internal */
export function ejectionCap(outlier: ResolvedOptions['outlier'], endpoints: number, defaults: ClientDefaults): ConfigWarning[] {
  if (outlier === false || endpoints === 0) return [];
  const { maxEjectionPercent: pct, panicThresholdPercent: panic } = outlier;
  const allowed = Math.max(1, Math.floor((endpoints * pct) / 100));
  if (endpoints > 1 && allowed >= endpoints && panic === 0) {
    return [
      {
        code: 'EJECTION_CAN_EMPTY_THE_SET',
        option: 'outlierDetection.maxEjectionPercent',
        message: `maxEjectionPercent ${pct}% of ${endpoints} endpoints lets every endpoint be ejected at once, and panic mode is off: one bad minute (or a bad deploy of a dependency) fails every request with no healthy endpoint.`,
        fix: `set outlierDetection.maxEjectionPercent ≤ ${Math.floor((100 * (endpoints - 1)) / endpoints)} or keep panicThresholdPercent > 0 (default ${defaults.outlierDetection.panicThresholdPercent}).`,
      },
    ];
  }
  // One endpoint: ejecting it means panic mode (or no endpoint at all, which the check above covers); nothing to say.
  if (endpoints > 1 && (endpoints * pct) / 100 < 1 && pct > 0) {
    return [
      {
        code: 'EJECTION_CAP_BELOW_ONE_ENDPOINT',
        option: 'outlierDetection.maxEjectionPercent',
        message: `maxEjectionPercent ${pct}% of ${endpoints} endpoint(s) is less than one endpoint; one may be ejected anyway, which is ${Math.round(100 / endpoints)}% of the capacity.`,
        fix: `add endpoints (≥ ${Math.ceil(100 / pct)} for ${pct}% to mean one), or set outlierDetection.maxEjectionPercent ≥ ${Math.ceil(100 / endpoints)} to say what you get, or outlierDetection: false.`,
      },
    ];
  }
  return [];
}

/**
 * Runs the checks for one client, reports each warning once (event, then
 * logger), and re-checks the ejection cap whenever the endpoint count changes.
 * @internal
 */
export class ClientDoctor {
  readonly #options: ResolvedOptions;
  readonly #who: string;
  readonly #logger: ConfigLogger | undefined;
  readonly #emit: (warning: ConfigWarning) => void;
  readonly #seen = new Set<string>();
  readonly layers: readonly RetryLayer[];
  readonly loggerKind: 'console' | 'custom' | false;
  #endpoints = -1;

  constructor(options: ResolvedOptions, logger: unknown, layers: unknown, emit: (warning: ConfigWarning) => void) {
    this.#options = options;
    this.#who = `client "${options.service}"`;
    this.#logger = checkLogger(logger);
    this.loggerKind = this.#logger === undefined ? false : this.#logger === console ? 'console' : 'custom';
    this.layers = checkRetryLayers(layers);
    this.#emit = emit;
    const warnings = [...perTryRoom(options.policy, options.defaults), ...checkRetryAmplification(options.policy, this.layers)];
    // On the next tick: listeners attached right after construction hear them too.
    if (warnings.length > 0) process.nextTick(() => this.#report(warnings));
  }

  /** The endpoint count changed: re-check the ejection cap (each warning code is reported once). */
  endpoints(count: number): void {
    if (count === this.#endpoints) return;
    this.#endpoints = count;
    this.#report(ejectionCap(this.#options.outlier, count, this.#options.defaults));
  }

  #report(warnings: readonly ConfigWarning[]): void {
    for (const w of warnings) {
      if (this.#seen.has(w.code)) continue;
      this.#seen.add(w.code);
      this.#emit(w);
      this.#logger?.warn(formatConfigWarning(this.#who, w));
    }
  }
}

/** Builds {@link ExplainedConfig}. @internal */
export function explainConfig(o: ResolvedOptions, scheme: 'http' | 'https' | 'auto', doctor: ClientDoctor, resolverName: string, balancerName: string): ExplainedConfig {
  const policy = o.policy;
  const retry = policy.retry === false ? false : { maxRetries: policy.retry.maxRetries, initialMs: policy.retry.initialMs, maxMs: policy.retry.maxMs, retryOnStatuses: policy.retry.retryOnStatuses };
  const retries = policy.retry !== false && policy.retry.maxRetries > 0;
  const ours = attemptsOf(policy);
  return Object.freeze({
    service: o.service,
    resolver: resolverName,
    query: o.query,
    balancer: balancerName,
    timeoutMs: policy.timeoutMs,
    perTryTimeoutMs: policy.perTryTimeoutMs,
    perTryTimeoutFrom: o.perTryExplicit ? 'perTryTimeoutMs' : retries ? `default: ${fraction(o.defaults.perTryTimeoutShare)} of timeoutMs` : 'default: timeoutMs (retries off)',
    retry,
    retryBudget: { ...o.budget },
    worstCaseAttempts: doctor.layers.reduce((n, l) => n * l.attempts, ours),
    connectTimeoutMs: o.connectTimeoutMs,
    connectionsPerEndpoint: o.connectionsPerEndpoint,
    keepAliveTimeoutMs: o.keepAliveTimeoutMs,
    bodyTimeoutMs: o.bodyTimeoutMs,
    maxResponseBytes: o.maxResponseBytes,
    drainTimeoutMs: o.drainTimeoutMs,
    breaker: o.breaker === false ? false : { ...o.breaker },
    outlierDetection: o.outlier === false ? false : { ...o.outlier },
    failureStatuses: o.failureStatuses,
    scheme,
    allowH2: o.allowH2,
    tls: {
      ca: o.tls.ca === undefined ? 'Node roots' : 'custom',
      clientCertificate: o.tls.cert !== undefined,
      servername: o.tls.servername,
      rejectUnauthorized: o.tls.rejectUnauthorized ?? true,
    },
    retryLayers: doctor.layers,
    logger: doctor.loggerKind,
    subset: o.subset === undefined ? false : {
      mode: o.subset.mode,
      size: o.subset.size,
      clientId: o.subset.clientId,
      coordinate: o.subset.coordinate,
      peers: o.subset.peers === undefined ? undefined : { service: o.subset.peers.service, id: o.subset.peers.id },
    },
    concurrencyLimit: o.concurrencyLimit ?? false,
    admissionControl: o.admissionControl ?? false,
  } satisfies ExplainedConfig);
}
