import { EventEmitter } from 'eventemitter3';
import {
  AbortedError, ClosedError, ResolutionFailedError, TimeoutError, coordinateOf, diffInstances, prequalWhenReported,
  type Balancer, type InstanceDiff, type Resolver, type ServiceInstance, type ServiceSnapshot, type ServiceWatch,
} from '@proxyless/core';
import { withDeadline } from '@proxyless/core/internal';
import { Call, CallList } from './request/call.js';
import { EndpointSet, type EmptyReason } from './endpoints/endpoint-set.js';
import { SubsetFilter } from './endpoints/subset-filter.js';
import { breakerStateOf } from './endpoints/health.js';
import {
  CircuitOpenError,
  ConcurrencyLimitError,
  DeadlineExceededError,
  NoHealthyEndpointsError,
  RequestFailedError,
  ResponseTooLargeError,
  type RequestErrorContext,
} from './shared/errors.js';
import { ClientDoctor, explainConfig, type ExplainedConfig } from './config/doctor.js';
import type { ClientEvents, EmitClientEvent } from './shared/events.js';
import type { DiscoveryStale } from './shared/discovery-stale.js';
import { ClientTelemetry } from './observe/tracing.js';
import { toRequestOptions, toWebResponse } from './request/fetch-adapter.js';
import { callPolicy, checkRequestKeys, type ProxylessRequestInit, type RequestOptions } from './config/call-options.js';
import { resolveOptions, type ClientOptions, type ResolvedOptions } from './config/options.js';
import { buildPolicy, statusTable, type PolicyOptions, type RequestPolicy } from './config/policy.js';
import { ForwardedAttempt, type ForwardedCall } from './request/forwarded-attempt.js';
import { classifyError, runRequest, sendRequest, type LoopHost, type LoopResponse, type Send } from './request/request-loop.js';
import type { BufferedResponse, ClientResponse, ClientStats, EndpointStats } from './request/request-types.js';
import { RetryBudget } from './request/retry-budget.js';
import { Hedging } from './request/hedging.js';
import { AdmissionControl } from './request/admission.js';
import { TimerQueue } from './request/timer-queue.js';

/** The dispatcher's way to send an attempt (see {@link ProxylessClient.forward}). */
const sendForwarded: Send<ForwardedAttempt> = (pool, options, step) => new ForwardedAttempt(step).send(pool, options);

/**
 * A balancing HTTP client for one service: per-endpoint keep-alive pools,
 * peak-EWMA balancing, circuit breakers, outlier ejection, safe retries with a
 * budget, deadlines, per-request policies. Create it with {@link createClient}.
 *
 * ## Events
 *
 * Subscribe with `on(name, listener)`; the listener's arguments are typed by {@link ClientEvents}.
 *
 * - {@link ClientEvents.endpointAdded | `endpointAdded`} `(endpoint)`: An instance appeared in the resolver's snapshot; its pool is ready.
 * - {@link ClientEvents.endpointRemoved | `endpointRemoved`} `(endpoint)`: An instance left the snapshot; its pool drains its in-flight requests, then closes.
 * - {@link ClientEvents.breakerOpen | `breakerOpen`} `(endpoint)`: The endpoint's breaker opened: it leaves the pick set.
 * - {@link ClientEvents.breakerHalfOpen | `breakerHalfOpen`} `(endpoint)`: The reset timeout passed: the next call to the endpoint is a trial.
 * - {@link ClientEvents.breakerClose | `breakerClose`} `(endpoint)`: A trial succeeded: the endpoint is back.
 * - {@link ClientEvents.eject | `eject`} `(endpoint, durationMs)`: Outlier detection ejected the endpoint for `durationMs`.
 * - {@link ClientEvents.restore | `restore`} `(endpoint)`: An ejected endpoint returned to the pick set.
 * - {@link ClientEvents.panic | `panic`} `(active)`: Panic mode entered (`true`: too few endpoints available, balancing over all) or left (`false`).
 * - {@link ClientEvents.shed | `shed`} `(endpoint)`: The endpoint shed an attempt (`503` with `x-proxyless-shed`): not counted as its failure; the request may go to another endpoint.
 * - {@link ClientEvents.concurrencyLimit | `concurrencyLimit`} `(endpoint, limit)`: The endpoint's adaptive concurrency limit changed (`concurrencyLimit` option).
 * - {@link ClientEvents.hedge | `hedge`} `(endpoint, copy, afterMs)`: A hedged request sent another copy to `endpoint`.
 * - {@link ClientEvents.hedgeSettled | `hedgeSettled`} `(winner, copy, cancelled)`: A request that sent hedges got its answer from `winner`; the other copies were cancelled.
 * - {@link ClientEvents.update | `update`} `(snapshot)`: The resolver published a snapshot the client applied.
 * - {@link ClientEvents.discoveryStale | `discoveryStale`} `(stale)`: Discovery turned stale (registry unreachable or silent, no leader, reset grace): the client keeps serving its last known endpoints.
 * - {@link ClientEvents.discoveryFresh | `discoveryFresh`} `(stale, durationMs)`: Discovery is fresh again after `durationMs` stale.
 * - {@link ClientEvents.configWarning | `configWarning`} `(warning)`: The configuration doctor found a setting that hurts in production (once per code); the warning names the fix.
 * - {@link ClientEvents.error | `error`} `(error)`: The resolver reported an error (the last good endpoints stay in use).
 *
 * ## Stale discovery
 *
 * While the resolver's snapshot is stale (`snapshot.stale`: the registry is
 * unreachable or silent, its server knows no leader, or instances are held
 * after a registry reset), the client:
 * - keeps serving its last known endpoints: a stale snapshot never empties the
 *   set (a registry that cannot answer says nothing about the instances, which
 *   usually still serve; emptying would turn a registry outage into an outage);
 * - says so: a `discoveryStale` event (and `discoveryFresh` when it ends),
 *   `stats().discovery`, `discoveryStale` on a request error and in its message,
 *   and in pick explanations;
 * - keeps breakers and outlier ejection, with their caps, as they are: they now
 *   are the only signal that an endpoint is gone, and they already remove a dead
 *   endpoint from the picks within a few failures. Relaxing the ejection cap
 *   while stale would let a network fault that cuts off the registry and the
 *   backends alike eject everything; panic mode already balances over every
 *   endpoint when too few are ready.
 */
export class ProxylessClient extends EventEmitter<ClientEvents> implements AsyncDisposable {
  readonly #options: ResolvedOptions;
  readonly #service: string;
  readonly #balancer: Balancer;
  readonly #set: EndpointSet;
  /** Subsetting, when on: the set sees this client's subset of the instances. */
  readonly #subset: SubsetFilter | undefined;
  readonly #watch: ServiceWatch;
  /** With `subset.peers`: the watch of this process's own service, where its coordinate comes from. */
  readonly #peers: ServiceWatch | undefined;
  readonly #budget: RetryBudget;
  readonly #hedging: Hedging;
  /** Undefined when `admissionControl` is off. */
  readonly #admission: AdmissionControl | undefined;
  readonly #host: LoopHost;
  readonly #doctor: ClientDoctor;
  readonly #telemetry: ClientTelemetry;
  readonly #scheme: 'http' | 'https' | 'auto';
  /** Requests in progress (for close() and destroy()). */
  readonly #calls = new CallList();
  /** Per-try timeouts and deadlines of every call: one Node timer for the client. */
  readonly #timers = new TimerQueue();
  #idle: (() => void) | undefined;
  /** The instances the watch last gave this client (the same array is the same set). */
  #heard: readonly ServiceInstance[] | undefined;
  /**
   * What the endpoint set holds when it is not what the watch last gave: the set applied
   * from `watch.current` at construction, or the endpoints kept against a stale empty
   * answer. The next change is diffed from it once; otherwise the watch's diff is applied.
   */
  #held: readonly ServiceInstance[] | undefined;
  /** The last snapshot applied. */
  #snapshot: ServiceSnapshot | undefined;
  /** Set while discovery is stale. */
  #stale: DiscoveryStale | undefined;
  /** `discoveryStale` was emitted for {@link ProxylessClient.#stale} (not yet when the constructor saw it). */
  #staleAnnounced = false;
  /**
   * The resolver's error while the client has no snapshot yet: new calls fail
   * with it at once instead of waiting for their deadline. Cleared by the
   * first snapshot (a resolver that recovers serves the next calls).
   */
  #failedFirst: Error | undefined;
  /** Calls waiting for the first snapshot: the resolver's error fails each at once. */
  readonly #firstWaiters = new Set<(error: Error) => void>();
  #closed = false;
  #closing: Promise<void> | undefined;
  #destroyError: Error | undefined;

  /** Use {@link createClient}. */
  constructor(options: ClientOptions) {
    super();
    const o = resolveOptions(options);
    this.#options = o;
    this.#service = o.service;
    this.#balancer = o.balancer ?? prequalWhenReported();
    this.#budget = new RetryBudget(o.budget);
    this.#admission = o.admissionControl === undefined ? undefined : new AdmissionControl(o.admissionControl);
    this.#scheme = options.scheme ?? o.defaults.scheme;
    this.#doctor = new ClientDoctor(o, options.logger, options.retryLayers, (warning) => this.emit('configWarning', warning));
    // Each piece gets the one function it needs of the client's events, not the client.
    const emitAny = this.emit.bind(this) as (event: string, ...args: unknown[]) => boolean;
    const emit: EmitClientEvent = (event, ...args) => {
      emitAny(event, ...args);
    };
    this.#set = new EndpointSet(o, this.#balancer, emit);
    this.#hedging = new Hedging(emit);
    this.#subset = o.subset === undefined ? undefined : new SubsetFilter(o.subset, this.#set);
    // Telemetry hears the endpoints' health transitions from the set that reports them.
    this.#telemetry = new ClientTelemetry(o.service, this.#set, () => this.stats().endpoints);
    const staleness = (): DiscoveryStale | undefined => this.#stale;
    this.#host = {
      service: o.service,
      set: this.#set,
      budget: this.#budget,
      admission: this.#admission,
      failureStatus: statusTable(o.failureStatuses),
      emptyError: (context, reason) => this.#emptyError(context, reason),
      stoppedError: (call, context) => this.#stoppedError(call, context),
      waitForSnapshot: (req, call) => (this.#set.hasSnapshot ? undefined : this.#waitForSnapshot(req, call)),
      finished: (call) => this.#finished(call),
      hedging: this.#hedging,
      get discoveryStale() {
        return staleness();
      },
    };
    this.#peers = this.#subset === undefined ? undefined : this.#watchPeers(this.#subset, o.resolver);
    this.#watch = o.resolver.watch(o.service, o.query);
    this.#watch.on('update', (snapshot, change) => {
      this.#onSnapshot(snapshot, change, true);
      this.emit('update', snapshot);
    });
    this.#watch.on('error', (error) => {
      if (!this.#set.hasSnapshot) {
        this.#failedFirst = error;
        for (const fail of this.#firstWaiters) fail(error);
      }
      this.emit('error', error);
    });
    const current = this.#watch.current;
    if (current) {
      // Usable at once; the watch greets this client later with a diff from empty, applied from here instead.
      this.#onSnapshot(current, diffInstances([], current.instances), false);
      this.#held = current.instances;
      this.#heard = undefined;
    }
  }

  /** Watches the peers (`subset.peers`) and hands the filter each new coordinate; a stale empty answer is not believed. */
  #watchPeers(filter: SubsetFilter, resolver: Resolver): ServiceWatch | undefined {
    const peers = filter.subset.peers;
    if (peers === undefined) return undefined;
    const watch = (peers.resolver ?? resolver).watch(peers.service, peers.query);
    const heard = (snapshot: ServiceSnapshot): void => {
      if (!(snapshot.stale && snapshot.instances.length === 0)) filter.setCoordinate(coordinateOf(snapshot.instances, peers.id));
    };
    watch.on('update', heard);
    watch.on('error', (error) => this.emit('error', error));
    if (watch.current) heard(watch.current);
    return watch;
  }

  /**
   * Applies one snapshot with the watch's diff of it (computed once by the
   * watch for every subscriber; the set does not compare lists again), then
   * notes its staleness.
   */
  #onSnapshot(snapshot: ServiceSnapshot, change: InstanceDiff, announce: boolean): void {
    const previous = this.#heard;
    if (snapshot.instances !== previous) {
      this.#heard = snapshot.instances;
      const held = this.#held;
      if (snapshot.stale && snapshot.instances.length === 0 && this.#set.size > 0) {
        // A stale answer never empties the set: the last known endpoints keep serving.
        this.#held = held ?? previous ?? [];
      } else {
        this.#held = undefined;
        if (this.#subset !== undefined) {
          if (held !== snapshot.instances) this.#subset.update(snapshot.instances);
        } else if (held === undefined) this.#set.apply(change);
        else if (held !== snapshot.instances) this.#set.apply(diffInstances(held, snapshot.instances));
      }
    }
    this.#snapshot = snapshot;
    if (this.#set.hasSnapshot) this.#failedFirst = undefined;
    this.#doctor.endpoints(this.#set.size); // what is held (a stale empty answer is not applied)
    this.#noteStaleness(snapshot, announce);
  }

  #noteStaleness(snapshot: ServiceSnapshot, announce: boolean): void {
    const stale = this.#stale;
    if (snapshot.stale) {
      const now = stale ?? Object.freeze({ service: this.#service, since: Date.now(), lastConfirmedAt: snapshot.updatedAt, cause: this.#watch.lastError });
      this.#stale = now;
      if (announce && !this.#staleAnnounced) {
        this.#staleAnnounced = true;
        this.emit('discoveryStale', now);
      }
    } else if (stale !== undefined) {
      this.#stale = undefined;
      if (this.#staleAnnounced) {
        this.#staleAnnounced = false;
        this.emit('discoveryFresh', stale, Date.now() - stale.since);
      }
    }
  }

  /**
   * The resolved configuration with every default spelled out (secrets left
   * out), e.g. to log at start-up or compare two deployments.
   * @example
   * ```ts
   * console.log(JSON.stringify(client.explainConfig(), null, 2));
   * ```
   */
  explainConfig(): ExplainedConfig {
    return explainConfig(this.#options, this.#scheme, this.#doctor, this.#options.resolver.constructor.name, this.#balancer.name);
  }

  /** The service this client calls. */
  get service(): string {
    return this.#service;
  }

  /** True after {@link ProxylessClient.close} or {@link ProxylessClient.destroy}. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The client's default policy (from its options). */
  get defaultPolicy(): RequestPolicy {
    return this.#options.policy;
  }

  /**
   * Builds an immutable request policy over the client's defaults, validated
   * once; pass it as `policy` to any call. Fields left out keep the client's
   * values; the per-try timeout follows a new deadline unless set.
   * @throws `InvalidOptionError` naming the field.
   * @example
   * ```ts
   * const patient = client.policy({ timeoutMs: 5_000, retry: { maxRetries: 4 } });
   * await client.request({ path: '/report', policy: patient });
   * ```
   */
  policy(options: PolicyOptions): RequestPolicy {
    return buildPolicy(options, this.#options.policy, this.#options.perTryExplicit).policy;
  }

  #policyFor(req: RequestOptions): RequestPolicy {
    return callPolicy(req, this.#options.policy, this.#options.perTryExplicit);
  }


  /**
   * Sends a request to one endpoint of the service, retrying on another when
   * the policy allows it. Resolves with the response (any status); rejects
   * with a typed error carrying the attempts and endpoints tried.
   * @param input - a path (`/users/42`) or {@link RequestOptions}.
   * @throws {@link NoHealthyEndpointsError}, {@link CircuitOpenError}, {@link DeadlineExceededError},
   *   `ResolutionFailedError` (no snapshot: at once when the resolver has reported an error and has no snapshot,
   *   else at the deadline; its message names the registry, the address tried and what sets it),
   *   {@link RetryBudgetExhaustedError}, {@link RequestFailedError}, `AbortedError`, `ClosedError`, `InvalidOptionError`.
   */
  request(input: string | RequestOptions): Promise<ClientResponse> {
    if (typeof input === 'object' && input !== null) {
      try {
        checkRequestKeys(input, 'client.request()');
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
    }
    return this.#start(input);
  }

  /**
   * The dispatcher's way in: as {@link ProxylessClient.request}, but each
   * attempt is dispatched with a {@link ForwardedAttempt}, whose kept answer
   * the dispatcher pipes to its caller's handler. The returned handle stops
   * the call when the dispatcher's caller aborts.
   * @internal
   */
  forward(req: RequestOptions): ForwardedCall {
    let policy: RequestPolicy;
    try {
      if (this.#closed) throw this.#closedError();
      policy = this.#policyFor(req);
    } catch (error) {
      return { response: Promise.reject(error instanceof Error ? error : new Error(String(error))), stop: () => undefined };
    }
    const call = this.#open(req, policy);
    return { response: this.#run(req, policy, call, sendForwarded), stop: (reason) => call.stop(reason) };
  }

  #start(input: string | RequestOptions): Promise<ClientResponse> {
    // Not async: the one async frame of the request path is the loop itself.
    let req: RequestOptions;
    let policy: RequestPolicy;
    try {
      if (this.#closed) throw this.#closedError();
      req = typeof input === 'string' ? { path: input } : input;
      policy = this.#policyFor(req);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return this.#run(req, policy, this.#open(req, policy), sendRequest);
  }

  /** A new call, counted among the calls in progress (for close() and destroy()). */
  #open(req: RequestOptions, policy: RequestPolicy): Call {
    const call = new Call(policy.timeoutMs, req.signal, this.#timers);
    call.trace = this.#telemetry.start(req);
    this.#calls.add(call);
    if (this.#calls.size === 1) this.#timers.hold(true);
    return call;
  }

  #run<B extends { dump(): Promise<unknown> }>(req: RequestOptions, policy: RequestPolicy, call: Call, send: Send<B>): Promise<LoopResponse<B>> {
    const trace = call.trace;
    const running = runRequest(this.#host, req, policy, call, send);
    if (trace === undefined) return running;
    return running.then(
      (res) => {
        trace.end(res.statusCode, undefined, res.attempts);
        return res;
      },
      (error: unknown) => {
        trace.end(undefined, error, (error as { attempts?: number }).attempts);
        throw error;
      },
    );
  }

  #finished(call: Call): void {
    this.#calls.delete(call);
    if (this.#calls.size === 0) {
      this.#timers.hold(false);
      this.#idle?.();
      if (this.#closed) this.#timers.clear();
    }
  }

  /**
   * Waits for the resolver's first snapshot as a step of the call (bounded by
   * its deadline, kept alive by its timer). A resolver that reports an error
   * before it has a snapshot ends the wait at once, with its error: waiting out
   * the deadline would only hide why (an unreachable registry, a refusal).
   * One that is merely slow is waited for.
   */
  async #waitForSnapshot(req: RequestOptions, call: Call): Promise<void> {
    if (this.#failedFirst !== undefined) throw this.#discoveryError(call, this.#failedFirst);
    let failed: Error | undefined;
    try {
      await call.waitFor((signal) => new Promise<unknown>((resolve, reject) => {
        const fail = (error: Error): void => {
          failed = error;
          reject(error);
        };
        this.#firstWaiters.add(fail);
        void this.#watch.ready({ signal }).then(resolve, reject).finally(() => this.#firstWaiters.delete(fail));
      }));
    } catch {
      if (req.signal?.aborted) throw new AbortedError(`Request to "${this.#service}"`, req.signal.reason);
      if (this.#closed || call.ended === 'destroyed') throw this.#closedError();
      if (this.#set.hasSnapshot) return;
      throw this.#discoveryError(call, failed);
    }
  }

  /**
   * No snapshot: the resolver failed, or none came by the deadline. Discovery
   * is why the call failed, and the error says so in the resolver's own words
   * (the registry, the address tried, what sets it); "no instance" is said
   * only once the registry answered.
   */
  #discoveryError(call: Call, failed?: Error): ResolutionFailedError {
    const last = failed ?? this.#watch.lastError;
    const resolver = this.#options.resolver.constructor.name;
    if (last instanceof ResolutionFailedError) return new ResolutionFailedError(this.#service, last.source, last, last.detail);
    if (last !== undefined) return new ResolutionFailedError(this.#service, resolver, last);
    const silent = new TimeoutError(`Discovery of "${this.#service}"`, call.timeoutMs);
    return this.#options.resolver.discoveryError?.(this.#service, silent) ?? new ResolutionFailedError(this.#service, resolver, silent);
  }

  #closedError(): Error {
    return this.#destroyError ?? new ClosedError(`Client for "${this.#service}"`);
  }

  #emptyError(context: RequestErrorContext, reason: EmptyReason): Error {
    if (this.#closed) return this.#closedError();
    if (reason === 'concurrencyLimit') return new ConcurrencyLimitError(context);
    return reason === 'circuitOpen' ? new CircuitOpenError(context) : new NoHealthyEndpointsError(context);
  }

  #stoppedError(call: Call, context: RequestErrorContext): Error {
    if (call.ended === 'destroyed') return this.#closedError();
    if (call.ended === 'deadline') return new DeadlineExceededError(call.timeoutMs, context);
    return new AbortedError(`Request to "${this.#service}"`, context.cause);
  }

  /**
   * Sends a request and buffers the body as text (UTF-8), bounded by
   * `maxResponseBytes` and the request's deadline.
   * @throws as {@link ProxylessClient.request}, plus {@link ResponseTooLargeError}.
   */
  async text(input: string | RequestOptions): Promise<BufferedResponse<string>> {
    const req: RequestOptions = typeof input === 'string' ? { path: input } : input;
    const timeoutMs = this.#policyFor(req).timeoutMs;
    const deadline = performance.now() + timeoutMs;
    const res = await this.request(req);
    const limit = this.#options.maxResponseBytes;
    const body = res.body;
    const context = (): RequestErrorContext => ({ service: this.#service, attempts: res.attempts, endpointsTried: [res.endpoint.label] });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      body.destroy();
      // Ref'd: a body being read keeps the process alive until its deadline. +1: a Node timer may fire up to
      // 1 ms early by performance.now() (libuv's ms-truncated clock), and the deadline is never declared early.
    }, Math.max(0, Math.ceil(deadline - performance.now()) + 1));
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
      if (timedOut || performance.now() >= deadline) throw new DeadlineExceededError(timeoutMs, { ...context(), cause: error });
      if (req.signal?.aborted) throw new AbortedError(`Request to "${this.#service}"`, req.signal.reason);
      if (this.#destroyError) throw this.#destroyError;
      // Before the deadline (undici's body timeout, a reset…): the body's own failure, never ERR_DEADLINE_EXCEEDED.
      throw new RequestFailedError(classifyError(error), { ...context(), cause: error });
    } finally {
      clearTimeout(timer);
    }
    if (timedOut) throw new DeadlineExceededError(timeoutMs, context());
    const buffered: BufferedResponse<string> = { statusCode: res.statusCode, headers: res.headers, body: Buffer.concat(chunks, size).toString('utf8'), endpoint: res.endpoint, attempts: res.attempts };
    if (res.picks !== undefined) buffered.picks = res.picks;
    return buffered;
  }

  /** Like {@link ProxylessClient.text}, then `JSON.parse` (an empty body parses to `undefined`). */
  async json<T = unknown>(input: string | RequestOptions): Promise<BufferedResponse<T>> {
    const res = await this.text(input);
    return { ...res, body: (res.body === '' ? undefined : JSON.parse(res.body)) as T };
  }

  /**
   * A `fetch`-compatible call. The URL's host is ignored (the service is the
   * host); its path and query are sent. Extra init fields: `policy`,
   * `timeoutMs`, `perTryTimeoutMs`, `retry`, `idempotent`, `hashKey`.
   */
  async fetch(input: string | URL | Request, init: ProxylessRequestInit = {}): Promise<Response> {
    const req = await toRequestOptions(input, init);
    return toWebResponse(await this.request(req), req.method ?? 'GET');
  }

  /** A cheap snapshot of the client's endpoints and their state. */
  stats(): ClientStats {
    const endpoints: EndpointStats[] = [];
    const now = this.#set.clockMs();
    for (const ep of this.#set.endpoints) {
      const kind = ep.health.state.kind;
      endpoints.push({
        key: ep.info.key,
        label: ep.info.label,
        inFlight: ep.load.inFlight,
        ewmaMs: ep.load.ewmaMs,
        successes: ep.load.successes,
        failures: ep.load.failures,
        shed: ep.load.shed,
        health: kind === 'removed' ? 'ready' : kind,
        breaker: breakerStateOf(kind),
        ejected: kind === 'ejected',
        loadReport: ep.reported.current(now),
        malformedLoadReports: ep.reported.malformed,
        concurrencyLimit: ep.limit?.stats(),
      });
    }
    const probes = this.#set.probes;
    return {
      service: this.#service,
      balancer: this.#balancer.name,
      ...(probes === undefined ? {} : { probes: { ...probes } }),
      panic: this.#set.panic,
      ready: this.#set.availableCount,
      retryBudget: this.#budget.available(performance.now()),
      subset: this.#subset === undefined ? undefined : {
        mode: this.#subset.mode,
        size: this.#subset.subset.size,
        coordinate: this.#subset.coordinate,
        members: this.#set.size,
        backups: this.#subset.backups,
        candidates: this.#subset.candidates,
        joined: this.#subset.joined,
        left: this.#subset.left,
      },
      admission: this.#admission?.stats(performance.now()),
      discovery: {
        stale: this.#stale !== undefined,
        staleSince: this.#stale?.since,
        lastConfirmedAt: this.#snapshot?.updatedAt,
        source: this.#snapshot?.source,
      },
      hedges: { ...this.#hedging.counts },
      endpoints,
    };
  }

  /**
   * Stops watching and takes no new requests; lets requests in progress
   * finish (retries included) within `drainTimeoutMs`, then closes every
   * pool (destroying what is still open). Idempotent; later calls reject with
   * `ClosedError`. No timer or socket remains once it resolves.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#telemetry.close();
    this.#closing = (async () => {
      await this.#watch.close().catch(() => undefined);
      await this.#peers?.close().catch(() => undefined);
      if (this.#calls.size > 0) {
        // Until the last call finishes or drainTimeoutMs passes (then the pools are cut); the requests, not the timer, hold the process.
        const idle = (): Promise<void> => new Promise<void>((resolve) => (this.#idle = resolve));
        await withDeadline(undefined, this.#options.drainTimeoutMs, idle, { settleAtDeadline: true, background: true }).catch(() => undefined);
      }
      await this.#set.close(this.#options.drainTimeoutMs);
      if (this.#calls.size === 0) this.#timers.clear(); // else the last call to finish clears it
    })();
    return this.#closing;
  }

  /**
   * Fails every request in progress at once (with `error`, default
   * `ClosedError`), destroys every pool and stops every timer. Idempotent;
   * a later `close()` resolves when this is done.
   */
  destroy(error?: Error): Promise<void> {
    if (this.#destroyError === undefined && !(this.#closing && this.#calls.size === 0)) {
      this.#destroyError = error ?? new ClosedError(`Client for "${this.#service}" was destroyed; its request`);
    }
    this.#closed = true;
    this.#telemetry.close();
    this.#calls.stopAll('destroyed');
    const destroying = (async () => {
      await this.#watch.close().catch(() => undefined);
      await this.#peers?.close().catch(() => undefined);
      await this.#set.destroy();
      if (this.#calls.size === 0) this.#timers.clear();
    })();
    this.#closing ??= destroying;
    this.#idle?.();
    return destroying;
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
