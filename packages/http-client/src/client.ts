import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { EventEmitter } from 'eventemitter3';
import pRetry, { type Options as PRetryOptions, type RetryContext } from 'p-retry';
import type { Dispatcher } from 'undici';
import { AbortedError, ClosedError, backoffDelay, peakEwma, sleep, type Balancer, type PickContext, type ServiceWatch } from '@proxyless/core';
import type { Endpoint, EndpointInfo } from './endpoint.js';
import { EndpointSet } from './endpoint-set.js';
import {
  CircuitOpenError,
  DeadlineExceededError,
  NoHealthyEndpointsError,
  RequestFailedError,
  ResponseTooLargeError,
  RetryBudgetExhaustedError,
  type FailureKind,
  type RequestErrorContext,
} from './errors.js';
import type { ClientEvents } from './events.js';
import { resolveOptions, type ClientOptions, type ResolvedOptions } from './options.js';
import { RetryBudget } from './retry-budget.js';
import { isReplayableBody, isSafeToRetry, parseRetryAfter } from './retry.js';
import type { BreakerState } from './breaker.js';

/** Request body types. Strings and byte arrays are replayable (retries may resend them); streams are not. */
export type RequestBody = string | Uint8Array | Readable | null;

/** One request, undici style. */
export interface RequestOptions {
  /** Path and query, starting with `/`. */
  path: string;
  /** HTTP method. Default `GET`. */
  method?: string;
  /** Request headers. */
  headers?: IncomingHttpHeaders | Record<string, string | string[] | undefined>;
  /** Request body. */
  body?: RequestBody;
  /** Caller cancellation; carried through retries and into the transport. */
  signal?: AbortSignal;
  /** Overall deadline (all attempts and backoff), in ms. Default: the client's `timeoutMs`. */
  timeoutMs?: number;
  /** Time limit of each attempt, in ms. Default: the client's `perTryTimeoutMs`. */
  perTryTimeoutMs?: number;
  /** Mark a non-idempotent method (e.g. POST) safe to retry, or an idempotent one unsafe. Default: by method. */
  idempotent?: boolean;
  /** Key for consistent-hash balancers (affinity). */
  hashKey?: string;
}

/** A response; `body` is undici's readable body (consume or dump it). */
export interface ClientResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** undici body: `.text()`, `.json()`, `.arrayBuffer()`, `.dump()`, or a Readable. */
  body: Dispatcher.ResponseData['body'];
  /** Endpoint that answered. */
  endpoint: EndpointInfo;
  /** Attempts made, including this one. */
  attempts: number;
}

/** A buffered response (from {@link ProxylessClient.text} / {@link ProxylessClient.json}). */
export interface BufferedResponse<T> {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: T;
  endpoint: EndpointInfo;
  attempts: number;
}

/** `RequestInit` plus Proxyless per-call settings, for {@link ProxylessClient.fetch}. */
export interface ProxylessRequestInit extends RequestInit {
  /** Overall deadline, in ms. */
  timeoutMs?: number;
  /** Per-attempt time limit, in ms. */
  perTryTimeoutMs?: number;
  /** Retry safety override (see {@link RequestOptions.idempotent}). */
  idempotent?: boolean;
  /** Consistent-hash key. */
  hashKey?: string;
}

/** Per-endpoint statistics in {@link ClientStats}. */
export interface EndpointStats {
  key: string;
  /** `address:port`. */
  label: string;
  inFlight: number;
  /** Peak-EWMA latency estimate, ms. */
  ewmaMs: number;
  /** Attempts that succeeded since the endpoint appeared. */
  successes: number;
  /** Attempts that failed since the endpoint appeared. */
  failures: number;
  breaker: BreakerState;
  ejected: boolean;
}

/** A point-in-time view of a client. */
export interface ClientStats {
  service: string;
  /** Balancer name. */
  balancer: string;
  /** Panic mode (balancing over every endpoint because too few are available). */
  panic: boolean;
  /** Endpoints in the current pick set. */
  ready: number;
  /** Retries the budget allows right now (`-1` when retries are off). */
  retryBudget: number;
  endpoints: EndpointStats[];
}

/** Internal: one failed attempt, carrying what the retry decision needs. */
class AttemptFailure extends Error {
  constructor(
    readonly kind: FailureKind | 'aborted',
    override readonly cause: unknown,
    readonly endpoint: Endpoint | undefined,
    readonly response: Dispatcher.ResponseData | undefined,
    public state: RetryState | undefined,
    /** A typed error to surface as is (no endpoint available…). */
    readonly terminal: Error | undefined,
  ) {
    super(kind);
  }
}

/** Internal: the state of one request once it entered the retry path. */
interface RetryState {
  readonly req: RequestOptions;
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly method: string;
  readonly replayable: boolean;
  attempts: number;
  readonly tried: string[];
  readonly exclude: Set<Endpoint>;
  /** Typed error decided by the retry policy (budget, deadline…). */
  final: Error | undefined;
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
  }
  return 'other';
}

function statusTable(statuses: readonly number[]): Uint8Array {
  const t = new Uint8Array(600);
  for (const s of statuses) t[s] = 1;
  return t;
}

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/**
 * A balancing HTTP client for one service: per-endpoint keep-alive pools,
 * peak-EWMA balancing, circuit breakers, outlier ejection, safe retries with a
 * budget, deadlines. Create it with {@link createClient}.
 */
export class ProxylessClient extends EventEmitter<ClientEvents> implements AsyncDisposable {
  readonly #options: ResolvedOptions;
  readonly #service: string;
  readonly #balancer: Balancer;
  readonly #set: EndpointSet;
  readonly #watch: ServiceWatch;
  readonly #budget: RetryBudget | undefined;
  readonly #timeoutMs: number;
  readonly #perTryTimeoutMs: number;
  readonly #failureStatus: Uint8Array;
  readonly #retryStatus: Uint8Array;
  readonly #retryEnabled: boolean;
  readonly #pRetryOptions: PRetryOptions | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  /** Use {@link createClient}. */
  constructor(options: ClientOptions) {
    super();
    const o = resolveOptions(options);
    this.#options = o;
    this.#service = o.service;
    this.#balancer = o.balancer ?? peakEwma();
    this.#timeoutMs = o.timeoutMs;
    this.#perTryTimeoutMs = o.perTryTimeoutMs;
    this.#failureStatus = statusTable(o.outlier ? o.outlier.failureStatuses : Array.from({ length: 100 }, (_, i) => 500 + i));
    this.#retryStatus = statusTable(o.retry ? o.retry.retryOnStatuses : []);
    this.#retryEnabled = o.retry !== false && o.retry.maxRetries > 0;
    this.#budget = o.retry ? new RetryBudget(o.retry.budget) : undefined;
    // p-retry options are built once per client: per-request state rides on
    // the AttemptFailure p-retry hands to shouldRetry. Backoff (full jitter,
    // Retry-After, deadline) is ours, so p-retry's own delay is zero.
    this.#pRetryOptions = o.retry
      ? {
          retries: o.retry.maxRetries,
          minTimeout: 0,
          maxTimeout: 0,
          factor: 1,
          randomize: false,
          shouldRetry: (context: RetryContext) => this.#shouldRetry(context),
        }
      : undefined;
    this.#set = new EndpointSet(o, this.#balancer, this);
    this.#watch = o.resolver.watch(o.service, o.query);
    this.#watch.on('update', (snapshot) => {
      this.#set.apply(snapshot.instances);
      this.emit('update', snapshot);
    });
    this.#watch.on('error', (error) => this.emit('error', error));
    const current = this.#watch.current;
    if (current) this.#set.apply(current.instances);
  }

  /** The service this client calls. */
  get service(): string {
    return this.#service;
  }

  /** True after {@link ProxylessClient.close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends a request to one endpoint of the service, retrying on another when
   * safe. Resolves with the response (any status); rejects with a typed error.
   * @param input - a path (`/users/42`) or {@link RequestOptions}.
   * @throws {@link NoHealthyEndpointsError}, {@link CircuitOpenError}, {@link DeadlineExceededError},
   *   {@link RetryBudgetExhaustedError}, {@link RequestFailedError}, `AbortedError`, `ClosedError`.
   */
  async request(input: string | RequestOptions): Promise<ClientResponse> {
    if (this.#closed) throw new ClosedError(`Client for "${this.#service}"`);
    const req: RequestOptions = typeof input === 'string' ? { path: input } : input;
    const start = performance.now();
    const timeoutMs = req.timeoutMs ?? this.#timeoutMs;
    const deadline = start + timeoutMs;
    if (!this.#set.hasSnapshot) await this.#waitForSnapshot(req, timeoutMs);
    this.#budget?.deposit(start);
    const ep = this.#set.pick(req.hashKey === undefined ? undefined : { hashKey: req.hashKey });
    if (ep === undefined) throw this.#emptyError(0, []);
    // First attempt inlined (one async frame fewer on the hot path than calling #attempt).
    const perTry = req.perTryTimeoutMs ?? this.#perTryTimeoutMs;
    let data: Dispatcher.ResponseData;
    if (timeoutMs > perTry && req.signal === undefined) {
      const load = ep.load;
      load.inFlight++;
      try {
        data = await ep.pool.request({
          method: (req.method ?? 'GET'),
          path: req.path,
          headers: req.headers,
          body: req.body,
          headersTimeout: perTry,
          bodyTimeout: perTry,
        });
      } catch (error) {
        load.inFlight--;
        return this.#retryPath(this.#failed(ep, req, error, start, undefined), req, deadline, timeoutMs);
      }
      load.inFlight--;
      this.#settled(ep, data.statusCode, start);
    } else {
      try {
        data = await this.#attempt(ep, req, deadline, start);
      } catch (error) {
        return this.#retryPath(error, req, deadline, timeoutMs);
      }
    }
    if (this.#retryStatus[data.statusCode] === 1 && this.#retryEnabled) {
      return this.#retryPath(new AttemptFailure('status', undefined, ep, data, undefined, undefined), req, deadline, timeoutMs);
    }
    return { statusCode: data.statusCode, headers: data.headers, body: data.body, endpoint: ep.info, attempts: 1 };
  }

  /** One attempt on one endpoint; records the outcome. Throws AttemptFailure. */
  async #attempt(ep: Endpoint, req: RequestOptions, deadline: number, start: number): Promise<Dispatcher.ResponseData> {
    const load = ep.load;
    const perTry = req.perTryTimeoutMs ?? this.#perTryTimeoutMs;
    const remaining = deadline - start;
    // Per-try timeout: undici's own parser timers (headersTimeout/bodyTimeout),
    // which cost nothing extra per request but are coarse (~1 s resolution
    // above 1 s). A constant value lets undici refresh its timer instead of
    // re-arming it. When the overall deadline is what bounds this attempt, it
    // must be precise: then (only then) one AbortSignal.timeout, linked with
    // the caller's signal, goes down to the transport.
    let t = perTry;
    let signal = req.signal;
    let deadlineSignal: AbortSignal | undefined;
    if (remaining <= perTry) {
      t = Math.max(1, Math.ceil(remaining));
      deadlineSignal = AbortSignal.timeout(t);
      signal = signal ? AbortSignal.any([signal, deadlineSignal]) : deadlineSignal;
    }
    load.inFlight++;
    let data: Dispatcher.ResponseData;
    try {
      data = await ep.pool.request({
        method: (req.method ?? 'GET'),
        path: req.path,
        headers: req.headers,
        body: req.body,
        signal,
        headersTimeout: t,
        bodyTimeout: t,
      });
    } catch (error) {
      load.inFlight--;
      throw this.#failed(ep, req, error, start, deadlineSignal);
    }
    load.inFlight--;
    this.#settled(ep, data.statusCode, start);
    return data;
  }

  /** Records a response: a failure status, or a success (latency, breaker, ejection count). */
  #settled(ep: Endpoint, statusCode: number, start: number): void {
    const now = performance.now();
    if (this.#failureStatus[statusCode] === 1) {
      this.#recordFailure(ep, new Error(`status ${statusCode}`), now - start, now);
    } else {
      ep.successes++;
      ep.observe(now - start, now);
      ep.outlier.consecutiveFailures = 0;
      ep.breaker?.success(now - start);
    }
  }

  /** Records a transport failure and wraps it for the retry policy. */
  #failed(ep: Endpoint, req: RequestOptions, error: unknown, start: number, deadlineSignal: AbortSignal | undefined): AttemptFailure {
    if (req.signal?.aborted) return new AttemptFailure('aborted', error, ep, undefined, undefined, undefined);
    const now = performance.now();
    const kind = deadlineSignal?.aborted ? 'timeout' : classifyError(error);
    this.#recordFailure(ep, error instanceof Error ? error : new Error(String(error)), now - start, now);
    return new AttemptFailure(kind, error, ep, undefined, undefined, undefined);
  }

  #recordFailure(ep: Endpoint, error: Error, latencyMs: number, now: number): void {
    ep.failures++;
    ep.penalise(latencyMs, now);
    ep.breaker?.failure(error);
    this.#set.outlierFailure(ep);
  }

  async #waitForSnapshot(req: RequestOptions, timeoutMs: number): Promise<void> {
    try {
      await this.#watch.ready(req.signal ? { signal: req.signal, timeoutMs } : { timeoutMs });
    } catch (error) {
      if (req.signal?.aborted) throw new AbortedError(`Request to "${this.#service}"`, req.signal.reason);
      if (this.#closed) throw new ClosedError(`Client for "${this.#service}"`);
      if (this.#set.hasSnapshot) return;
      throw new NoHealthyEndpointsError({ service: this.#service, attempts: 0, endpointsTried: [], cause: error });
    }
  }

  #emptyError(attempts: number, tried: readonly string[], cause?: unknown): Error {
    const context: RequestErrorContext = { service: this.#service, attempts, endpointsTried: tried, cause };
    if (this.#closed) return new ClosedError(`Client for "${this.#service}"`);
    return this.#set.emptyReason() === 'circuitOpen' ? new CircuitOpenError(context) : new NoHealthyEndpointsError(context);
  }

  /** Entered only after a first failure: decides, backs off and retries via p-retry. */
  async #retryPath(first: unknown, req: RequestOptions, deadline: number, timeoutMs: number): Promise<ClientResponse> {
    if (!(first instanceof AttemptFailure)) throw first;
    const method = req.method ?? 'GET';
    const state: RetryState = {
      req,
      deadline,
      timeoutMs,
      method,
      replayable: isReplayableBody(req.body),
      attempts: 1,
      tried: first.endpoint ? [first.endpoint.info.label] : [],
      exclude: new Set(first.endpoint ? [first.endpoint] : []),
      final: undefined,
    };
    first.state = state;
    const options = this.#pRetryOptions;
    if (options === undefined || !this.#retryEnabled) return this.#finish(first, state);
    try {
      return await pRetry((n) => (n === 1 ? Promise.reject(first) : this.#retryAttempt(state)), options);
    } catch (error) {
      if (error instanceof AttemptFailure) return this.#finish(error, state);
      throw error;
    }
  }

  async #retryAttempt(state: RetryState): Promise<ClientResponse> {
    const req = state.req;
    const ctx: PickContext = { hashKey: req.hashKey, exclude: state.exclude };
    const ep = this.#set.pick(ctx);
    if (ep === undefined) {
      throw new AttemptFailure('other', undefined, undefined, undefined, state, this.#emptyError(state.attempts, state.tried));
    }
    state.attempts++;
    state.tried.push(ep.info.label);
    state.exclude.add(ep);
    let data: Dispatcher.ResponseData;
    try {
      data = await this.#attempt(ep, req, state.deadline, performance.now());
    } catch (error) {
      (error as AttemptFailure).state = state;
      throw error;
    }
    if (this.#retryStatus[data.statusCode] === 1) throw new AttemptFailure('status', undefined, ep, data, state, undefined);
    return { statusCode: data.statusCode, headers: data.headers, body: data.body, endpoint: ep.info, attempts: state.attempts };
  }

  /** p-retry's `shouldRetry`: safety, deadline, budget, then our backoff (full jitter, Retry-After). */
  async #shouldRetry(context: RetryContext): Promise<boolean> {
    const failure = context.error;
    if (!(failure instanceof AttemptFailure)) return false;
    const state = failure.state;
    const retry = this.#options.retry;
    if (state === undefined || retry === false || failure.terminal || failure.kind === 'aborted') return false;
    if (!isSafeToRetry(failure.kind, state.method, state.req.idempotent, state.replayable)) return false;
    const now = performance.now();
    let delay = backoffDelay(context.retriesConsumed, { initialMs: retry.baseDelayMs, maxMs: retry.maxDelayMs });
    const retryAfter = failure.response ? parseRetryAfter(failure.response.headers['retry-after']) : undefined;
    if (retryAfter !== undefined) delay = Math.max(delay, retryAfter);
    if (now + delay >= state.deadline) {
      // Waiting would cross the deadline: a status failure returns its response, others fail typed.
      if (!failure.response) state.final = this.#deadlineError(state, failure.cause);
      return false;
    }
    if (this.#budget === undefined || !this.#budget.tryWithdraw(now)) {
      if (!failure.response) {
        state.final = new RetryBudgetExhaustedError({
          service: this.#service,
          attempts: state.attempts,
          endpointsTried: state.tried,
          cause: failure.cause,
        });
      }
      return false;
    }
    if (failure.response) failure.response.body.dump().catch(() => undefined);
    if (delay > 0) {
      await sleep(delay, state.req.signal);
      if (state.req.signal?.aborted) {
        state.final = new AbortedError(`Request to "${this.#service}"`, state.req.signal.reason);
        return false;
      }
    }
    return true;
  }

  #deadlineError(state: RetryState, cause: unknown): DeadlineExceededError {
    return new DeadlineExceededError(state.timeoutMs, { service: this.#service, attempts: state.attempts, endpointsTried: state.tried, cause });
  }

  /** Turns the last failure into the caller's answer: a response (status failures) or a typed error. */
  #finish(failure: AttemptFailure, state: RetryState): ClientResponse {
    if (failure.kind === 'aborted' || state.req.signal?.aborted) {
      throw new AbortedError(`Request to "${this.#service}"`, state.req.signal?.reason);
    }
    if (state.final) throw state.final;
    if (failure.terminal) throw failure.terminal;
    const res = failure.response;
    if (res && failure.endpoint) {
      return { statusCode: res.statusCode, headers: res.headers, body: res.body, endpoint: failure.endpoint.info, attempts: state.attempts };
    }
    if (this.#closed) throw new ClosedError(`Client for "${this.#service}"`);
    if (failure.kind === 'timeout' && performance.now() >= state.deadline - 1) throw this.#deadlineError(state, failure.cause);
    throw new RequestFailedError(failure.kind, {
      service: this.#service,
      attempts: state.attempts,
      endpointsTried: state.tried,
      cause: failure.cause,
    });
  }

  /**
   * Sends a request and buffers the body as text (UTF-8), bounded by
   * `maxResponseBytes` and the deadline.
   * @throws as {@link ProxylessClient.request}, plus {@link ResponseTooLargeError}.
   */
  async text(input: string | RequestOptions): Promise<BufferedResponse<string>> {
    const req: RequestOptions = typeof input === 'string' ? { path: input } : input;
    const timeoutMs = req.timeoutMs ?? this.#timeoutMs;
    const deadline = performance.now() + timeoutMs;
    const res = await this.request(req);
    const limit = this.#options.maxResponseBytes;
    const body = res.body;
    const context = (): RequestErrorContext => ({ service: this.#service, attempts: res.attempts, endpointsTried: [res.endpoint.label] });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      body.destroy();
    }, Math.max(0, deadline - performance.now()));
    timer.unref();
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > limit) {
          body.destroy();
          throw new ResponseTooLargeError(limit, context());
        }
        chunks.push(chunk);
      }
    } catch (error) {
      if (error instanceof ResponseTooLargeError) throw error;
      if (timedOut || performance.now() >= deadline - 2) throw new DeadlineExceededError(timeoutMs, { ...context(), cause: error });
      if (req.signal?.aborted) throw new AbortedError(`Request to "${this.#service}"`, req.signal.reason);
      const kind = classifyError(error);
      if (kind === 'timeout') throw new DeadlineExceededError(timeoutMs, { ...context(), cause: error });
      throw new RequestFailedError(kind, { ...context(), cause: error });
    } finally {
      clearTimeout(timer);
    }
    if (timedOut) throw new DeadlineExceededError(timeoutMs, context());
    return { statusCode: res.statusCode, headers: res.headers, body: Buffer.concat(chunks, size).toString('utf8'), endpoint: res.endpoint, attempts: res.attempts };
  }

  /** Like {@link ProxylessClient.text}, then `JSON.parse` (an empty body parses to `undefined`). */
  async json<T = unknown>(input: string | RequestOptions): Promise<BufferedResponse<T>> {
    const res = await this.text(input);
    return { ...res, body: (res.body === '' ? undefined : JSON.parse(res.body)) as T };
  }

  /**
   * A `fetch`-compatible call. The URL's host is ignored (the service is the
   * host); its path and query are sent. Extra init fields: `timeoutMs`,
   * `perTryTimeoutMs`, `idempotent`, `hashKey`.
   */
  async fetch(input: string | URL | Request, init: ProxylessRequestInit = {}): Promise<Response> {
    let url: string;
    let method = init.method;
    let headersInit = init.headers;
    let bodyInit: RequestInit['body'] = init.body;
    let signal = init.signal ?? undefined;
    if (input instanceof Request) {
      url = input.url;
      method ??= input.method;
      headersInit ??= input.headers;
      signal ??= input.signal;
      if (bodyInit === undefined && input.body !== null) bodyInit = new Uint8Array(await input.arrayBuffer());
    } else {
      url = input instanceof URL ? input.href : input;
    }
    let path = url;
    if (!url.startsWith('/')) {
      const u = new URL(url);
      path = u.pathname + u.search;
    }
    const headers: Record<string, string> = {};
    if (headersInit !== undefined) new Headers(headersInit).forEach((value, key) => (headers[key] = value));
    let body: RequestBody | undefined;
    if (bodyInit === undefined || bodyInit === null || typeof bodyInit === 'string' || bodyInit instanceof Uint8Array) {
      body = bodyInit;
    } else if (bodyInit instanceof ReadableStream) {
      // Not replayable: such a request is never retried once it may have been sent.
      body = Readable.fromWeb(bodyInit as import('node:stream/web').ReadableStream<Uint8Array>);
    } else {
      // ArrayBuffer, views, Blob, URLSearchParams, FormData: let the platform serialise (and set content-type).
      const serialised = new Response(bodyInit);
      body = new Uint8Array(await serialised.arrayBuffer());
      const type = serialised.headers.get('content-type');
      if (type !== null) headers['content-type'] ??= type;
    }
    const req: RequestOptions = { path, method: (method ?? 'GET').toUpperCase(), headers, body };
    if (signal) req.signal = signal;
    if (init.timeoutMs !== undefined) req.timeoutMs = init.timeoutMs;
    if (init.perTryTimeoutMs !== undefined) req.perTryTimeoutMs = init.perTryTimeoutMs;
    if (init.idempotent !== undefined) req.idempotent = init.idempotent;
    if (init.hashKey !== undefined) req.hashKey = init.hashKey;
    const res = await this.request(req);
    const responseHeaders = new Headers();
    for (const [key, value] of Object.entries(res.headers)) {
      if (Array.isArray(value)) for (const v of value) responseHeaders.append(key, v);
      else if (value !== undefined) responseHeaders.append(key, value);
    }
    const nullBody = NULL_BODY_STATUSES.has(res.statusCode) || req.method === 'HEAD';
    if (nullBody) await res.body.dump();
    const webBody = nullBody ? null : (Readable.toWeb(res.body) as ReadableStream<Uint8Array>);
    return new Response(webBody, { status: res.statusCode, headers: responseHeaders });
  }

  /** A cheap snapshot of the client's endpoints and their state. */
  stats(): ClientStats {
    const endpoints: EndpointStats[] = [];
    for (const ep of this.#set.endpoints) {
      endpoints.push({
        key: ep.info.key,
        label: ep.info.label,
        inFlight: ep.load.inFlight,
        ewmaMs: ep.load.ewmaMs,
        successes: ep.successes,
        failures: ep.failures,
        breaker: ep.breakerState,
        ejected: ep.outlier.ejected,
      });
    }
    return {
      service: this.#service,
      balancer: this.#balancer.name,
      panic: this.#set.panic,
      ready: this.#set.picker.endpoints.length,
      retryBudget: this.#budget ? this.#budget.available(performance.now()) : -1,
      endpoints,
    };
  }

  /**
   * Stops watching, lets in-flight requests finish (bounded by `drainTimeoutMs`),
   * closes every pool and timer. Idempotent; later calls reject with `ClosedError`.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#closing = (async () => {
      await this.#watch.close().catch(() => undefined);
      await this.#set.close(this.#options.drainTimeoutMs);
    })();
    return this.#closing;
  }

  /** Same as {@link ProxylessClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Creates a balancing HTTP client for one service.
 * @example
 * ```ts
 * import { createClient } from '@proxyless/http-client';
 * const client = createClient({ service: 'users', resolver });
 * const res = await client.request({ path: '/users/42', timeoutMs: 2000 });
 * console.log(res.statusCode, await res.body.text(), res.endpoint.label);
 * await client.close();
 * ```
 */
export function createClient(options: ClientOptions): ProxylessClient {
  return new ProxylessClient(options);
}
