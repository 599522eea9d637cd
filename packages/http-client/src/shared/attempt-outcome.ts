/**
 * How attempts end, as the per-endpoint observers (load, breaker, outlier
 * detection) and retries see them. A leaf: it imports nothing, so the modules
 * that share these types never import each other for them.
 * @module
 */
/**
 * How an attempt failed, as outlier detection, breakers and retries see it.
 * - `connect`: never reached the server (refused, unreachable, connect timeout) — always safe to retry.
 * - `reset`: the connection broke after the request may have been written.
 * - `timeout`: the per-try timeout passed.
 * - `status`: the server answered with a status counted as failure (5xx by default).
 * - `protocol`: a malformed or oversized answer.
 * - `other`: anything else.
 */
export type FailureKind = 'connect' | 'reset' | 'timeout' | 'status' | 'protocol' | 'other';

/**
 * How an attempt ended, as the per-endpoint observers see it: `success`
 * (any answer not counted as a failure), a {@link FailureKind},
 * `cancelled` (the caller gave up, the client was destroyed, or a timeout
 * fired long after it was due because this process stalled: the endpoint is
 * not blamed), or `shed` (see {@link isShedAnswer}).
 */
export type AttemptOutcome = 'success' | FailureKind | 'cancelled' | 'shed';

/**
 * Is this answer a shed: a `503` carrying core's `shedHeader`
 * (`x-proxyless-shed`), which `@proxyless/load-report` writes when it turned a
 * request away before the handler ran because the process was overloaded?
 * Its outcome is `shed`: the endpoint is alive, so it is **not** a breaker,
 * outlier-detection or latency-estimate failure; the request is not sent to
 * that endpoint again (another one may take it, within the retry budget and
 * the deadline). For client-side admission control (SRE adaptive throttling)
 * a shed **is** a backend reject: the backend refused work it was sent.
 * @internal
 */
export function isShedAnswer(statusCode: number, marker: unknown): boolean {
  return statusCode === 503 && marker !== undefined;
}

/**
 * A per-endpoint piece that follows attempts (grpc-js `onCallStarted` /
 * `onCallEnded`): in-flight count and latency, breaker, outlier detection.
 * @internal
 */
export interface AttemptObserver {
  started(nowMs: number): void;
  ended(outcome: AttemptOutcome, elapsedMs: number, nowMs: number, startedAt: number): void;
}
