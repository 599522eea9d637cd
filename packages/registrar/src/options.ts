import { hostname, networkInterfaces } from 'node:os';
import { ConsulHttpClient, InvalidOptionError, validateServiceName, validateTag, type BackoffOptions, type RegistryFactory } from '@proxyless/core';
import { checkBackoff, checkBackoffSpelling, checkKnownKeys, checkNumber, optionKeys } from '@proxyless/core/internal';
import type { HealthFunction } from './health.js';
import type { RegistrarLogger } from './outage-log.js';

/** Consul's service weights: how much traffic a passing or warning instance gets in DNS answers. */
export interface RegistrationWeights {
  /** Weight while passing. Integer ≥ 1. Default 1. */
  passing: number;
  /** Weight while warning. Integer ≥ 0. Default 1. */
  warning: number;
}

/**
 * Backoff used while the registry is unreachable or refuses a (re-)registration:
 * core's {@link BackoffOptions}, spelt as everywhere in Proxyless (the earlier
 * `minDelayMs`/`maxDelayMs` throw `InvalidOptionError` naming these).
 */
export interface RetryBackoffOptions extends BackoffOptions {
  /** Ceiling of the first delay, in ms (delays are drawn with full jitter). Default 250. */
  initialMs?: number;
  /**
   * Largest delay, in ms. Default: the heartbeat interval, so that the
   * instance is back within one heartbeat interval after the registry is.
   */
  maxMs?: number;
}

/** Options of a {@link Registrar}. Durations are in milliseconds. */
export interface RegistrarOptions {
  /** Service name (letters, digits, `-`, `_`; 1–63 characters). Required. */
  name: string;
  /** Port the instance serves on (1–65535). Required. */
  port: number;
  /**
   * Instance ID, unique on its agent. Default `<name>-<hostname>-<port>`, which
   * is stable across restarts of the same instance (a restart replaces its own
   * stale registration) and distinct between instances sharing an agent.
   */
  id?: string;
  /**
   * Address other instances reach this one at. Default: the first non-internal
   * IPv4 address of this host. `0.0.0.0` and `::` are refused (Consul answers 400).
   */
  address?: string;
  /** Tags (1–255 printable ASCII characters each). Default none. */
  tags?: readonly string[];
  /**
   * Service metadata. Consul's rules apply: at most 64 pairs; keys
   * `[A-Za-z0-9_-]{1,128}` without the `consul-` prefix; values up to 512 characters.
   */
  meta?: Readonly<Record<string, string>>;
  /** DNS weights. Default Consul's (`{ passing: 1, warning: 1 }`). */
  weights?: RegistrationWeights;
  /**
   * How long the registry keeps the instance without a heartbeat, in ms (Consul: the TTL
   * check's TTL; etcd: the lease's). At least 1000. Default 15 000.
   */
  ttlMs?: number;
  /** Interval between heartbeats, in ms. At most `ttlMs / 2`. Default `ttlMs / 3`. */
  heartbeatIntervalMs?: number;
  /** Jitter of each beat around its fixed-rate slot, as a fraction of the interval (0–0.25). Default 0.1. */
  jitter?: number;
  /** Decides each beat's status. Default: always passing (unless {@link Registrar.setStatus} says otherwise). */
  health?: HealthFunction;
  /** Time limit of each registry call, in ms. Default `min(5000, heartbeatIntervalMs)`. */
  requestTimeoutMs?: number;
  /** Backoff while the registry is unreachable. */
  retry?: RetryBackoffOptions;
  /**
   * Where to register: {@link consulRegistry} (the default, `consulRegistry()`:
   * the local agent from `CONSUL_HTTP_ADDR`, a TTL check) or `etcdRegistry()`
   * from `@proxyless/etcd` (a key with a lease of `ttlMs`). Settings only one
   * registry has (Consul's check ID, name and reap delay, the connection) are
   * options of that registry.
   */
  registry?: RegistryFactory;
  /**
   * Where to say, in one line per outage, that the registry cannot be reached
   * (naming the address tried and the variable that sets it) or refuses us, and
   * when it is back. Default `console`; `false` silences it (the `error` event
   * and {@link Registrar.lastError} still carry every failure).
   */
  logger?: RegistrarLogger | false;
}

/** {@link RegistrarOptions} after defaults and validation (see there for meanings and units). */
export interface ResolvedRegistrarOptions {
  /** Service name. */
  readonly name: string;
  /** Instance ID. */
  readonly id: string;
  /** Advertised address. */
  readonly address: string;
  /** Advertised port. */
  readonly port: number;
  /** Tags. */
  readonly tags: readonly string[];
  /** Service metadata. */
  readonly meta: Readonly<Record<string, string>>;
  /** DNS weights, if set. */
  readonly weights: RegistrationWeights | undefined;
  /** Registration TTL, ms. */
  readonly ttlMs: number;
  /** Heartbeat interval, ms. */
  readonly heartbeatIntervalMs: number;
  /** Jitter fraction. */
  readonly jitter: number;
  /** Health function, if any. */
  readonly health: HealthFunction | undefined;
  /** Time limit of each registry call, ms. */
  readonly requestTimeoutMs: number;
  /** Ceiling of the first retry delay, ms. */
  readonly retryInitialMs: number;
  /** Largest retry delay, ms. */
  readonly retryMaxMs: number;
  /** Where outages are reported; `undefined` when silenced. */
  readonly logger: RegistrarLogger | undefined;
}

/** Smallest TTL accepted. */
export const MIN_TTL_MS = 1000;

const idPattern = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const metaKeyPattern = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Checks service metadata against Consul's rules.
 * @throws InvalidOptionError naming the offending key.
 */
export function validateMeta(meta: unknown, option = 'meta'): Record<string, string> {
  if (meta === undefined) return {};
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    throw new InvalidOptionError(option, meta, 'must be an object of string values');
  }
  const entries = Object.entries(meta as Record<string, unknown>);
  if (entries.length > 64) throw new InvalidOptionError(option, meta, `has ${entries.length} pairs; Consul allows at most 64`);
  const out: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (!metaKeyPattern.test(key)) {
      throw new InvalidOptionError(`${option}.${key}`, key, 'is not a valid meta key ([A-Za-z0-9_-], 1-128 characters)');
    }
    if (key.toLowerCase().startsWith('consul-')) {
      throw new InvalidOptionError(`${option}.${key}`, key, 'uses the "consul-" prefix Consul reserves');
    }
    if (typeof value !== 'string') throw new InvalidOptionError(`${option}.${key}`, value, 'must be a string');
    if (value.length > 512) throw new InvalidOptionError(`${option}.${key}`, value, 'is longer than 512 characters');
    out[key] = value;
  }
  return out;
}

/**
 * The first non-internal IPv4 address of this host, if any.
 * @internal
 */
export function defaultAddress(interfaces = networkInterfaces()): string | undefined {
  for (const list of Object.values(interfaces)) {
    for (const info of list ?? []) {
      if (info.family === 'IPv4' && !info.internal && info.address !== '0.0.0.0') return info.address;
    }
  }
  return undefined;
}

function validateAddress(address: unknown): string {
  if (typeof address !== 'string' || address.length === 0 || address.length > 255 || /[\s/?#@]/.test(address)) {
    throw new InvalidOptionError('address', address, 'must be a host name or IP address');
  }
  if (address === '0.0.0.0' || address === '::' || address === '[::]' || address === '::0') {
    throw new InvalidOptionError('address', address, 'is a wildcard address; give an address others can reach');
  }
  return address;
}

/** A host name made safe for an instance ID. */
function idSafe(text: string): string {
  return text.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 63) || 'host';
}

const registrarKeys = optionKeys<RegistrarOptions>({
  name: true, port: true, id: true, address: true, tags: true, meta: true, weights: true, ttlMs: true,
  heartbeatIntervalMs: true, jitter: true, health: true, requestTimeoutMs: true, retry: true, registry: true, logger: true,
});

/** Options that belong to one registry now (0.x moved them): where each one went. */
const movedToConsulRegistry: Readonly<Record<string, (value: unknown) => string>> = {
  consul: (value) => (value instanceof ConsulHttpClient ? 'registry: consulRegistry({ client })' : 'registry: consulRegistry({ address, token, … })'),
  checkId: () => 'registry: consulRegistry({ checkId })',
  checkName: () => 'registry: consulRegistry({ checkName })',
  deregisterCriticalServiceAfterMs: () => 'registry: consulRegistry({ deregisterCriticalServiceAfterMs })',
};

/**
 * Throws for a setting given where it used to be: silently ignoring it would
 * register with defaults the app did not ask for (another agent, another check ID).
 */
function rejectMovedOptions(options: object): void {
  for (const [key, where] of Object.entries(movedToConsulRegistry)) {
    const value = (options as Record<string, unknown>)[key];
    if (value === undefined) continue;
    // The value is left out: connection options carry the token.
    const error = new InvalidOptionError(key, '<not shown>', '');
    error.message = `Invalid option "${key}": moved: use ${where(value)}; settings only Consul has are options of its registry`;
    Error.captureStackTrace(error, rejectMovedOptions);
    throw error;
  }
}

/**
 * Applies defaults and validates every option once.
 * @throws InvalidOptionError naming the option and the bad value.
 * @internal
 */
export function resolveRegistrarOptions(options: RegistrarOptions): ResolvedRegistrarOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('options', options, 'must be an object');
  }
  rejectMovedOptions(options);
  checkKnownKeys('', options, registrarKeys, 'Registrar');
  checkKnownKeys('weights', options.weights, optionKeys<RegistrationWeights>({ passing: true, warning: true }), 'Registrar');
  checkBackoffSpelling('retry', options.retry);
  checkKnownKeys('retry', options.retry, optionKeys<RetryBackoffOptions>({ initialMs: true, maxMs: true }), 'Registrar');
  if (options.name === undefined || options.name === '') {
    throw new InvalidOptionError('name', options.name, 'is required');
  }
  const name = validateServiceName(options.name, 'name');
  const port = checkNumber('port', options.port, undefined, { integer: true, min: 1, max: 65_535 });
  const id = options.id ?? `${name}-${idSafe(hostname())}-${port}`;
  if (typeof id !== 'string' || !idPattern.test(id)) {
    throw new InvalidOptionError('id', id, 'must be 1-128 characters of [A-Za-z0-9_.:-], starting with a letter or digit');
  }
  let address = options.address;
  if (address === undefined) {
    address = defaultAddress();
    if (address === undefined) {
      throw new InvalidOptionError('address', undefined, 'could not be determined (no non-internal IPv4 interface); set it explicitly');
    }
  }
  validateAddress(address);
  const tags: readonly string[] = options.tags ?? [];
  if (!Array.isArray(tags)) throw new InvalidOptionError('tags', tags, 'must be an array of strings');
  tags.forEach((tag, i) => validateTag(tag, `tags[${i}]`));
  const meta = validateMeta(options.meta);
  let weights: RegistrationWeights | undefined;
  if (options.weights !== undefined) {
    if (typeof options.weights !== 'object' || options.weights === null) {
      throw new InvalidOptionError('weights', options.weights, 'must be { passing, warning }');
    }
    weights = {
      passing: checkNumber('weights.passing', options.weights.passing, undefined, { integer: true, min: 1, max: 65_535 }),
      warning: checkNumber('weights.warning', options.weights.warning, undefined, { integer: true, min: 0, max: 65_535 }),
    };
  }
  const ttlMs = checkNumber('ttlMs', options.ttlMs, 15_000, { integer: true, min: MIN_TTL_MS, max: 24 * 3600_000 });
  const heartbeatIntervalMs =
    options.heartbeatIntervalMs === undefined
      ? Math.round(ttlMs / 3)
      : checkNumber('heartbeatIntervalMs', options.heartbeatIntervalMs, undefined, { integer: true, min: 100, max: Number.MAX_SAFE_INTEGER });
  if (heartbeatIntervalMs > ttlMs / 2) {
    // Beating at the TTL itself flaps the check on every slow beat; at TTL/2 one late beat is survivable.
    throw new InvalidOptionError(
      'ttlMs',
      ttlMs,
      `is too short for a heartbeat every ${heartbeatIntervalMs} ms; it must be at least twice the heartbeat interval`,
    );
  }
  const jitter = options.jitter ?? 0.1;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 0.25)) {
    throw new InvalidOptionError('jitter', jitter, 'must be a number between 0 and 0.25');
  }
  if (options.health !== undefined && typeof options.health !== 'function') {
    throw new InvalidOptionError('health', options.health, 'must be a function');
  }
  const requestTimeoutMs =
    options.requestTimeoutMs === undefined
      ? Math.min(5000, heartbeatIntervalMs)
      : checkNumber('requestTimeoutMs', options.requestTimeoutMs, undefined, { integer: true, min: 1, max: 600_000 });
  if (requestTimeoutMs > ttlMs) {
    throw new InvalidOptionError('requestTimeoutMs', requestTimeoutMs, `must not exceed ttlMs (${ttlMs}): a hung beat would let the check expire`);
  }
  const retry = checkBackoff('retry', options.retry, { initialMs: 250, maxMs: heartbeatIntervalMs }, { integer: true, minInitialMs: 1, maxInitialMs: 3600_000, maxMs: 3600_000 });
  if (options.registry !== undefined && typeof options.registry !== 'function') {
    throw new InvalidOptionError('registry', options.registry, 'must be a registry factory, e.g. consulRegistry() or etcdRegistry()');
  }
  const logger = options.logger === undefined ? console : options.logger;
  if (
    logger !== false &&
    (typeof logger !== 'object' || logger === null || typeof logger.warn !== 'function' || typeof logger.info !== 'function')
  ) {
    throw new InvalidOptionError('logger', logger, 'must be false or an object with warn(message) and info(message) methods');
  }
  return {
    name,
    id,
    address,
    port,
    tags: Array.from<string>(tags),
    meta,
    weights,
    ttlMs,
    heartbeatIntervalMs,
    jitter,
    health: options.health,
    requestTimeoutMs,
    retryInitialMs: retry.initialMs,
    retryMaxMs: retry.maxMs,
    logger: logger === false ? undefined : logger,
  };
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000 };

/**
 * Parses a duration such as `500ms`, `15s`, `1m`, `1m30s` or `1.5s` into milliseconds.
 * @throws InvalidOptionError naming `option`.
 */
export function parseDuration(text: string, option = 'duration'): number {
  const trimmed = text.trim();
  if (trimmed === '0') return 0;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = part.exec(trimmed)) !== null) {
    total += Number(m[1]) * (durationUnits[m[2] ?? 'ms'] ?? 1);
    matched = part.lastIndex;
  }
  if (matched === 0 || matched !== trimmed.length) {
    throw new InvalidOptionError(option, text, 'is not a duration (e.g. 500ms, 15s, 1m)');
  }
  return Math.round(total);
}
