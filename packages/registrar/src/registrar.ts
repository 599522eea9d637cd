import { EventEmitter } from 'eventemitter3';
import {
  type ConfigWarning,
  AbortedError,
  ClosedError,
  InvalidOptionError,
  ProxylessError,
  RegistrationLostError,
  TimeoutError,
  backoffDelay,
  type RegistryPort,
  type RegistryReport,
} from '@proxyless/core';
import { checkHeartbeat, formatConfigWarning, retryWithBackoff, sleep, withDeadline } from '@proxyless/core/internal';
import {
  resolveRegistrarOptions,
  truncateOutput,
  type CheckStatus,
  type HealthReport,
  type RegistrarOptions,
  type RegistrarState,
  type ResolvedRegistrarOptions,
} from './options.js';
import { asError, nextBeat, retryOptions, type LostReason } from './heartbeat.js';
import { ConsulRegistry } from './registry-consul.js';
import { ShutdownCoordinator, type ShutdownOptions, type ShutdownParticipant } from './shutdown.js';

/** What this instance is registered as. */
export interface RegistrationInfo {
  /** Service name. */
  readonly name: string;
  /** Instance ID. */
  readonly id: string;
  /** Advertised address. */
  readonly address: string;
  /** Advertised port. */
  readonly port: number;
  /** TTL check ID. */
  readonly checkId: string;
}

/** One heartbeat the agent accepted. */
export interface HeartbeatInfo {
  /** Status sent. */
  readonly status: CheckStatus;
  /** Output sent (truncated to 4 KiB). */
  readonly output: string;
  /** `Date.now()` when the agent accepted it. */
  readonly at: number;
}

/** Events of a {@link Registrar}; names are camelCase, payloads typed. */
export interface RegistrarEvents {
  /** First successful registration after {@link Registrar.start}. */
  registered: [info: RegistrationInfo];
  /** The agent accepted a heartbeat. */
  heartbeat: [beat: HeartbeatInfo];
  /**
   * The registration is gone (`unknown-check`: Consul forgot the check, or etcd the lease or key) or the registry is unreachable;
   * re-registration starts at once. A port may first retry a beat while the registration can still be alive (etcd: until its
   * lease could have expired, so a leader election is not a loss); each failed try is an `error` event meanwhile.
   */
  lost: [reason: LostReason, error: Error];
  /** Registered again after `lost`. */
  reregistered: [info: RegistrationInfo];
  /** A failed agent call or health function (also kept as {@link Registrar.lastError}). */
  error: [error: Error];
  /** Deregistered by {@link Registrar.stop}. */
  deregistered: [info: RegistrationInfo];
  /** Maintenance mode was switched on or off. */
  maintenance: [enabled: boolean, reason: string | undefined];
  /** Every state transition. */
  stateChange: [state: RegistrarState, previous: RegistrarState];
  /** The configuration doctor found a setting that hurts in production (heartbeat vs TTL); the warning names the fix. */
  configWarning: [warning: ConfigWarning];
}

/** Per-call options. */
export interface RegistrarCallOptions {
  /** Caller cancellation. */
  signal?: AbortSignal;
  /** Time limit of the whole call, in ms. */
  timeoutMs?: number;
}

const statusRank: Record<CheckStatus, number> = { passing: 0, warning: 1, critical: 2 };

function normalizeReport(report: HealthReport): { status: CheckStatus; output: string } {
  if (typeof report === 'string') return { status: report, output: '' };
  return { status: report.status, output: report.output ?? '' };
}

function isCheckStatus(value: unknown): value is CheckStatus {
  return value === 'passing' || value === 'warning' || value === 'critical';
}

/** One registration's run, from {@link Registrar.start} until {@link Registrar.stop}. */
interface Session {
  /** Aborted by stop() and close(): ends beats, retries and recovery. */
  readonly controller: AbortController;
  /** The start() in progress or done. */
  started: Promise<void>;
  /** The next beat. */
  timer: NodeJS.Timeout | undefined;
  /** Beats and recoveries, one at a time. */
  chain: Promise<void>;
  /** Aborts the beat in flight (drain() does not wait behind a beat a port keeps retrying). */
  beat: AbortController | undefined;
  /** Fixed-rate schedule origin and the last slot used. */
  anchor: number;
  beatIndex: number;
}

/** The registrar's state: one value, each variant carrying what only it needs. */
type Phase =
  | { readonly kind: 'idle' }
  | { readonly kind: 'registering'; readonly session: Session }
  | { readonly kind: 'registered'; readonly session: Session }
  | { readonly kind: 'lost'; readonly session: Session; readonly recovery: AbortController }
  | { readonly kind: 'deregistering' }
  | { readonly kind: 'deregistered' }
  | { readonly kind: 'closed' };

/** What the app asked for; survives re-registrations. */
interface Intent {
  manual: { status: CheckStatus; output: string } | undefined;
  draining: boolean;
  maintenance: { reason: string | undefined } | undefined;
}

const never = new AbortController().signal;

/**
 * Owns one service registration and keeps it alive: the lifecycle (start,
 * heartbeats, recovery when the registry forgets the instance, maintenance,
 * drain, confirmation that clients stopped seeing it, deregistration, signals)
 * is this class; what talks to the registry is a {@link RegistryPort}: Consul
 * by default (a TTL check in the local agent), etcd with `registry: etcdRegistry()`
 * from `@proxyless/etcd` (a key with a lease).
 *
 * {@link Registrar.start} registers (call it once the app is ready to serve)
 * and sends the first heartbeat at once; heartbeats then run on a fixed-rate,
 * jittered, unref'd timer at about TTL/3. A beat that finds the registration
 * gone re-registers at once; while the registry is unreachable the registrar
 * retries with capped backoff, forever, and re-registers when it is back. A
 * registry that is slow but may still hold the registration (an etcd leader
 * election, shorter than the lease) is retried within the beat, not declared lost.
 * Recovery never holds up a shutdown: {@link Registrar.drain} and
 * {@link Registrar.stop} cancel it.
 *
 * ## Events
 *
 * Subscribe with `on(name, listener)`; the listener's arguments are typed by {@link RegistrarEvents}.
 *
 * - {@link RegistrarEvents.registered | `registered`} `(info)`: First successful registration after {@link Registrar.start}.
 * - {@link RegistrarEvents.heartbeat | `heartbeat`} `(beat)`: The agent accepted a heartbeat.
 * - {@link RegistrarEvents.lost | `lost`} `(reason, error)`: The registration is gone (`unknown-check`: Consul forgot the check, or etcd the lease or key) or the registry is unreachable; re-registration starts at once. A port may first retry a beat while the registration can still be alive (etcd: until its lease could have expired, so a leader election is not a loss); each failed try is an `error` event meanwhile.
 * - {@link RegistrarEvents.reregistered | `reregistered`} `(info)`: Registered again after `lost`.
 * - {@link RegistrarEvents.error | `error`} `(error)`: A failed agent call or health function (also kept as {@link Registrar.lastError}).
 * - {@link RegistrarEvents.deregistered | `deregistered`} `(info)`: Deregistered by {@link Registrar.stop}.
 * - {@link RegistrarEvents.maintenance | `maintenance`} `(enabled, reason)`: Maintenance mode was switched on or off.
 * - {@link RegistrarEvents.stateChange | `stateChange`} `(state, previous)`: Every state transition.
 * - {@link RegistrarEvents.configWarning | `configWarning`} `(warning)`: The configuration doctor found a setting that hurts in production (heartbeat vs TTL); the warning names the fix.
 *
 * @example
 * ```ts
 * const registrar = new Registrar({ name: 'web', port: 8080, ttlMs: 15_000 });
 * registrar.on('lost', (reason) => console.warn('registration lost:', reason));
 * server.listen(8080, () => void registrar.start());
 * registrar.handleSignals({ servers: [server] }); // drain + deregister on SIGTERM
 * ```
 */
export class Registrar extends EventEmitter<RegistrarEvents> implements ShutdownParticipant {
  /** The validated options, with defaults applied. */
  readonly options: ResolvedRegistrarOptions;
  /** The registry this registrar talks to. */
  readonly registry: RegistryPort;
  #phase: Phase = { kind: 'idle' };
  readonly #intent: Intent = { manual: undefined, draining: false, maintenance: undefined };
  #lastError: Error | undefined;
  #closing: Promise<void> | undefined;
  /** Set while a failure streak has been reported through the logger; cleared (with an info line) by the next success. */
  #outage = false;
  /**
   * Whether the registry may hold this registration: a register call was sent and did not fail
   * before reaching it. False until then, so a shutdown neither drains nor deregisters (nor
   * claims anything about) an instance the registry never saw.
   */
  #maybeRegistered = false;

  /**
   * Validates every option; nothing is sent to the registry until {@link Registrar.start}.
   * @throws InvalidOptionError naming the option and the rejected value.
   */
  constructor(options: RegistrarOptions) {
    super();
    this.options = resolveRegistrarOptions(options);
    const o = this.options;
    const warnings = checkHeartbeat({ ttlMs: o.ttlMs, heartbeatIntervalMs: o.heartbeatIntervalMs, requestTimeoutMs: o.requestTimeoutMs });
    // On the next tick: listeners attached right after construction hear them too.
    if (warnings.length > 0) {
      process.nextTick(() => {
        for (const w of warnings) {
          this.emit('configWarning', w);
          o.logger?.warn(formatConfigWarning(`registrar "${o.id}"`, w));
        }
      });
    }
    const factory = options.registry;
    if (factory !== undefined) {
      if (typeof factory !== 'function') throw new InvalidOptionError('registry', factory, 'must be a registry factory, e.g. etcdRegistry()');
      if (options.consul !== undefined) throw new InvalidOptionError('consul', '<set>', 'cannot be combined with the registry option');
      this.registry = factory({
        name: o.name,
        id: o.id,
        address: o.address,
        port: o.port,
        tags: o.tags,
        meta: o.meta,
        weights: o.weights,
        ttlMs: o.ttlMs,
        heartbeatIntervalMs: o.heartbeatIntervalMs,
      });
    } else {
      this.registry = new ConsulRegistry(this.options, options.consul ?? {});
    }
  }

  /** The current state. */
  get state(): RegistrarState {
    return this.#phase.kind;
  }

  /** The last error reported through the `error` event, if any. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  /** What this instance is registered as. */
  get registration(): RegistrationInfo {
    const { name, id, address, port, checkId } = this.options;
    return { name, id, address, port, checkId };
  }

  /** True while draining (the check reports critical for shutdown). */
  get draining(): boolean {
    return this.#intent.draining;
  }

  /** True while maintenance mode is on. */
  get maintenance(): boolean {
    return this.#intent.maintenance !== undefined;
  }

  #session(): Session | undefined {
    const p = this.#phase;
    return p.kind === 'registering' || p.kind === 'registered' || p.kind === 'lost' ? p.session : undefined;
  }

  #call(signal: AbortSignal, timeoutMs = this.options.requestTimeoutMs): { signal: AbortSignal; timeoutMs: number } {
    return { signal, timeoutMs };
  }

  /**
   * Registers the instance and starts heartbeating. Resolves once the registry
   * has accepted the registration and the first heartbeat. Unreachable
   * registries and retryable answers (429, 5xx, no leader) are retried with
   * backoff until `signal` or `timeoutMs` ends the wait; refusals (400, 403,
   * bad credentials) reject at once. Idempotent while running.
   * @throws ConsulApiError / EtcdApiError, TimeoutError, AbortedError, ClosedError.
   */
  start(options: RegistrarCallOptions = {}): Promise<void> {
    if (this.#phase.kind === 'closed') return Promise.reject(new ClosedError('Registrar'));
    const running = this.#session();
    if (running) return running.started;
    const session: Session = { controller: new AbortController(), started: Promise.resolve(), timer: undefined, chain: Promise.resolve(), beat: undefined, anchor: 0, beatIndex: 0 };
    session.started = this.#start(session, options);
    session.started.catch(() => undefined);
    return session.started;
  }

  #start(session: Session, options: RegistrarCallOptions): Promise<void> {
    this.#enter({ kind: 'registering', session });
    // The caller's signal and deadline as one signal (withDeadline: one timer, gone when start settles).
    if (options.timeoutMs === undefined) return this.#firstRegistration(session, options, options.signal ?? never);
    return withDeadline(options.signal, options.timeoutMs, (caller) => this.#firstRegistration(session, options, caller));
  }

  /** The registration start() waits for; `caller` aborts on the caller's signal or deadline. */
  async #firstRegistration(session: Session, options: RegistrarCallOptions, caller: AbortSignal): Promise<void> {
    const run = session.controller;
    const startSignal = AbortSignal.any([run.signal, caller]);
    // stop() ends the retries (run.signal) but lets a register call in flight finish: aborting it
    // would not un-send it, and landing after stop()'s deregister it would leave the registration behind.
    const registerSignal = caller;
    const retrying =
      options.timeoutMs === undefined
        ? 'retrying until it answers (start({ timeoutMs }) gives up instead)'
        : `retrying for up to ${options.timeoutMs} ms`;
    let lastFailure: unknown;
    try {
      await retryWithBackoff(
        async () => {
          const report = await this.#evaluate();
          await this.#register(report, registerSignal);
          await this.#heartbeat(report, startSignal);
        },
        retryOptions(
          this.options.retryMinDelayMs,
          this.options.retryMaxDelayMs,
          startSignal,
          (error) => {
            // The call cut short by the deadline itself says nothing about why it was not met.
            if (!startSignal.aborted) lastFailure = error;
            this.#reportError(error);
            if (!startSignal.aborted) this.#warnOnce(error, this.#retryable(error) ? retrying : 'not retrying');
          },
          (error) => this.#retryable(error),
        ),
      );
    } catch (error) {
      if (this.#phase.kind === 'registering' && this.#phase.session === session) this.#enter({ kind: 'idle' });
      // A refusal (400, 403, bad credentials) is the answer; anything else after the signal fired is a timeout or an abort.
      const refusal = error instanceof ProxylessError && !this.registry.isUnreachable(error) && error.code !== 'ERR_ABORTED' && error.code !== 'ERR_CLOSED';
      if (startSignal.aborted && !refusal) {
        if (options.timeoutMs !== undefined && !run.signal.aborted && !options.signal?.aborted) {
          throw this.#startTimeout(options.timeoutMs, lastFailure ?? error);
        }
        throw new AbortedError('Registrar.start', error);
      }
      throw error;
    }
    if (run.signal.aborted) throw new AbortedError('Registrar.start');
    this.#backToNormal(`registered ${this.options.id}`);
    this.#enter({ kind: 'registered', session });
    this.emit('registered', this.registration);
    session.anchor = Date.now();
    session.beatIndex = 0;
    this.#schedule(session);
  }

  async #register(report: RegistryReport, signal: AbortSignal): Promise<void> {
    try {
      await this.registry.register(report, this.#call(signal));
      this.#maybeRegistered = true;
    } catch (error) {
      // Unreachable (refused, no route, name not found) means the call never arrived; a timeout may have been applied.
      if (!this.registry.isUnreachable(error) || error instanceof TimeoutError) this.#maybeRegistered = true;
      throw error;
    }
  }

  /**
   * Whether the registry may hold this instance (a registration was sent and
   * not refused on the way). A {@link ShutdownCoordinator} skips instances that
   * were never registered.
   */
  get maybeRegistered(): boolean {
    return this.#maybeRegistered;
  }

  #retryable(error: unknown): boolean {
    return this.registry.isRetryable(error);
  }

  #schedule(session: Session): void {
    if (session.controller.signal.aborted) return;
    const { index, delayMs } = nextBeat(session.anchor, this.options.heartbeatIntervalMs, session.beatIndex, Date.now(), this.options.jitter);
    session.beatIndex = index;
    session.timer = setTimeout(() => {
      session.timer = undefined;
      void this.#enqueueBeat(session).finally(() => this.#schedule(session));
    }, delayMs);
    // A heartbeat alone must not keep the process alive.
    session.timer.unref();
  }

  /** Queues one beat behind any beat or recovery in progress; beats never overlap. */
  #enqueueBeat(session: Session): Promise<void> {
    const beat = session.chain.then(() => this.#beatOnce(session));
    session.chain = beat.catch(() => undefined);
    return beat;
  }

  async #heartbeat(report: RegistryReport, signal: AbortSignal): Promise<void> {
    // A port may retry within the beat while the registration can still be alive (etcd: a leader election): each failed try is reported.
    const onRetry = (error: unknown): void => {
      this.#reportError(error);
      this.#warnOnce(error, 'retrying while the registration can still be alive');
    };
    await this.registry.heartbeat(report, { ...this.#call(signal), onRetry });
    this.emit('heartbeat', { status: report.status, output: report.output, at: Date.now() });
  }

  async #beatOnce(session: Session): Promise<void> {
    if (session.controller.signal.aborted) return;
    const beat = new AbortController();
    session.beat = beat;
    const signal = AbortSignal.any([session.controller.signal, beat.signal]);
    const report = await this.#evaluate();
    try {
      // Draining: one call deadline per beat, never the retries of a registration that may still live (they would hold up the shutdown).
      if (this.#intent.draining) await withDeadline(signal, this.options.requestTimeoutMs, (limit) => this.#heartbeat(report, limit));
      else await this.#heartbeat(report, signal);
      this.#backToNormal('heartbeats accepted again');
    } catch (error) {
      if (session.controller.signal.aborted || beat.signal.aborted) return;
      // Shutting down: report, never start a recovery that the shutdown would wait behind.
      const recoverable = !this.#intent.draining && (error instanceof RegistrationLostError || this.registry.isUnreachable(error));
      // The registry's own answer (e.g. Consul's 404) is what listeners get, when there is one.
      const reported = error instanceof RegistrationLostError && error.cause instanceof Error ? error.cause : error;
      if (recoverable) await this.#recover(error instanceof RegistrationLostError ? 'unknown-check' : 'unreachable', reported, session);
      else {
        this.#reportError(error);
        this.#warnOnce(error, this.#intent.draining ? 'draining goes on' : 'heartbeats go on');
      }
    } finally {
      if (session.beat === beat) session.beat = undefined;
    }
  }

  async #recover(reason: LostReason, error: unknown, session: Session): Promise<void> {
    this.#reportError(error);
    if (reason === 'unknown-check') {
      if (!this.#outage) this.#log('warn', `${this.registry.label} no longer knows ${this.options.id}; registering again`);
      this.#outage = true;
    } else {
      this.#warnOnce(error, 're-registering when it answers');
    }
    const recovery = new AbortController();
    this.#enter({ kind: 'lost', session, recovery });
    this.emit('lost', reason, asError(error));
    const signal = AbortSignal.any([session.controller.signal, recovery.signal]);
    try {
      await retryWithBackoff(async () => {
        // Re-evaluated per attempt: a status set during the outage is what gets registered.
        const report = await this.#evaluate();
        if (signal.aborted) return;
        await this.#register(report, never); // not aborted by stop(): see #start
        if (this.#intent.maintenance) await this.registry.setMaintenance(true, this.#intent.maintenance.reason, this.#call(signal));
        await this.#heartbeat(report, signal);
      }, retryOptions(this.options.retryMinDelayMs, this.options.retryMaxDelayMs, signal, (e) => this.#reportError(e)));
    } catch (failure) {
      if (signal.aborted) return;
      this.#reportError(failure);
      return;
    }
    if (signal.aborted) return;
    this.#backToNormal(`registered ${this.options.id} again`);
    this.#enter({ kind: 'registered', session });
    this.emit('reregistered', this.registration);
  }

  /** The status of the next beat: the worst of drain, the app's {@link Registrar.setStatus} and the health function. */
  async #evaluate(): Promise<{ status: CheckStatus; output: string }> {
    if (this.#intent.draining) return { status: 'critical', output: 'draining: out of rotation for shutdown' };
    let result = this.#intent.manual ?? { status: 'passing' as CheckStatus, output: '' };
    const health = this.options.health;
    if (health) {
      let fromHealth: { status: CheckStatus; output: string };
      try {
        // Settled at the deadline even if the app's function ignores its signal; the timer does not hold the process.
        const report = await withDeadline(undefined, this.options.requestTimeoutMs, (signal) => Promise.resolve(health(signal)), {
          settleAtDeadline: true,
          background: true,
          what: 'health function',
        });
        fromHealth = normalizeReport(report);
        if (!isCheckStatus(fromHealth.status)) {
          fromHealth = { status: 'critical', output: `health function returned an invalid status: ${String(fromHealth.status)}` };
        }
      } catch (error) {
        fromHealth = { status: 'critical', output: `health function failed: ${asError(error).message}` };
      }
      const worse = statusRank[fromHealth.status] - statusRank[result.status];
      if (worse > 0 || (worse === 0 && fromHealth.output !== '')) result = fromHealth;
    }
    return { status: result.status, output: truncateOutput(result.output) };
  }

  #log(level: 'warn' | 'info', message: string): void {
    this.options.logger?.[level](`proxyless registrar ${this.options.id}: ${message}`);
  }

  /** One line per failure streak: what failed at the registry, what to do, and what happens next. */
  #warnOnce(error: unknown, next: string): void {
    if (this.#outage) return;
    this.#outage = true;
    this.#log('warn', `${this.registry.describeFailure(error, this.options.name)}; ${next}`);
  }

  #backToNormal(what: string): void {
    if (!this.#outage) return;
    this.#outage = false;
    this.#log('info', `${this.registry.label} answers again: ${what}`);
  }

  /** The rejection of a timed-out start(): says why it could not register, not just that time ran out. */
  #startTimeout(timeoutMs: number, failure: unknown): TimeoutError {
    const error = new TimeoutError('Registrar.start', timeoutMs, failure);
    if (failure !== undefined) {
      error.message += `: ${this.registry.describeFailure(failure, this.options.name)}`;
      // The stack's first line was rendered from the shorter message.
      Error.captureStackTrace(error, this.#startTimeout);
    }
    return error;
  }

  #reportError(error: unknown): void {
    const e = asError(error);
    this.#lastError = e;
    this.emit('error', e);
  }

  #enter(phase: Phase): void {
    const previous = this.#phase.kind;
    this.#phase = phase;
    if (previous !== phase.kind) this.emit('stateChange', phase.kind, previous);
  }

  #assertOpen(): void {
    if (this.#phase.kind === 'closed') throw new ClosedError('Registrar');
  }

  /** Beats now if registered (or recovering); resolves when that beat is done. */
  async #beatNow(): Promise<void> {
    const p = this.#phase;
    if (p.kind === 'registered' || p.kind === 'lost') await this.#enqueueBeat(p.session);
  }

  /**
   * Sets the status the app reports (for example `warning` while degraded) and
   * sends a heartbeat with it at once. With a health function, the worse of
   * the two wins. `setStatus('passing')` clears a degradation.
   * Resolves when the beat is done (its failures go to the `error` event).
   */
  async setStatus(status: CheckStatus, output = ''): Promise<void> {
    this.#assertOpen();
    if (!isCheckStatus(status)) throw new InvalidOptionError('status', status, 'must be passing, warning or critical');
    this.#intent.manual = status === 'passing' && output === '' ? undefined : { status, output };
    await this.#beatNow();
  }

  /**
   * Takes the instance out of rotation (status `critical`, output `draining…`)
   * and keeps it so on every beat, so watchers drop it while the app still
   * serves. Cancels a recovery in progress rather than waiting behind it.
   * Resolves once the registry has the critical status (or refused it: see the
   * `error` event). Used by the {@link ShutdownCoordinator}.
   */
  async drain(): Promise<void> {
    this.#assertOpen();
    this.#intent.draining = true;
    const p = this.#phase;
    if (p.kind === 'lost') p.recovery.abort();
    // A beat still retrying (the registry slow, the registration still alive) gives way to the draining beat.
    if (p.kind === 'registered') p.session.beat?.abort();
    await this.#beatNow();
  }

  /** Switches maintenance mode on (Consul: a critical `_service_maintenance:<id>` check; etcd: `health: critical`). */
  async enableMaintenance(reason?: string, options: RegistrarCallOptions = {}): Promise<void> {
    this.#assertOpen();
    await this.registry.setMaintenance(true, reason, this.#call(options.signal ?? never));
    this.#intent.maintenance = { reason };
    this.emit('maintenance', true, reason);
  }

  /** Switches maintenance mode off. */
  async disableMaintenance(options: RegistrarCallOptions = {}): Promise<void> {
    this.#assertOpen();
    await this.registry.setMaintenance(false, undefined, this.#call(options.signal ?? never));
    this.#intent.maintenance = undefined;
    this.emit('maintenance', false, undefined);
  }

  /**
   * Waits until clients no longer see this instance as healthy (Consul: absent
   * from the passing health query, on core's blocking-query loop; etcd: key
   * gone or critical, confirmed by a watch). Transient failures are retried
   * until the deadline and reported through the `error` event.
   * @returns `true` once it is gone, `false` if `timeoutMs` (default 5000) ran out first.
   * @throws `AbortedError` (`ERR_ABORTED`) when `signal` aborts.
   */
  async waitUntilNotPassing(options: RegistrarCallOptions = {}): Promise<boolean> {
    this.#assertOpen();
    const gone = await this.registry.waitUntilGone({ signal: options.signal ?? never, timeoutMs: options.timeoutMs ?? 5000 }, (error) => this.#reportError(error));
    if (!gone && options.signal?.aborted) throw new AbortedError('waitUntilNotPassing', options.signal.reason);
    return gone;
  }

  /**
   * Stops heartbeating (and any recovery) and deregisters (already gone counts
   * as done). Retryable failures are retried until `timeoutMs` (default 5000).
   * Resolves at once when not registered.
   * @throws the last registry error when deregistration did not succeed in time.
   */
  async stop(options: RegistrarCallOptions = {}): Promise<void> {
    const kind = this.#phase.kind;
    if (kind === 'closed' || kind === 'idle' || kind === 'deregistered') return;
    const session = this.#session();
    if (session) {
      session.controller.abort();
      if (session.timer) clearTimeout(session.timer);
      session.timer = undefined;
      await session.started.catch(() => undefined);
      await session.chain;
    }
    if (!this.#maybeRegistered) {
      // Never reached the registry: nothing to deregister, and no failure to report about it.
      this.#intent.draining = false;
      this.#enter({ kind: 'idle' });
      return;
    }
    this.#enter({ kind: 'deregistering' });
    const deadline = Date.now() + (options.timeoutMs ?? 5000);
    for (let attempt = 0; ; attempt++) {
      const remaining = deadline - Date.now();
      try {
        await this.registry.deregister(this.#call(options.signal ?? never, Math.max(1, Math.min(this.options.requestTimeoutMs, remaining))));
        break;
      } catch (error) {
        this.#reportError(error);
        const wait = backoffDelay(attempt, { initialMs: this.options.retryMinDelayMs, maxMs: 1000 });
        if (!this.#retryable(error) || options.signal?.aborted || Date.now() + wait >= deadline) {
          this.#enter({ kind: 'idle' });
          throw error;
        }
        await sleep(wait, options.signal);
      }
    }
    this.#intent.draining = false;
    this.#intent.maintenance = undefined;
    this.#maybeRegistered = false;
    this.#enter({ kind: 'deregistered' });
    this.emit('deregistered', this.registration);
  }

  /**
   * Installs a {@link ShutdownCoordinator} for this registrar: on SIGTERM or
   * SIGINT, drain, deregister, close `servers`, run hooks, exit.
   */
  handleSignals(options: Omit<ShutdownOptions, 'registrars'> = {}): ShutdownCoordinator {
    const coordinator = new ShutdownCoordinator({ ...options, registrars: [this] });
    coordinator.install();
    return coordinator;
  }

  /**
   * Deregisters if registered (errors go to the `error` event), stops every
   * timer and closes the registry client if the registrar created it. Idempotent.
   */
  close(options: RegistrarCallOptions = {}): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.stop(options);
      } catch {
        // already reported through 'error'
      }
      this.#session()?.controller.abort();
      this.#enter({ kind: 'closed' });
      await this.registry.close();
    })();
    return this.#closing;
  }

  /** Same as {@link Registrar.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
