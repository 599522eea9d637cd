import { ConsulApiError, ConsulUnreachableError, TimeoutError } from '@proxyless/core';
import type { RetryWithBackoffOptions } from '@proxyless/core/internal';

/**
 * Fixed-rate schedule: beat `n` is due at `anchor + n * interval`, moved by a
 * jitter of up to `±jitter * interval`. Slots are computed from the anchor, not
 * from the previous beat, so slow beats never make the schedule drift; slots
 * already in the past are skipped.
 * @returns the index of the next slot after `afterIndex` whose time is not
 *   in the past, and the delay until it (≥ 0).
 * @internal
 */
export function nextBeat(
  anchor: number,
  intervalMs: number,
  afterIndex: number,
  now: number,
  jitter: number,
  random: () => number = Math.random,
): { index: number; delayMs: number } {
  let index = afterIndex + 1;
  const behind = Math.floor((now - anchor) / intervalMs);
  if (behind >= index) index = behind + 1;
  const offset = (random() * 2 - 1) * jitter * intervalMs;
  const at = anchor + index * intervalMs + offset;
  return { index, delayMs: Math.max(0, Math.round(at - now)) };
}

/** Why the registrar thinks its registration is gone or unusable. */
export type LostReason = 'unknown-check' | 'unreachable';

/**
 * True when a heartbeat answer means the agent no longer knows the check:
 * 404 `Unknown check ID` (Consul ≥ 1.11.2) or 500 `does not have associated TTL` (older agents).
 * @internal
 */
export function isUnknownCheck(error: unknown): boolean {
  if (!(error instanceof ConsulApiError)) return false;
  if (error.status === 404) return true;
  return error.status === 500 && /does not have associated TTL|unknown check/i.test(error.consulMessage);
}

/**
 * True when the agent could not be reached or did not answer in time.
 * @internal
 */
export function isUnreachable(error: unknown): boolean {
  return error instanceof ConsulUnreachableError || error instanceof TimeoutError;
}

/**
 * True for failures worth retrying: unreachable, timed out, 429, 5xx.
 * 400 (bad registration) and 403 (ACL denied) need a human.
 * @internal
 */
export function isRetryable(error: unknown): boolean {
  if (isUnreachable(error)) return true;
  if (error instanceof ConsulApiError) return error.status === 429 || error.status >= 500;
  return false;
}

/**
 * Retry-loop options, built once per registrar: retry (forever, unless
 * `shouldRetry` refuses) with core's full-jitter backoff capped at
 * `maxDelayMs`, stopped by `signal`.
 * @internal
 */
export function retryOptions(
  minDelayMs: number,
  maxDelayMs: number,
  signal: AbortSignal,
  onFailedAttempt: (error: unknown) => void,
  shouldRetry: (error: unknown) => boolean = () => true,
): RetryWithBackoffOptions {
  return { backoff: { initialMs: minDelayMs, maxMs: maxDelayMs }, signal, onFailedAttempt, shouldRetry };
}

/** Makes sure what an 'error' event carries is an Error. @internal */
export function asError(error: unknown): Error {
  if (error instanceof Error) return error;
  return new Error(String(error));
}
