/**
 * The error family every Proxyless package throws.
 *
 * Every error has a stable `code`; retry and fallback decisions test codes,
 * never messages. `instanceof` works across duplicate copies of the package
 * (each class has a `Symbol.for('proxyless.error.<CODE>')` brand), and {@link isProxylessError} is the guard to use
 * when in doubt.
 */

/** Stable error codes. Packages may add their own `ERR_*` codes. */
export type ProxylessErrorCode =
  | 'ERR_INVALID_OPTION'
  | 'ERR_INVALID_SERVICE_NAME'
  | 'ERR_CLOSED'
  | 'ERR_ABORTED'
  | 'ERR_TIMEOUT'
  | 'ERR_NO_HEALTHY_INSTANCES'
  | 'ERR_RESOLUTION_FAILED'
  | 'ERR_CONSUL_UNREACHABLE'
  | 'ERR_CONSUL_API'
  | 'ERR_BAD_RESPONSE'
  | (string & {});

/** Options accepted by every {@link ProxylessError} constructor. */
export interface ProxylessErrorOptions {
  /** The underlying error. */
  cause?: unknown;
}

/**
 * The brand of an error class, shared by every copy of every Proxyless
 * package: `Symbol.for('proxyless.error.<id>')`, where `id` is the class's
 * code (or its name for a base class without one of its own).
 * @internal
 */
export function errorBrand(id: string): symbol {
  return Symbol.for(`proxyless.error.${id}`);
}

type BrandedClass = { brand?: symbol };

/**
 * Base class of every error Proxyless throws.
 *
 * Each class has an explicit `name`, a stable `code` and its own brand
 * (`Symbol.for('proxyless.error.<CODE>')`); `instanceof` tests the brand, so it works across
 * duplicate installs and minified builds, and two unrelated classes that
 * happen to share a name never match.
 * @example
 * try { await resolver.resolve('web'); }
 * catch (error) { if (isProxylessError(error, 'ERR_NO_HEALTHY_INSTANCES')) { ... } }
 */
export class ProxylessError extends Error {
  /** This class's brand; every subclass declares its own. */
  static readonly brand: symbol = errorBrand('ProxylessError');
  /** Stable, machine-readable code. */
  readonly code: ProxylessErrorCode;

  constructor(code: ProxylessErrorCode, message: string, options: ProxylessErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    // Carry the brand of every class in the chain, so `instanceof` of any ancestor matches too.
    for (let c = new.target as unknown as BrandedClass | null; c !== null && c !== (Error as unknown); c = Object.getPrototypeOf(c) as BrandedClass | null) {
      if (Object.hasOwn(c, 'brand') && typeof c.brand === 'symbol') Object.defineProperty(this, c.brand, { value: true });
    }
  }

  override get name(): string {
    return 'ProxylessError';
  }

  /** Matches errors branded by this class, from any copy of the package. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // A subclass that forgot its own brand falls back to the prototype chain rather than matching its parent's instances.
    if (!Object.hasOwn(this, 'brand')) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[this.brand] === true;
  }
}

/** True when `error` is a Proxyless error (optionally with the given code). */
export function isProxylessError(error: unknown, code?: ProxylessErrorCode): error is ProxylessError {
  return error instanceof ProxylessError && (code === undefined || error.code === code);
}

/** An option (or argument) is missing, malformed or out of range. */
export class InvalidOptionError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_INVALID_OPTION');

  override get name(): string {
    return 'InvalidOptionError';
  }

  /** Dotted path of the option, e.g. `heartbeat.ttlMs`. */
  readonly option: string;
  /** The rejected value. */
  readonly value: unknown;

  /**
   * @param message - the whole message instead of `Invalid option "<option>": <value> <expectation>`,
   *   for a value the caller did not pass as an option (e.g. a URL's host), where those words would mislead.
   */
  constructor(option: string, value: unknown, expectation: string, code: ProxylessErrorCode = 'ERR_INVALID_OPTION', message?: string) {
    super(code, message ?? `Invalid option "${option}": ${describeValue(value)} ${expectation}`);
    this.option = option;
    this.value = value;
  }
}

/** A service name, tag or datacenter that cannot be safely put in a URL or DNS question. */
export class InvalidServiceNameError extends InvalidOptionError {
  static override readonly brand: symbol = errorBrand('ERR_INVALID_SERVICE_NAME');

  override get name(): string {
    return 'InvalidServiceNameError';
  }

  /** @param message - the whole message, as for {@link InvalidOptionError}. */
  constructor(option: string, value: unknown, expectation: string, message?: string) {
    super(option, value, expectation, 'ERR_INVALID_SERVICE_NAME', message);
  }
}

/** The resource was closed; no more calls are accepted. */
export class ClosedError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_CLOSED');

  override get name(): string {
    return 'ClosedError';
  }

  constructor(what: string) {
    super('ERR_CLOSED', `${what} is closed`);
  }
}

/** The caller's AbortSignal fired. */
export class AbortedError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_ABORTED');

  override get name(): string {
    return 'AbortedError';
  }

  constructor(what: string, cause?: unknown) {
    super('ERR_ABORTED', `${what} was aborted`, { cause });
  }
}

/** An operation did not complete within its time limit. */
export class TimeoutError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_TIMEOUT');

  override get name(): string {
    return 'TimeoutError';
  }

  /** The limit that was exceeded. */
  readonly timeoutMs: number;

  constructor(what: string, timeoutMs: number, cause?: unknown) {
    super('ERR_TIMEOUT', `${what} timed out after ${timeoutMs} ms`, { cause });
    this.timeoutMs = timeoutMs;
  }
}

/** Renders a value for an error message without dumping huge or secret-looking input. */
function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return `array(${value.length})`;
  return typeof value;
}

/** A service resolved, but none of its instances is healthy (or it has none). */
export class NoHealthyInstancesError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_NO_HEALTHY_INSTANCES');

  override get name(): string {
    return 'NoHealthyInstancesError';
  }

  /** The service that has no healthy instance. */
  readonly service: string;

  constructor(service: string, detail = 'has no healthy instances') {
    super('ERR_NO_HEALTHY_INSTANCES', `Service "${service}" ${detail}`);
    this.service = service;
  }
}

/** Discovery failed (registry unreachable, bad answer…); `cause` holds the underlying error. */
export class ResolutionFailedError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_RESOLUTION_FAILED');

  override get name(): string {
    return 'ResolutionFailedError';
  }

  /** The service being resolved. */
  readonly service: string;
  /** Which resolver failed, e.g. `consul`, `dns`. */
  readonly source: string;

  /**
   * What failed and what to do about it, in one line: the registry, the
   * address tried and the variable or option that sets it (the registrar's
   * shape), when the resolver knows them; else the cause's message.
   */
  readonly detail: string;

  constructor(service: string, source: string, cause: unknown, detail?: string) {
    const reason = detail ?? (cause instanceof Error ? cause.message : String(cause));
    super('ERR_RESOLUTION_FAILED', `Resolving "${service}" via ${source} failed: ${reason}`, { cause });
    this.service = service;
    this.source = source;
    this.detail = reason;
  }
}
