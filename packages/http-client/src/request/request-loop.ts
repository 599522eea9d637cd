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
import { backoffDelay, loadReportHeader, priorityHeader, shedHeader, type PickContext, type PickSignal } from '@proxyless/core';
import type { Endpoint } from '../endpoints/endpoint.js';
import type { EmptyReason, EndpointSet } from '../endpoints/endpoint-set.js';
import {
  AdmissionRejectedError,
  DeadlineExceededError,
  RequestFailedError,
  RetryBudgetExhaustedError,
  type RequestErrorContext,
} from '../shared/errors.js';
import { isShedAnswer, type FailureKind } from '../shared/attempt-outcome.js';
import { firedLate, StepSignal, stopError, type Abortable, type Call, type StopReason } from './call.js';
import { explainPick } from '../endpoints/pick-explanation.js';
import type { DiscoveryStale } from '../shared/discovery-stale.js';
import type { PickExplanation } from '../shared/pick-explanation-types.js';
import { headerObject, pickFacts, type AttemptTrace } from '../observe/tracing.js';
import type { HedgePolicy, RequestPolicy } from '../config/policy.js';
import type { RetryBudget } from './retry-budget.js';
import { isReplayableBody, isSafeToRetry, isSafeToSendTwice, parseRetryAfter } from './retry.js';
import type { Hedging } from './hedging.js';
import type { TimerEntry, TimerList } from './timer-queue.js';
import type { PickHandle } from '../endpoints/pick-handle.js';
import type { EndpointInfo } from '../shared/endpoint-info.js';
import type { AdmissionControl } from './admission.js';
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
  /** Client-side admission control; undefined when off (then the loop never looks further). */
  readonly admission: AdmissionControl | undefined;
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
  /** Hedged requests' latency window, counters and events. */
  readonly hedging: Hedging;
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

/** An answer that says the service is overloaded: not an accept for admission control. */
function isOverloadStatus(status: number): boolean {
  return status === 503 || status === 429;
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
 * The gates a retry passes, in order — one rule for the plain loop and the
 * hedged loop: the backoff (at least a non-shed answer's `Retry-After`, within
 * `maxMs`; a shed's speaks for the endpoint that shed, never picked again by
 * this request), the deadline (ERR_DEADLINE_EXCEEDED only once it has passed;
 * when no further attempt fits the time left, the attempt's own error, as gRPC
 * and Envoy do), the retry budget, admission control (a retry is an attempt
 * like any other). Returns the delay before the retry, or the error to give up with.
 */
function retryGate<B extends { dump(): Promise<unknown> }>(
  host: LoopHost, call: Call, retry: Exclude<RequestPolicy['retry'], false>, failure: Failure<B>,
  retriesSoFar: number, attempts: number, now: number, context: () => RequestErrorContext,
): number | Error {
  let delay = backoffDelay(retriesSoFar, retry);
  const retryAfter = failure.response && failure.shed !== true ? parseRetryAfter(failure.response.headers['retry-after']) : undefined;
  if (retryAfter !== undefined) delay = Math.max(delay, Math.min(retryAfter, retry.maxMs));
  if (now >= call.deadline) return new DeadlineExceededError(call.timeoutMs, context());
  if (now + delay >= call.deadline) return new RequestFailedError(failure.kind, context());
  if (!host.budget.tryWithdraw(now)) {
    call.trace?.budgetRefused(attempts);
    return new RetryBudgetExhaustedError(context());
  }
  const admission = host.admission;
  if (admission !== undefined && !admission.admit(now)) return new AdmissionRejectedError(admission.probability(now), context());
  return delay;
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
    const admission = host.admission;
    if (admission !== undefined && !admission.admit(call.startedAt)) {
      throw new AdmissionRejectedError(admission.probability(call.startedAt), errorContext(host, 0, undefined));
    }
    const hedge = policy.hedge;
    if (hedge !== false && isSafeToSendTwice(req.method ?? 'GET', req.idempotent, isReplayableBody(req.body))) {
      // A percentile delay with too few samples yet: not hedged (tower's min_data_points).
      const delayMs = host.hedging.delayFor(hedge);
      if (delayMs !== undefined) {
        host.budget.deposit(call.startedAt);
        if (call.ended !== undefined && call.ended !== 'deadline') throw host.stoppedError(call, errorContext(host, 0, undefined));
        return await new Hedged(host, req, policy, hedge, delayMs, call, send, waiting === undefined ? call.startedAt : performance.now()).run();
      }
    }
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
      const signals: PickSignal[] | undefined = picks === undefined ? undefined : [];
      const handle = host.set.pick(compared === undefined ? context : { ...context, candidates: compared, scores, signals }, startMs);
      if (handle.kind === 'empty') {
        throw host.emptyError(errorContext(host, attempt - 1, retries, undefined, picks), handle.reason);
      }
      const ep = handle.endpoint;
      if (picks !== undefined) picks.push(explainPick(host.set, ep, compared ?? [], scores, retries?.exclude, attempt, host.discoveryStale !== undefined, undefined, signals?.[0]));
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
        // Only once a hedge policy asked for a percentile: one property read otherwise.
        const latency = host.hedging.latency;
        if (latency !== undefined && outcome === 'success') latency.record(performance.now() - startMs);
        // A 503 (shed or not) or a 429 is the service refusing work: not an accept.
        admission?.completed(performance.now(), !isOverloadStatus(result.statusCode));
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
        // A timeout is an overload failure (not accepted); other transport failures are not the service refusing work.
        admission?.completed(performance.now(), outcome !== 'timeout');
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
      const gate = retryGate(host, call, retry, failure, attempt - 1, attempt, performance.now(), () => errorContext(host, attempt, retries, failure.cause, picks));
      if (typeof gate !== 'number') return giveUp(failure, ep, attempt, gate, picks);
      const delay = gate;
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

/** One copy of a hedged request: its pick, abort handle, span and per-try timer (an entry of the client's timer queue). */
class Copy implements TimerEntry {
  /** 0 for the first copy of the request, 1 for the first hedge… (retries go on counting). */
  readonly n: number;
  readonly handle: PickHandle;
  readonly ep: Endpoint;
  readonly step = new StepSignal();
  readonly startMs: number;
  readonly span: AttemptTrace | undefined;
  readonly perTryMs: number;
  /** Set when this copy was stopped by its own per-try timer, or cancelled because another copy answered. */
  stopped: 'perTry' | 'lost' | undefined = undefined;
  /** Its per-try timer fired late because this process stalled: the timeout is not the endpoint's fault. */
  stalled = false;
  timerAt = 0;
  timerPrev: TimerEntry | undefined = undefined;
  timerNext: TimerEntry | undefined = undefined;
  timerList: TimerList | undefined = undefined;

  constructor(n: number, handle: PickHandle, startMs: number, span: AttemptTrace | undefined, perTryMs: number) {
    this.n = n;
    this.handle = handle;
    this.ep = handle.endpoint;
    this.startMs = startMs;
    this.span = span;
    this.perTryMs = perTryMs;
  }

  expired(nowMs: number): void {
    // After the next I/O poll, as call.ts does: an answer already read is not cut off as a timeout.
    setImmediate(copyDue, this, firedLate(nowMs, this.timerAt, this.perTryMs));
  }
}

function copyDue(copy: Copy, stalled: boolean): void {
  if (copy.stopped !== undefined || copy.step.aborted) return;
  copy.stopped = 'perTry';
  copy.stalled = stalled;
  copy.step.abort(stopError('perTry'));
}

function hedgeDue(hedged: { hedgeNow(): void }): void {
  hedged.hedgeNow();
}

/**
 * A hedged request (The Tail at Scale; the rules of gRPC A6 hedging, tower's
 * `hedge` and Envoy's `hedge_on_per_try_timeout`): the first copy goes out
 * at once, another every `delayMs` while none has answered, up to
 * `maxHedges`, each to an endpoint no copy is in flight on (the balancer
 * picks with those excluded) and each paid from the retry budget (A6's
 * throttling: when the budget refuses, no more hedges for this request).
 *
 * The **answer** is the first response that would not be retried (any status
 * outside `retryOnStatuses`): it wins, and every other copy is cancelled at
 * once through its abort handle, ended as `cancelled` (its endpoint is not
 * charged). A copy that fails in a way a retry could fix (a retried status,
 * a transport error, its per-try timeout) does not end the request while
 * another copy is in flight; the next hedge, if any, goes out at once (A6).
 * When every copy of a round failed, the request retries as the plain loop
 * does (policy, budget, backoff, deadline), and the retry may be hedged too.
 *
 * A cancelled copy's connection is closed (undici destroys the socket of a
 * request aborted in flight; HTTP/1.1 cannot stop one request and keep the
 * connection), so the server sees the cancellation and stops its work; the
 * pool opens a new connection when it needs one. Reading the loser's answer
 * to its end instead would keep the socket, but hold it (and the server's
 * work) for as long as the slow copy takes — the very tail hedging cuts.
 */
class Hedged<B extends { dump(): Promise<unknown> }> implements Abortable, TimerEntry {
  readonly #host: LoopHost;
  readonly #req: RequestOptions;
  readonly #policy: RequestPolicy;
  readonly #delayMs: number;
  readonly #call: Call;
  readonly #send: Send<B>;
  readonly #inFlight: Copy[] = [];
  /** Endpoints this request used (in flight or failed): never picked again for it. */
  readonly #exclude = new Set<Endpoint>();
  readonly #tried: string[] = [];
  readonly #picks: PickExplanation[] | undefined;
  /** The request's headers, with the policy's priority when it names one. */
  readonly #headers: RequestOptions['headers'];
  #hedgesLeft: number;
  #attempts = 0;
  #copies = 0;
  #retries = 0;
  /** When the current round's first copy went out. */
  #roundStart = 0;
  #last: { failure: Failure<B>; ep: Endpoint } | undefined;
  #settled = false;
  #resolve: (response: LoopResponse<B>) => void = () => undefined;
  #reject: (error: Error) => void = () => undefined;
  timerAt = 0;
  timerPrev: TimerEntry | undefined = undefined;
  timerNext: TimerEntry | undefined = undefined;
  timerList: TimerList | undefined = undefined;

  constructor(host: LoopHost, req: RequestOptions, policy: RequestPolicy, hedge: HedgePolicy, delayMs: number, call: Call, send: Send<B>, startMs: number) {
    this.#host = host;
    this.#req = req;
    this.#policy = policy;
    this.#delayMs = Math.ceil(delayMs);
    this.#call = call;
    this.#send = send;
    this.#hedgesLeft = hedge.maxHedges;
    this.#picks = req.explain === true ? [] : undefined;
    this.#headers = policy.priority === undefined ? req.headers : { ...headerObject(req.headers), [priorityHeader]: policy.priority };
    this.#roundStart = startMs;
  }

  run(): Promise<LoopResponse<B>> {
    return new Promise<LoopResponse<B>>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      this.#round(this.#roundStart);
    });
  }

  /** Starts a round: the group step (bounded by the deadline), its first copy, its hedge timer. */
  #round(nowMs: number): void {
    this.#roundStart = nowMs;
    this.#call.beginGroup(this);
    if (this.#call.ended !== undefined) {
      this.#fail(this.#stopped(undefined));
      return;
    }
    if (this.#launch(nowMs, false)) this.#armHedge(nowMs);
  }

  /** The call was stopped (deadline, caller, destroy): every copy in flight stops. */
  abort(reason: Error): void {
    this.#call.timers.remove(this);
    for (const copy of this.#inFlight) copy.step.abort(reason);
  }

  /** The hedge timer is due (TimerEntry). */
  expired(): void {
    setImmediate(hedgeDue, this);
  }

  #armHedge(nowMs: number): void {
    if (this.#hedgesLeft > 0) this.#call.timers.add(this, this.#delayMs, nowMs + this.#delayMs);
  }

  /** Sends a copy to an endpoint none of this request's copies used; false when there is none. */
  #launch(nowMs: number, isHedge: boolean): boolean {
    const host = this.#host;
    const req = this.#req;
    const trace = this.#call.trace;
    const picks = this.#picks;
    const context: PickContext & { candidates?: Endpoint[]; scores?: number[]; signals?: PickSignal[] } = { hashKey: req.hashKey, exclude: this.#exclude };
    const compared: Endpoint[] | undefined = picks === undefined && trace === undefined ? undefined : (context.candidates = []);
    const scores: number[] | undefined = picks === undefined ? undefined : (context.scores = []);
    const signals: PickSignal[] | undefined = picks === undefined ? undefined : (context.signals = []);
    const handle = host.set.pick(context, nowMs);
    if (handle.kind === 'empty') {
      if (!isHedge) this.#fail(host.emptyError(this.#context(undefined), handle.reason));
      return false;
    }
    const ep = handle.endpoint;
    if (isHedge && this.#exclude.has(ep)) {
      // The picker falls back to a used endpoint when no other is left: a hedge there would race itself.
      handle.done('cancelled');
      return false;
    }
    const attempt = ++this.#attempts;
    const n = this.#copies++;
    if (picks !== undefined) picks.push(explainPick(host.set, ep, compared ?? [], scores, this.#exclude, attempt, host.discoveryStale !== undefined, isHedge ? this.#inFlight.map((c) => c.ep) : undefined, signals?.[0]));
    const span = trace?.attempt(ep, attempt, compared && pickFacts(host.set.balancer, compared, ep), this.#headers, n);
    const perTryMs = this.#policy.perTryTimeoutMs;
    const copy = new Copy(n, handle, nowMs, span, perTryMs);
    this.#exclude.add(ep);
    this.#inFlight.push(copy);
    // The deadline is the group's timer; a per-try timeout only when it comes first.
    if (nowMs + perTryMs < this.#call.deadline) this.#call.timers.add(copy, perTryMs, nowMs + perTryMs);
    const signal = copy.step as unknown as EventEmitter;
    this.#send(ep.pool, { method: req.method ?? 'GET', path: req.path, headers: span === undefined ? this.#headers : span.headers, body: req.body, signal }, copy.step).then(
      (answer) => this.#answered(copy, answer),
      (error: unknown) => this.#failed(copy, error),
    );
    return true;
  }

  /** Sends the next hedge now (its timer is due, or a copy failed while others are in flight). @internal */
  hedgeNow(): void {
    if (this.#settled || this.#hedgesLeft === 0 || this.#inFlight.length === 0 || this.#call.ended !== undefined) return;
    const host = this.#host;
    this.#call.timers.remove(this);
    // No endpoint left that this request has not used: no hedge, and the budget is not charged for one.
    let usable = host.set.availableCount;
    for (const ep of this.#exclude) if (ep.available) usable--;
    if (usable <= 0) {
      this.#hedgesLeft = 0;
      return;
    }
    const now = performance.now();
    if (!host.budget.tryWithdraw(now)) {
      // Under overload the budget is spent on retries: hedges stop first (A6 throttling).
      this.#hedgesLeft = 0;
      host.hedging.counts.refused++;
      this.#call.trace?.budgetRefused(this.#attempts);
      return;
    }
    // A hedge is an attempt: admission control may refuse it, and then no more hedges for this request.
    if (host.admission !== undefined && !host.admission.admit(now)) {
      this.#hedgesLeft = 0;
      return;
    }
    if (!this.#launch(now, true)) {
      this.#hedgesLeft = 0;
      return;
    }
    this.#hedgesLeft--;
    const copy = this.#inFlight[this.#inFlight.length - 1] as Copy;
    host.hedging.counts.sent++;
    const afterMs = now - this.#roundStart;
    this.#call.trace?.hedge(copy.n, afterMs);
    host.hedging.emit('hedge', copy.ep.info, copy.n, afterMs);
    this.#armHedge(now);
  }

  #remove(copy: Copy): void {
    const i = this.#inFlight.indexOf(copy);
    if (i >= 0) this.#inFlight.splice(i, 1);
    this.#call.timers.remove(copy);
  }

  #answered(copy: Copy, answer: Answer<B>): void {
    this.#remove(copy);
    if (copy.stopped === 'lost' || this.#settled) {
      // Answered as it was cancelled: its handle is done; the body is nobody's.
      answer.body.dump().catch(() => undefined);
      return;
    }
    const host = this.#host;
    const shed = isShedAnswer(answer.statusCode, answer.headers[shedHeader]);
    const outcome = shed ? 'shed' : host.failureStatus[answer.statusCode] === 1 ? 'status' : 'success';
    const transition = copy.handle.done(outcome, answer.headers[loadReportHeader]);
    if (outcome === 'success') host.hedging.latency?.record(performance.now() - copy.startMs);
    host.admission?.completed(performance.now(), !isOverloadStatus(answer.statusCode));
    const retry = this.#policy.retry;
    const failure = outcome === 'success' ? undefined : shed ? 'shed' : String(answer.statusCode);
    // A shed answer is never the answer while another copy may still give one (the handler did not run).
    if (!shed && (retry === false || retry.retryStatus[answer.statusCode] !== 1)) {
      if (copy.span !== undefined) this.#call.trace?.attemptEnd(copy.span, answer.statusCode, failure, transition, this.#copies > 1 ? 'won' : undefined);
      this.#win(copy, answer);
      return;
    }
    if (copy.span !== undefined) this.#call.trace?.attemptEnd(copy.span, answer.statusCode, failure, transition);
    this.#failure(copy, shed ? { kind: 'status', cause: undefined, response: answer, shed: true } : { kind: 'status', cause: undefined, response: answer });
  }

  #failed(copy: Copy, error: unknown): void {
    this.#remove(copy);
    if (copy.stopped === 'lost' || this.#settled) return;
    const ended = this.#call.ended;
    const kind = copy.stopped === 'perTry' || ended === 'deadline' ? 'timeout' : classifyError(error);
    const outcome = ended === 'caller' || ended === 'destroyed' || copy.stalled ? 'cancelled' : kind;
    const transition = copy.handle.done(outcome);
    this.#host.admission?.completed(performance.now(), outcome !== 'timeout');
    if (copy.span !== undefined) this.#call.trace?.attemptEnd(copy.span, undefined, outcome, transition);
    this.#failure(copy, { kind, cause: error, response: undefined });
  }

  /** One copy failed: wait for the others, or (the last one) retry or give up as the plain loop does. */
  #failure(copy: Copy, failure: Failure<B>): void {
    this.#tried.push(copy.ep.info.label);
    if (this.#last !== undefined) discard(this.#last.failure);
    this.#last = { failure, ep: copy.ep };
    if (this.#inFlight.length > 0) {
      this.hedgeNow();
      return;
    }
    this.#call.timers.remove(this);
    const call = this.#call;
    const host = this.#host;
    const req = this.#req;
    if (call.ended !== undefined) {
      discard(failure);
      this.#fail(this.#stopped(failure.cause));
      return;
    }
    const retry = this.#policy.retry;
    const attempts = this.#attempts;
    const context = (): RequestErrorContext => this.#context(failure.cause);
    // As the plain loop: a shed is as safe to resend as a connect failure, and never resent to an endpoint this request used.
    if (retry === false || this.#retries >= retry.maxRetries || !isSafeToRetry(failure.shed ? 'connect' : failure.kind, req.method ?? 'GET', req.idempotent, isReplayableBody(req.body))
      || (failure.shed === true && !hasUntried(host.set, this.#exclude, copy.ep))) {
      this.#giveUp(failure, copy.ep, new RequestFailedError(failure.kind, context()));
      return;
    }
    const gate = retryGate(host, call, retry, failure, this.#retries, attempts, performance.now(), context);
    if (typeof gate !== 'number') return this.#giveUp(failure, copy.ep, gate);
    const delay = gate;
    discard(failure);
    this.#last = undefined;
    this.#retries++;
    call.trace?.retry(attempts, delay, failure.kind);
    call.end();
    void this.#retryAfter(delay);
  }

  async #retryAfter(delay: number): Promise<void> {
    if (delay > 0) await this.#call.wait(delay);
    if (this.#call.ended !== undefined) this.#fail(this.#stopped(undefined));
    else this.#round(performance.now());
  }

  /** `copy` answered: it wins, every other copy is cancelled now (ended as `cancelled`: not the endpoint's fault). */
  #win(copy: Copy, answer: Answer<B>): void {
    this.#settled = true;
    const host = this.#host;
    const call = this.#call;
    call.timers.remove(this);
    let cancelled: EndpointInfo[] | undefined;
    const losers = this.#inFlight.splice(0);
    for (const loser of losers) {
      loser.stopped = 'lost';
      call.timers.remove(loser);
      const transition = loser.handle.done('cancelled');
      // Cancelled by us, not refused by the service.
      host.admission?.completed(performance.now(), true);
      if (loser.span !== undefined) call.trace?.attemptEnd(loser.span, undefined, 'cancelled', transition, 'lost');
      loser.step.abort(stopError('hedgeLost'));
      host.hedging.counts.cancelled++;
      (cancelled ??= []).push(loser.ep.info);
    }
    if (this.#last !== undefined) discard(this.#last.failure);
    if (this.#copies > 1) {
      if (copy.n > 0) host.hedging.counts.won++;
      call.trace?.hedgeWinner(copy.n, this.#copies);
      host.hedging.emit('hedgeSettled', copy.ep.info, copy.n, cancelled ?? []);
    }
    const response: LoopResponse<B> = { statusCode: answer.statusCode, headers: answer.headers, body: answer.body, endpoint: copy.ep.info, attempts: this.#attempts };
    if (this.#picks !== undefined) response.picks = this.#picks;
    this.#resolve(response);
  }

  #giveUp(failure: Failure<B>, ep: Endpoint, error: Error): void {
    this.#settled = true;
    try {
      this.#resolve(giveUp(failure, ep, this.#attempts, error, this.#picks));
    } catch (thrown) {
      this.#reject(thrown as Error);
    }
  }

  #fail(error: Error): void {
    this.#settled = true;
    this.#call.timers.remove(this);
    this.#reject(error);
  }

  #stopped(cause: unknown): Error {
    const call = this.#call;
    if (call.ended === 'deadline') return new DeadlineExceededError(call.timeoutMs, this.#context(cause));
    return this.#host.stoppedError(call, this.#context(cause));
  }

  #context(cause: unknown): RequestErrorContext {
    return { service: this.#host.service, attempts: this.#attempts, endpointsTried: this.#tried, cause, picks: this.#picks, discoveryStale: this.#host.discoveryStale };
  }
}
