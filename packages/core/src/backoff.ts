/**
 * The one backoff every Proxyless loop uses (watches, registrar recovery,
 * request retries): capped exponential with full jitter, plus a retry loop
 * built on it.
 * @module
 */
import { InvalidOptionError } from './errors.js';
import { sleep } from './sleep.js';
import { checkKnownKeys, checkNumber, optionKeys } from './validate.js';

/** Capped exponential backoff settings, in ms. */
export interface BackoffOptions {
  /** Ceiling of the first delay. Default 250. */
  initialMs?: number;
  /** Largest delay. Default 30 000. */
  maxMs?: number;
}

/**
 * Capped exponential backoff with full jitter (AWS architecture blog):
 * a uniform delay in `[0, min(maxMs, initialMs·2^attempt))`, so a fleet of
 * clients that failed at the same moment does not come back in lockstep.
 * @param attempt - 0 for the first retry.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = options.initialMs ?? 250;
  const max = options.maxMs ?? 30_000;
  const ceiling = Math.min(max, initial * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.floor(random() * ceiling);
}

const backoffKeys = optionKeys<BackoffOptions>({ initialMs: true, maxMs: true });

/**
 * Earlier spellings of the two settings (the registrar's `minDelayMs`,
 * http-client's `baseDelayMs`, both packages' `maxDelayMs`): one backoff has
 * one spelling everywhere, and an old key fails naming the new one rather
 * than passing silently or as a bare "not an option".
 */
const renamedBackoffKeys: Readonly<Record<string, keyof BackoffOptions>> = { minDelayMs: 'initialMs', baseDelayMs: 'initialMs', maxDelayMs: 'maxMs' };

/**
 * Throws `InvalidOptionError` naming the key to use when `value` spells a
 * backoff setting the old way (call it before a typo check, which would only
 * say "not an option").
 * @internal
 */
export function checkBackoffSpelling(option: string, value: unknown): void {
  if (typeof value !== 'object' || value === null) return;
  for (const [old, key] of Object.entries(renamedBackoffKeys)) {
    if (!Object.hasOwn(value, old)) continue;
    const at = (k: string): string => (option ? `${option}.${k}` : k);
    throw new InvalidOptionError(at(old), (value as Record<string, unknown>)[old], `is spelt ${at(key)} now (one backoff spelling across Proxyless: initialMs, maxMs)`);
  }
}

/** Limits of a backoff beyond the defaults' (`initialMs` > 0, `maxMs` ≥ `initialMs`). @internal */
export interface BackoffRule {
  /** Whole milliseconds only. */
  integer?: boolean;
  /** Smallest `initialMs` (default: anything above 0). 0 suits a loop bounded otherwise, such as a request's retries. */
  minInitialMs?: number;
  /** Largest `initialMs`. */
  maxInitialMs?: number;
  /** Largest `maxMs`. */
  maxMs?: number;
  /** The two keys sit in a larger options object whose other keys the caller checks (http-client's `retry`). */
  inline?: boolean;
}

/**
 * Validates a {@link BackoffOptions} object and fills in defaults. An old
 * spelling (`minDelayMs`, `baseDelayMs`, `maxDelayMs`) throws
 * `InvalidOptionError` naming the key to use.
 * @internal
 */
export function checkBackoff(option: string, value: BackoffOptions | undefined, defaults: Required<BackoffOptions> = { initialMs: 250, maxMs: 30_000 }, rule: BackoffRule = {}): Required<BackoffOptions> {
  if (value !== undefined && (typeof value !== 'object' || value === null)) throw new InvalidOptionError(option, value, 'must be { initialMs, maxMs }');
  const at = (key: string): string => (option ? `${option}.${key}` : key);
  checkBackoffSpelling(option, value);
  if (rule.inline !== true) checkKnownKeys(option, value, backoffKeys, 'a backoff');
  const integer = rule.integer === true;
  const initialMs = checkNumber(at('initialMs'), value?.initialMs, defaults.initialMs, rule.minInitialMs === undefined ? { integer, above: 0, max: rule.maxInitialMs } : { integer, min: rule.minInitialMs, max: rule.maxInitialMs });
  const maxMs = checkNumber(at('maxMs'), value?.maxMs, Math.max(initialMs, defaults.maxMs), { integer, min: initialMs, max: rule.maxMs });
  return { initialMs, maxMs };
}

/** Options of {@link retryWithBackoff}. @internal */
export interface RetryWithBackoffOptions {
  /** Delays between attempts (full jitter). */
  backoff: Required<BackoffOptions>;
  /** Stops the loop: the pending delay ends at once and the call rejects with the signal's reason. */
  signal: AbortSignal;
  /** Whether a failure is worth another attempt. Default: always. */
  shouldRetry?: (error: unknown) => boolean;
  /** Called after each failed attempt, before deciding. */
  onFailedAttempt?: (error: unknown, attempt: number) => void;
}

/**
 * Runs `operation` until it resolves, `shouldRetry` refuses a failure (that
 * failure is thrown) or `signal` aborts (its reason is thrown), waiting
 * {@link backoffDelay} between attempts. Delays are unref'd.
 * @internal
 */
export async function retryWithBackoff<T>(operation: (attempt: number) => Promise<T>, options: RetryWithBackoffOptions): Promise<T> {
  const { backoff, signal, shouldRetry, onFailedAttempt } = options;
  for (let attempt = 0; ; attempt++) {
    signal.throwIfAborted();
    try {
      return await operation(attempt);
    } catch (error) {
      onFailedAttempt?.(error, attempt);
      signal.throwIfAborted();
      if (shouldRetry !== undefined && !shouldRetry(error)) throw error;
    }
    await sleep(backoffDelay(attempt, backoff), signal);
  }
}
