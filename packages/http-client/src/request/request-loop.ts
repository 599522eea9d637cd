/**
 * The request loop: pick → dispatch → done, retried as a plain loop
 * (cockatiel's `RetryPolicy.execute` is the model) under the request's
 * policy, the retry budget and the deadline.
 * @internal
 * @module
 */
import type { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { backoffDelay, loadReportHeader, priorityHeader, shedHeader, type PickContext } from '@proxyless/core';
import type { Endpoint } from '../endpoints/endpoint.js';
import type { EmptyReason, EndpointSet } from '../endpoints/endpoint-set.js';
import {
  DeadlineExceededError,
  RequestFailedError,
  RetryBudgetExhaustedError,
  type RequestErrorContext,
} from '../shared/errors.js';
import { isShedAnswer, type FailureKind } from '../shared/attempt-outcome.js';
import type { Call, StepSignal, StopReason } from './call.js';
import { explainPick } from '../endpoints/pick-explanation.js';
import type { DiscoveryStale } from '../shared/discovery-stale.js';
import type { PickExplanation } from '../shared/pick-explanation-types.js';
import { headerObject, pickFacts } from '../observe/tracing.js';
import type { RequestPolicy } from '../config/policy.js';
import type { RetryBudget } from './retry-budget.js';
import { isReplayableBody, isSafeToRetry, parseRetryAfter } from './retry.js';
import type { ClientResponse, RequestOptions } from './request-types.js';

/** An attempt's answer: its head, and a body the loop hands on or (before a retry) dumps. @internal */
export interface Answer<B extends { dump(): Promise<unknown> }> {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: B;
}

/** A response as the loop returns it: `ClientResponse` over the body type of the way it sent. @internal */
export type LoopResponse<B> = Omit<ClientResponse, 'body'> & { body: B };

/**
 * Sends one attempt to an endpoint's pool: undici's `request()` (a readable
 * body) for `client.request()`; the dispatcher forwards to its caller's
 * handler instead (forwarded-attempt.ts). `options.signal` is `step`; the
 * attempt must settle as soon as `step` is stopped, even while it waits in
 * the pool's queue (see {@link StepSignal.settleOnStop}). @internal
 */
export type Send<B extends { dump(): Promise<unknown> }> = (pool: Dispatcher, options: Dispatcher.RequestOptions, step: StepSignal) => Promise<Answer<B>>;

/**
 * `client.request()`'s way: undici's `request()` in its callback form under
 * a promise of our own (the promise form builds the same promise inside
 * undici), so a stop settles the attempt at once.
 * @internal
 */
export const sendRequest: Send<Dispatcher.ResponseData['body']> = (pool, options, step) =>
  new Promise((resolve, reject) => {
    step.settleOnStop(reject);
    if (step.aborted) return; // stopped before it started: nothing to send
    pool.request(options, (error, data) => {
      if (error === null) resolve(data);
      else reject(error);
    });
  });

/** What the loop needs from its client. @internal */
export interface LoopHost {
  readonly service: string;
  readonly set: EndpointSet;
  readonly budget: RetryBudget;
  /** `failureStatus[code] === 1` when a status counts as an endpoint failure. */
  readonly failureStatus: Uint8Array;
  /** The typed error for "no endpoint to pick" (none, circuit open, closed), given the set's reason. */
  emptyError(context: RequestErrorContext, reason: EmptyReason): Error;
  /** The typed error for a request its caller or `destroy()` stopped. */
  stoppedError(call: Call, context: RequestErrorContext): Error;
  /** Waits for the resolver's first snapshot when none arrived yet (bounded by the call). */
  waitForSnapshot(req: RequestOptions, call: Call): Promise<void> | undefined;
  /** The call is over (settled either way). */
  finished(call: Call): void;
  /** Set while discovery is stale (for errors and pick explanations). */
  readonly discoveryStale: DiscoveryStale | undefined;
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
interface Failure<B extends { dump(): Promise<unknown> }> {
  kind: FailureKind;
  cause: unknown;
  /** The answer, for a retryable status. */
  response: Answer<B> | undefined;
  /** The answer was shed (503 + `x-proxyless-shed`): the handler did not run. */
  shed?: true;
}

/** What a request remembers once an attempt failed: endpoints tried (in order) and to avoid. Never allocated on the success path. */
class Retries {
  readonly tried: string[] = [];
  readonly exclude = new Set<Endpoint>();
  readonly pickContext: PickContext;

  constructor(hashKey: string | undefined) {
    this.pickContext = { hashKey, exclude: this.exclude };
  }
}

function errorContext(host: LoopHost, attempts: number, retries: Retries | undefined, cause?: unknown, picks?: readonly PickExplanation[]): RequestErrorContext {
  return { service: host.service, attempts, endpointsTried: retries?.tried ?? [], cause, picks, discoveryStale: host.discoveryStale };
}

/** Reads a retried answer's body to its end (bounded), so its connection is kept; undici closes it beyond the bound. */
function discard<B extends { dump(): Promise<unknown> }>(failure: Failure<B>): void {
  failure.response?.body.dump().catch(() => undefined);
}

/** Is there an available endpoint this request has not tried (`exclude` plus `last`, the one just tried)? */
function hasUntried(set: EndpointSet, exclude: ReadonlySet<Endpoint>, last: Endpoint): boolean {
  for (const ep of set.endpoints) if (ep.available && ep !== last && !exclude.has(ep)) return true;
  return false;
}

/** Gives up after a failure: a retried status returns its response; anything else throws `error`. */
function giveUp<B extends { dump(): Promise<unknown> }>(failure: Failure<B>, endpoint: Endpoint, attempts: number, error: Error, picks: readonly PickExplanation[] | undefined): LoopResponse<B> {
  const res = failure.response;
  if (res === undefined) throw error;
  const response: LoopResponse<B> = { statusCode: res.statusCode, headers: res.headers, body: res.body, endpoint: endpoint.info, attempts };
  if (picks !== undefined) response.picks = picks;
  return response;
}

/**
 * Runs one request to completion: a response (any status, once retries are
 * spent or not allowed) or a typed error carrying the attempts and endpoints
 * tried. Every pick's handle is ended exactly once. The loop is pick →
 * dispatch (one step of the call: per-try timeout, deadline, caller,
 * destroy) → done, in one async frame for the whole request.
 * @internal
 */
export async function runRequest<B extends { dump(): Promise<unknown> }>(host: LoopHost, req: RequestOptions, policy: RequestPolicy, call: Call, send: Send<B>): Promise<LoopResponse<B>> {
  try {
    const waiting = host.waitForSnapshot(req, call);
    if (waiting !== undefined) await waiting;
    const retry = policy.retry;
    let retries: Retries | undefined;
    // Opt-in records (explain: true) and the OpenTelemetry trace: both undefined, and free, by default.
    const picks: PickExplanation[] | undefined = req.explain === true ? [] : undefined;
    const trace = call.trace;
    host.budget.deposit(call.startedAt);
    // The priority header is added once per request, and only when the policy names one (no copy otherwise).
    const headers = policy.priority === undefined ? req.headers : { ...headerObject(req.headers), [priorityHeader]: policy.priority };
    for (let attempt = 1; ; attempt++) {
      if (call.ended !== undefined && call.ended !== 'deadline') throw host.stoppedError(call, errorContext(host, attempt - 1, retries, undefined, picks));
      const context = retries !== undefined ? retries.pickContext : req.hashKey === undefined ? undefined : { hashKey: req.hashKey };
      const compared: Endpoint[] | undefined = picks === undefined && trace === undefined ? undefined : [];
      // The first attempt starts with the call (one clock read for both), unless it waited for a snapshot.
      const startMs = attempt === 1 && waiting === undefined ? call.startedAt : performance.now();
      const scores: number[] | undefined = picks === undefined ? undefined : [];
      const handle = host.set.pick(compared === undefined ? context : { ...context, candidates: compared, scores }, startMs);
      if (handle.kind === 'empty') throw host.emptyError(errorContext(host, attempt - 1, retries, undefined, picks), handle.reason);
      const ep = handle.endpoint;
      if (picks !== undefined) picks.push(explainPick(host.set, ep, compared ?? [], scores, retries?.exclude, attempt, host.discoveryStale !== undefined));
      const span = trace?.attempt(ep, attempt, compared && pickFacts(host.set.balancer, compared, ep), headers);
      let result: Answer<B> | Failure<B>;
      try {
        const step = call.begin(policy.perTryTimeoutMs, startMs);
        // undici takes any object with EventEmitter's `once`/`removeListener` as a signal (call.ts).
        const signal = step as unknown as EventEmitter;
        result = await send(ep.pool, { method: req.method ?? 'GET', path: req.path, headers: span === undefined ? headers : span.headers, body: req.body, signal }, step);
      } catch (error) {
        const stopped = call.stopped;
        result = { kind: stopped === 'perTry' || stopped === 'deadline' ? 'timeout' : classifyError(error), cause: error, response: undefined };
      } finally {
        call.end();
      }

      let failure: Failure<B>;
      if ('statusCode' in result) {
        const shed = isShedAnswer(result.statusCode, result.headers[shedHeader]);
        const outcome = shed ? 'shed' : host.failureStatus[result.statusCode] === 1 ? 'status' : 'success';
        const transition = handle.done(outcome, result.headers[loadReportHeader]);
        if (span !== undefined) trace?.attemptEnd(span, result.statusCode, outcome === 'success' ? undefined : shed ? 'shed' : String(result.statusCode), transition);
        // A shed is retried whenever retries are on (like a connect failure: the handler did not run), whatever retryOnStatuses says.
        if (retry === false || (!shed && retry.retryStatus[result.statusCode] !== 1) || attempt > retry.maxRetries) {
          const response: LoopResponse<B> = { statusCode: result.statusCode, headers: result.headers, body: result.body, endpoint: ep.info, attempts: attempt };
          if (picks !== undefined) response.picks = picks;
          return response;
        }
        failure = shed ? { kind: 'status', cause: undefined, response: result, shed: true } : { kind: 'status', cause: undefined, response: result };
      } else {
        const stopped = call.ended as StopReason | undefined; // may have been set while the attempt ran
        // A timeout whose timer fired late (this process stalled) is not the endpoint's fault either.
        const outcome = stopped === 'caller' || stopped === 'destroyed' || call.stalled ? 'cancelled' : result.kind;
        const transition = handle.done(outcome);
        if (span !== undefined) trace?.attemptEnd(span, undefined, outcome, transition);
        failure = result;
      }
      retries ??= new Retries(req.hashKey);
      retries.tried.push(ep.info.label);
      const stopped = call.ended as StopReason | undefined;
      if (stopped !== undefined && stopped !== 'perTry') {
        // The request ended between a retryable answer and its retry: that answer is nobody's now.
        discard(failure);
        if (stopped === 'deadline') throw new DeadlineExceededError(call.timeoutMs, errorContext(host, attempt, retries, failure.cause, picks));
        throw host.stoppedError(call, errorContext(host, attempt, retries, failure.cause, picks));
      }

      // Retry, or give up (a status failure gives up by returning its response, others by a typed error).
      // A shed request never reached the handler: as safe to send again as one that never connected.
      if (retry === false || attempt > retry.maxRetries || !isSafeToRetry(failure.shed ? 'connect' : failure.kind, req.method ?? 'GET', req.idempotent, isReplayableBody(req.body))) {
        return giveUp(failure, ep, attempt, new RequestFailedError(failure.kind, errorContext(host, attempt, retries, failure.cause, picks)), picks);
      }
      // A shed is never sent back to an endpoint this request tried: with none untried left, its answer is the result.
      if (failure.shed === true && !hasUntried(host.set, retries.exclude, ep)) {
        return giveUp(failure, ep, attempt, new RequestFailedError(failure.kind, errorContext(host, attempt, retries, failure.cause, picks)), picks);
      }
      const now = performance.now();
      let delay = backoffDelay(attempt - 1, retry);
      // A shed's Retry-After speaks for the endpoint that shed (never picked again by this request), not for the
      // others: the retry goes to another endpoint after the usual backoff.
      const retryAfter = failure.response && failure.shed !== true ? parseRetryAfter(failure.response.headers['retry-after']) : undefined;
      if (retryAfter !== undefined) delay = Math.max(delay, Math.min(retryAfter, retry.maxMs));
      // ERR_DEADLINE_EXCEEDED only once the deadline has passed (it was said up to ~50 ms early). When no
      // further attempt fits the time left, end now with this attempt's own error (as gRPC and Envoy do).
      if (now >= call.deadline) return giveUp(failure, ep, attempt, new DeadlineExceededError(call.timeoutMs, errorContext(host, attempt, retries, failure.cause, picks)), picks);
      if (now + delay >= call.deadline) return giveUp(failure, ep, attempt, new RequestFailedError(failure.kind, errorContext(host, attempt, retries, failure.cause, picks)), picks);
      if (!host.budget.tryWithdraw(now)) {
        trace?.budgetRefused(attempt);
        return giveUp(failure, ep, attempt, new RetryBudgetExhaustedError(errorContext(host, attempt, retries, failure.cause, picks)), picks);
      }
      discard(failure);
      trace?.retry(attempt, delay, failure.kind);
      if (delay > 0) await call.wait(delay);
      retries.exclude.add(ep);
    }
  } finally {
    call.finish();
    host.finished(call);
  }
}
