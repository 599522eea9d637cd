/**
 * The request loop: pick → dispatch → done, retried as a plain loop
 * (cockatiel's `RetryPolicy.execute` is the model) under the request's
 * policy, the retry budget and the deadline.
 * @internal
 * @module
 */
import type { Dispatcher } from 'undici';
import { backoffDelay, type PickContext } from '@proxyless/core';
import type { Endpoint } from './endpoint.js';
import type { EndpointSet } from './endpoint-set.js';
import {
  DeadlineExceededError,
  RequestFailedError,
  RetryBudgetExhaustedError,
  type FailureKind,
  type RequestErrorContext,
} from './errors.js';
import type { Call, StopReason } from './call.js';
import type { PickHandle } from './pick-handle.js';
import type { RequestPolicy } from './policy.js';
import type { RetryBudget } from './retry-budget.js';
import { isReplayableBody, isSafeToRetry, parseRetryAfter } from './retry.js';
import type { ClientResponse, RequestOptions } from './request-types.js';

/** What the loop needs from its client. @internal */
export interface LoopHost {
  readonly service: string;
  readonly set: EndpointSet;
  readonly budget: RetryBudget | undefined;
  /** `failureStatus[code] === 1` when a status counts as an endpoint failure. */
  readonly failureStatus: Uint8Array;
  /** The typed error for "no endpoint to pick" (none, circuit open, closed). */
  emptyError(context: RequestErrorContext): Error;
  /** The typed error for a request its caller or `destroy()` stopped. */
  stoppedError(call: Call, context: RequestErrorContext): Error;
}

const FAILURE_KINDS: Record<string, FailureKind> = {
  ECONNREFUSED: 'connect',
  EHOSTUNREACH: 'connect',
  ENETUNREACH: 'connect',
  EADDRNOTAVAIL: 'connect',
  ENOTFOUND: 'connect',
  EAI_AGAIN: 'connect',
  UND_ERR_CONNECT_TIMEOUT: 'connect',
  UND_ERR_CLOSED: 'connect',
  ECONNRESET: 'reset',
  EPIPE: 'reset',
  ECONNABORTED: 'reset',
  UND_ERR_SOCKET: 'reset',
  UND_ERR_DESTROYED: 'reset',
  UND_ERR_HEADERS_TIMEOUT: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
  ETIMEDOUT: 'timeout',
  UND_ERR_RES_EXCEEDED_MAX_SIZE: 'protocol',
  UND_ERR_INFO: 'protocol',
};

/** Classifies a transport error. @internal */
export function classifyError(error: unknown): FailureKind {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    const kind = FAILURE_KINDS[code];
    if (kind) return kind;
    if (code.startsWith('HPE_')) return 'protocol';
    if (code.startsWith('ERR_TLS') || code.includes('CERT')) return 'connect';
  }
  return 'other';
}

/** One failed attempt. */
interface Failure {
  kind: FailureKind;
  cause: unknown;
  /** The answer, for a retryable status. */
  response: Dispatcher.ResponseData | undefined;
}

/** One attempt on the picked endpoint; the step's signal carries the per-try timeout, deadline, caller and destroy. */
async function dispatch(handle: PickHandle, req: RequestOptions, call: Call, perTryMs: number): Promise<Dispatcher.ResponseData | Failure> {
  const signal = call.begin(perTryMs);
  try {
    return await handle.endpoint.pool.request({ method: req.method ?? 'GET', path: req.path, headers: req.headers, body: req.body, signal });
  } catch (error) {
    const stopped = call.stopped;
    return { kind: stopped === 'perTry' || stopped === 'deadline' ? 'timeout' : classifyError(error), cause: error, response: undefined };
  } finally {
    call.end();
  }
}

/**
 * Runs one request to completion: a response (any status, once retries are
 * spent or not allowed) or a typed error carrying the attempts and endpoints
 * tried. Every pick's handle is ended exactly once.
 * @internal
 */
export async function runRequest(host: LoopHost, req: RequestOptions, policy: RequestPolicy, call: Call): Promise<ClientResponse> {
  const retry = policy.retry;
  const tried: string[] = [];
  const context = (cause?: unknown): RequestErrorContext => ({ service: host.service, attempts: tried.length, endpointsTried: tried, cause });
  let pickContext: PickContext | undefined = req.hashKey === undefined ? undefined : { hashKey: req.hashKey };
  let exclude: Set<Endpoint> | undefined;
  host.budget?.deposit(call.startedAt);
  for (let attempt = 1; ; attempt++) {
    if (call.ended !== undefined && call.ended !== 'deadline') throw host.stoppedError(call, context());
    const handle = host.set.pick(pickContext);
    if (handle === undefined) throw host.emptyError(context());
    const ep = handle.endpoint;
    tried.push(ep.info.label);
    const result = await dispatch(handle, req, call, policy.perTryTimeoutMs);

    let failure: Failure;
    if ('statusCode' in result) {
      handle.done(host.failureStatus[result.statusCode] === 1 ? 'status' : 'success');
      const response: ClientResponse = { statusCode: result.statusCode, headers: result.headers, body: result.body, endpoint: ep.info, attempts: attempt };
      if (retry === false || retry.retryStatus[result.statusCode] !== 1 || attempt > retry.maxRetries) return response;
      failure = { kind: 'status', cause: undefined, response: result };
    } else {
      const stopped = call.ended as StopReason | undefined; // may have been set while the attempt ran
      handle.done(stopped === 'caller' || stopped === 'destroyed' ? 'cancelled' : result.kind);
      if (stopped === 'caller' || stopped === 'destroyed') throw host.stoppedError(call, context(result.cause));
      if (stopped === 'deadline') throw new DeadlineExceededError(call.timeoutMs, context(result.cause));
      failure = result;
    }

    // Retry or give up: a status failure gives up by returning its response, others by a typed error.
    const giveUp = (error: Error): ClientResponse => {
      const res = failure.response;
      if (res) return { statusCode: res.statusCode, headers: res.headers, body: res.body, endpoint: ep.info, attempts: attempt };
      throw error;
    };
    const failed = (): Error => new RequestFailedError(failure.kind, context(failure.cause));
    if (retry === false || attempt > retry.maxRetries) return giveUp(failed());
    if (!isSafeToRetry(failure.kind, req.method ?? 'GET', req.idempotent, isReplayableBody(req.body))) return giveUp(failed());
    const now = performance.now();
    let delay = backoffDelay(attempt - 1, { initialMs: retry.baseDelayMs, maxMs: retry.maxDelayMs });
    const retryAfter = failure.response ? parseRetryAfter(failure.response.headers['retry-after']) : undefined;
    if (retryAfter !== undefined) delay = Math.max(delay, Math.min(retryAfter, retry.maxDelayMs));
    if (now + delay >= call.deadline) return giveUp(new DeadlineExceededError(call.timeoutMs, context(failure.cause)));
    if (host.budget === undefined || !host.budget.tryWithdraw(now)) return giveUp(new RetryBudgetExhaustedError(context(failure.cause)));
    failure.response?.body.dump().catch(() => undefined);
    if (delay > 0) await call.wait(delay);
    exclude ??= new Set();
    exclude.add(ep);
    pickContext = { hashKey: req.hashKey, exclude };
  }
}
