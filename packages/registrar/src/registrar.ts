/**
 * The registrar's lifecycle: states, events, and what the app calls (start,
 * setStatus, maintenance, drain, waitUntilOutOfRotation, stop, close,
 * handleSignals). The beats and the recovery of a run are `heartbeat.ts`;
 * the registry behind it is a {@link RegistryPort}.
 * @module
 */
import { EventEmitter } from 'eventemitter3';
import {
  AbortedError,
  ClosedError,
  InvalidOptionError,
  TimeoutError,
  backoffDelay,
  type RegistryPort,
  type RegistryReport,
} from '@proxyless/core';
import { checkHeartbeat, formatConfigWarning, sleep, withDeadline } from '@proxyless/core/internal';
import { asError } from './as-error.js';
import { Session, type SessionHost } from './heartbeat.js';
import { isCheckStatus, type CheckStatus, type Intent } from './health.js';
import { resolveRegistrarOptions, type RegistrarOptions, type ResolvedRegistrarOptions } from './options.js';
import { OutageLog } from './outage-log.js';
import type { RegistrarCallOptions, RegistrarEvents, RegistrarState, RegistrationInfo } from './registrar-events.js';
import { consulRegistry } from './registry-consul.js';
import { ShutdownCoordinator, type ShutdownOptions, type ShutdownParticipant } from './shutdown.js';

/** The registrar's state: one value, each variant carrying what only it needs. */
type Phase =
  | { readonly kind: 'idle' }
  | { readonly kind: 'registering'; readonly session: Session }
  | { readonly kind: 'registered'; readonly session: Session }
  | { readonly kind: 'lost'; readonly session: Session; readonly recovery: AbortController }
  | { readonly kind: 'deregistering' }
  | { readonly kind: 'deregistered' }
  | { readonly kind: 'closed' };

const never = new AbortController().signal;

/**
 * Owns one service registration and keeps it alive: the lifecycle (start,
 * heartbeats, recovery when the registry forgets the instance, maintenance,
 * drain, confirmation that clients stopped seeing it, deregistration, signals)
 * is this class; what talks to the registry is a {@link RegistryPort}:
 * {@link consulRegistry} by default (a TTL check in the local agent), or
 * `etcdRegistry()` from `@proxyless/etcd` (a key with a lease).
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
 * - {@link RegistrarEvents.heartbeat | `heartbeat`} `(beat)`: The registry accepted a heartbeat.
 * - {@link RegistrarEvents.lost | `lost`} `(reason, error)`: The registration is gone (`expired` or `forgotten`, see {@link LostReason}) or the registry is unreachable; re-registration starts at once. A registry may first retry a beat while the registration can still be alive (etcd: until its lease could have expired, so a leader election is not a loss); each failed try is an `error` event meanwhile.
 * - {@link RegistrarEvents.reregistered | `reregistered`} `(info)`: Registered again after `lost`.
 * - {@link RegistrarEvents.error | `error`} `(error)`: A failed registry call or health function (also kept as {@link Registrar.lastError}).
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
  readonly #outage: OutageLog;
  #lastError: Error | undefined;
  #closing: Promise<void> | undefined;
  /**
   * Whether the registry may hold this registration: a register call was sent and did not fail
   * before reaching it. False until then, so a shutdown neither drains nor deregisters (nor
   * claims anything about) an instance the registry never saw.
   */
  #maybeRegistered = false;
  /** What a run's beats and recovery may touch of this registrar. */
  readonly #host: SessionHost;

  /**
   * Validates every option; nothing is sent to the registry until {@link Registrar.start}.
   * @throws InvalidOptionError naming the option and the rejected value; for a
   *   setting that moved to a registry (`consul`, `checkId`, …), naming where it went.
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
    const factory = options.registry ?? consulRegistry();
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
    this.#outage = new OutageLog(o.logger, o.id, this.registry.label);
    this.#host = {
      registry: this.registry,
      options: o,
      intent: this.#intent,
      outage: this.#outage,
      register: (report, signal) => this.#register(report, signal),
      reportError: (error) => this.#reportError(error),
      accepted: (beat) => this.emit('heartbeat', beat),
      lost: (reason, error, recovery) => {
        const session = this.#session();
        if (session) this.#enter({ kind: 'lost', session, recovery });
        this.emit('lost', reason, error);
      },
      recovered: () => {
        const session = this.#session();
        if (session) this.#enter({ kind: 'registered', session });
        this.emit('reregistered', this.registration);
      },
    };
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
    const { name, id, address, port } = this.options;
    return { name, id, address, port, registry: this.registry.kind, registrationId: this.registry.registrationId };
  }

  /** True while draining (beats report critical for shutdown). */
  get draining(): boolean {
    return this.#intent.draining;
  }

  /** True while maintenance mode is on. */
  get maintenance(): boolean {
    return this.#intent.maintenance !== undefined;
  }

  /**
   * Whether the registry may hold this instance (a registration was sent and
   * not refused on the way). A {@link ShutdownCoordinator} skips instances that
   * were never registered.
   */
  get maybeRegistered(): boolean {
    return this.#maybeRegistered;
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
    const session = new Session(this.#host);
    session.started = this.#start(session, options);
    session.started.catch(() => undefined);
    return session.started;
  }

  async #start(session: Session, options: RegistrarCallOptions): Promise<void> {
    this.#enter({ kind: 'registering', session });
    try {
      // The caller's signal and deadline as one signal (withDeadline: one timer, gone when start settles).
      if (options.timeoutMs === undefined) await session.register(options, options.signal ?? never);
      else await withDeadline(options.signal, options.timeoutMs, (caller) => session.register(options, caller));
    } catch (error) {
      if (this.#phase.kind === 'registering' && this.#phase.session === session) this.#enter({ kind: 'idle' });
      throw error;
    }
    if (session.signal.aborted) throw new AbortedError('Registrar.start');
    this.#outage.backToNormal(`registered ${this.options.id}`);
    this.#enter({ kind: 'registered', session });
    this.emit('registered', this.registration);
    session.beatOnSchedule();
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
    if (p.kind === 'registered' || p.kind === 'lost') await p.session.beatNow();
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
    if (p.kind === 'registered') p.session.abortBeat();
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
   * @returns `true` once it is out of rotation, `false` if `timeoutMs` (default 5000) ran out first.
   * @throws `AbortedError` (`ERR_ABORTED`) when `signal` aborts.
   */
  async waitUntilOutOfRotation(options: RegistrarCallOptions = {}): Promise<boolean> {
    this.#assertOpen();
    const out = await this.registry.waitUntilOutOfRotation(
      { signal: options.signal ?? never, timeoutMs: options.timeoutMs ?? 5000 },
      (error) => this.#reportError(error),
    );
    if (!out && options.signal?.aborted) throw new AbortedError('waitUntilOutOfRotation', options.signal.reason);
    return out;
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
    await this.#session()?.stop();
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
        const wait = backoffDelay(attempt, { initialMs: this.options.retryInitialMs, maxMs: 1000 });
        if (!this.registry.isRetryable(error) || options.signal?.aborted || Date.now() + wait >= deadline) {
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
      this.#session()?.cancel();
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
