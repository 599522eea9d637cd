import type { FailureKind } from '../shared/attempt-outcome.js';

const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** Is a body replayable (it can be sent again as is)? Strings, buffers and no body are. @internal */
export function isReplayableBody(body: unknown): boolean {
  return body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array;
}

/**
 * Whether a request may be sent twice: its method is idempotent (GET, HEAD,
 * OPTIONS, PUT, DELETE, TRACE) or the caller marked it so, and its body can
 * be replayed. The rule for hedging, and for retrying after a failure that
 * may have reached the server.
 * @internal
 */
export function isSafeToSendTwice(method: string, idempotent: boolean | undefined, replayable: boolean): boolean {
  return replayable && (idempotent ?? IDEMPOTENT_METHODS.has(method));
}

/**
 * The retry safety rule.
 * - A request that never reached the server (`connect`) is always safe to resend.
 * - Otherwise only if the method is idempotent (GET, HEAD, OPTIONS, PUT,
 *   DELETE, TRACE) or the caller marked it so, and its body can be replayed.
 * @internal
 */
export function isSafeToRetry(kind: FailureKind, method: string, idempotent: boolean | undefined, replayable: boolean): boolean {
  if (!replayable) return false;
  if (kind === 'connect') return true;
  if (kind === 'protocol' || kind === 'other') return false;
  return isSafeToSendTwice(method, idempotent, replayable);
}

/**
 * Parses `Retry-After` (delta-seconds or an HTTP date) into ms from `nowMs` (epoch).
 * Returns `undefined` when absent or malformed; never negative.
 * @internal
 */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const trimmed = v.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed), 86_400) * 1000;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}
