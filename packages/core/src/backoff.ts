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
 * Validates a {@link BackoffOptions} object and fills in defaults.
 * @internal
 */
export function checkBackoff(option: string, value: BackoffOptions | undefined, defaults: Required<BackoffOptions> = { initialMs: 250, maxMs: 30_000 }): Required<BackoffOptions> {
  if (value !== undefined && (typeof value !== 'object' || value === null)) throw new InvalidOptionError(option, value, 'must be { initialMs, maxMs }');
  checkKnownKeys(option, value, backoffKeys, 'a backoff');
  const initialMs = checkNumber(`${option}.initialMs`, value?.initialMs, defaults.initialMs, { above: 0 });
  const maxMs = checkNumber(`${option}.maxMs`, value?.maxMs, Math.max(initialMs, defaults.maxMs), { min: initialMs });
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
