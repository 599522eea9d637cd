import { EventEmitter } from 'eventemitter3';
import {
  checkHeartbeat,
  formatConfigWarning,
  type ConfigWarning,
  AbortedError,
  BadResponseError,
  ClosedError,
  ConsulApiError,
  ConsulHttpClient,
  InvalidOptionError,
  TimeoutError,
  backoffDelay,
  retryWithBackoff,
  sleep,
  type RetryWithBackoffOptions,
  runBlockingQuery,
} from '@proxyless/core';
import {
  formatDuration,
  resolveRegistrarOptions,
  truncateOutput,
  type CheckStatus,
  type HealthReport,
  type RegistrarOptions,
  type ResolvedRegistrarOptions,
} from './options.js';
import { asError, isRetryable, isUnknownCheck, isUnreachable, nextBeat, retryOptions, type LostReason } from './heartbeat.js';
import { ShutdownCoordinator, type ShutdownOptions } from './shutdown.js';
import { describeAgentFailure } from './agent-report.js';

/**
 * Public lifecycle states of a {@link Registrar}.
 * - `idle`: constructed, or stopped after a failed deregistration;
 * - `registering`: {@link Registrar.start} is registering;
 * - `registered`: registered and heartbeating;
 * - `lost`: the agent forgot the registration or cannot be reached; re-registering with backoff;
 * - `deregistering` / `deregistered`: {@link Registrar.stop} in progress / done;
 * - `closed`: {@link Registrar.close} was called.
 */
export type RegistrarState = 'idle' | 'registering' | 'registered' | 'lost' | 'deregistering' | 'deregistered' | 'closed';

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
  /** The registration is gone (`unknown-check`) or the agent is unreachable; re-registration starts at once. */
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

/**
 * Owns one service registration in the local Consul agent and its TTL check.
 *
 * {@link Registrar.start} registers (call it once the app is ready to serve)
 * and sends the first heartbeat at once; heartbeats then run on a fixed-rate,
 * jittered, unref'd timer at about TTL/3. A beat that finds its check unknown
 * re-registers at once; while the agent is unreachable the registrar retries
 * with capped backoff, forever, and re-registers when the agent is back.
 *
 * @example
 * ```ts
 * const registrar = new Registrar({ name: 'web', port: 8080, ttlMs: 15_000 });
 * registrar.on('lost', (reason) => console.warn('registration lost:', reason));
 * server.listen(8080, () => void registrar.start());
 * registrar.handleSignals({ servers: [server] }); // drain + deregister on SIGTERM
 * ```
 */
export class Registrar extends EventEmitter<RegistrarEvents> {
  /** The validated options, with defaults applied. */
  readonly options: ResolvedRegistrarOptions;
  readonly #client: ConsulHttpClient;
  readonly #ownsClient: boolean;
  #state: RegistrarState = 'idle';
  #lastError: Error | undefined;
  #run: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();
  #anchor = 0;
  #beatIndex = 0;
  #manual: { status: CheckStatus; output: string } | undefined;
  #draining = false;
  #maintenance: { reason: string | undefined } | undefined;
  #started: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #recoverRetry: RetryWithBackoffOptions | undefined;
  /** Set while a failure streak has been reported through the logger; cleared (with an info line) by the next success. */
  #outage = false;

  /**
   * Validates every option; nothing is sent to the agent until {@link Registrar.start}.
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
    if (options.consul instanceof ConsulHttpClient) {
      this.#client = options.consul;
      this.#ownsClient = false;
    } else {
      this.#client = new ConsulHttpClient(options.consul ?? {});
      this.#ownsClient = true;
    }
  }

  /** The current state. */
  get state(): RegistrarState {
    return this.#state;
  }

  /** The last error reported through the `error` event, if any. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  /** What this instance registers as. */
  get registration(): RegistrationInfo {
    const { name, id, address, port, checkId } = this.options;
    return { name, id, address, port, checkId };
  }

  /** True while draining (the check reports critical for shutdown). */
  get draining(): boolean {
    return this.#draining;
  }

  /** True while maintenance mode is on. */
  get maintenance(): boolean {
    return this.#maintenance !== undefined;
  }

  /**
   * Registers the instance and starts heartbeating. Resolves once the agent
   * has accepted the registration and the first heartbeat. Unreachable agents,
   * 429 and 5xx answers are retried with backoff until `signal` or `timeoutMs`
   * ends the wait; 400 and 403 reject at once. Idempotent while running.
   * @throws ConsulApiError, TimeoutError, AbortedError, ClosedError.
   */
  start(options: RegistrarCallOptions = {}): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(new ClosedError('Registrar'));
    if (this.#started && this.#state !== 'idle' && this.#state !== 'deregistered') return this.#started;
    this.#started = this.#start(options);
    this.#started.catch(() => undefined);
    return this.#started;
  }

  async #start(options: RegistrarCallOptions): Promise<void> {
    const run = new AbortController();
    this.#run = run;
    this.#setState('registering');
    const signals = [run.signal];
    if (options.signal) signals.push(options.signal);
    if (options.timeoutMs !== undefined) signals.push(AbortSignal.timeout(options.timeoutMs));
    const startSignal = AbortSignal.any(signals);
    this.#recoverRetry = retryOptions(
      this.options.retryMinDelayMs,
      this.options.retryMaxDelayMs,
      run.signal,
      (error) => this.#reportError(error),
    );
    const retrying =
      options.timeoutMs === undefined
        ? 'retrying until it answers (start({ timeoutMs }) gives up instead)'
        : `retrying for up to ${options.timeoutMs} ms`;
    let lastFailure: unknown;
    try {
      await retryWithBackoff(
        async () => {
          const report = await this.#evaluate();
          await this.#register(report, startSignal);
          await this.#update(report, startSignal);
        },
        retryOptions(
          this.options.retryMinDelayMs,
          this.options.retryMaxDelayMs,
          startSignal,
          (error) => {
            lastFailure = error;
            this.#reportError(error);
            if (!startSignal.aborted) this.#warnOnce(error, isRetryable(error) ? retrying : 'not retrying');
          },
          isRetryable,
        ),
      );
    } catch (error) {
      if (this.#state === 'registering') this.#setState('idle');
      if (startSignal.aborted && !(error instanceof ConsulApiError)) {
        if (options.timeoutMs !== undefined && !run.signal.aborted && !options.signal?.aborted) {
          throw this.#startTimeout(options.timeoutMs, lastFailure ?? error);
        }
        throw new AbortedError('Registrar.start', error);
      }
      throw error;
    }
    if (run.signal.aborted) throw new AbortedError('Registrar.start');
    this.#backToNormal(`registered ${this.options.id}`);
    this.#setState('registered');
    this.emit('registered', this.registration);
    this.#anchor = Date.now();
    this.#beatIndex = 0;
    this.#schedule();
  }

  #schedule(): void {
    const run = this.#run;
    if (!run || run.signal.aborted) return;
    const { index, delayMs } = nextBeat(this.#anchor, this.options.heartbeatIntervalMs, this.#beatIndex, Date.now(), this.options.jitter);
    this.#beatIndex = index;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#enqueueBeat().finally(() => this.#schedule());
    }, delayMs);
    // A heartbeat alone must not keep the process alive.
    this.#timer.unref();
  }

  /** Queues one beat behind any beat or recovery in progress; beats never overlap. */
  #enqueueBeat(): Promise<void> {
    const beat = this.#chain.then(() => this.#beatOnce());
    this.#chain = beat.catch(() => undefined);
    return beat;
  }

  async #beatOnce(): Promise<void> {
    const run = this.#run;
    if (!run || run.signal.aborted) return;
    const report = await this.#evaluate();
    try {
      await this.#update(report, run.signal);
      this.#backToNormal('heartbeats accepted again');
    } catch (error) {
      if (run.signal.aborted) return;
      if (isUnknownCheck(error)) await this.#recover('unknown-check', error, run);
      else if (isUnreachable(error)) await this.#recover('unreachable', error, run);
      else {
        this.#reportError(error);
        this.#warnOnce(error, 'heartbeats go on');
      }
    }
  }

  async #recover(reason: LostReason, error: unknown, run: AbortController): Promise<void> {
    this.#reportError(error);
    if (reason === 'unknown-check') {
      if (!this.#outage) this.#log('warn', `the Consul agent at ${this.#client.connection.origin} no longer knows ${this.options.id}; registering again`);
      this.#outage = true;
    } else {
      this.#warnOnce(error, 're-registering when it answers');
    }
    this.#setState('lost');
    this.emit('lost', reason, asError(error));
    try {
      await retryWithBackoff(async () => {
        // Re-evaluated per attempt: a drain that started during the outage registers as critical.
        const report = await this.#evaluate();
        await this.#register(report, run.signal);
        if (this.#maintenance) await this.#putMaintenance(true, this.#maintenance.reason, run.signal);
        await this.#update(report, run.signal);
      }, this.#recoverRetry ?? retryOptions(this.options.retryMinDelayMs, this.options.retryMaxDelayMs, run.signal, (e) => this.#reportError(e)));
    } catch (failure) {
      if (run.signal.aborted) return;
      this.#reportError(failure);
      return;
    }
    if (run.signal.aborted) return;
    this.#backToNormal(`registered ${this.options.id} again`);
    this.#setState('registered');
    this.emit('reregistered', this.registration);
  }

  /** The status of the next beat: the worst of drain, the app's {@link Registrar.setStatus} and the health function. */
  async #evaluate(): Promise<{ status: CheckStatus; output: string }> {
    if (this.#draining) return { status: 'critical', output: 'draining: out of rotation for shutdown' };
    let result = this.#manual ?? { status: 'passing' as CheckStatus, output: '' };
    const health = this.options.health;
    if (health) {
      const limit = this.options.requestTimeoutMs;
      const signal = AbortSignal.timeout(limit);
      let fromHealth: { status: CheckStatus; output: string };
      try {
        const report = await Promise.race([
          Promise.resolve(health(signal)),
          new Promise<never>((_, reject) => {
            signal.addEventListener('abort', () => reject(new TimeoutError('health function', limit)), { once: true });
          }),
        ]);
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

  async #register(report: { status: CheckStatus }, signal: AbortSignal): Promise<void> {
    const o = this.options;
    await this.#client.request({
      method: 'PUT',
      path: '/v1/agent/service/register',
      query: { 'replace-existing-checks': true },
      body: {
        ID: o.id,
        Name: o.name,
        Address: o.address,
        Port: o.port,
        Tags: o.tags,
        Meta: o.meta,
        ...(o.weights ? { Weights: { Passing: o.weights.passing, Warning: o.weights.warning } } : {}),
        Check: {
          CheckID: o.checkId,
          Name: o.checkName,
          TTL: formatDuration(o.ttlMs),
          // A new check starts critical unless told otherwise; we only register once ready.
          Status: report.status,
          Notes: `TTL heartbeat every ~${o.heartbeatIntervalMs} ms by @proxyless/registrar`,
          ...(o.deregisterCriticalServiceAfterMs > 0
            ? { DeregisterCriticalServiceAfter: formatDuration(o.deregisterCriticalServiceAfterMs) }
            : {}),
        },
      },
      signal,
      timeoutMs: o.requestTimeoutMs,
    });
  }

  async #update(report: { status: CheckStatus; output: string }, signal: AbortSignal): Promise<void> {
    await this.#client.request({
      method: 'PUT',
      path: `/v1/agent/check/update/${encodeURIComponent(this.options.checkId)}`,
      body: { Status: report.status, Output: report.output },
      signal,
      timeoutMs: this.options.requestTimeoutMs,
    });
    this.emit('heartbeat', { status: report.status, output: report.output, at: Date.now() });
  }

  async #putMaintenance(enable: boolean, reason: string | undefined, signal?: AbortSignal): Promise<void> {
    await this.#client.request({
      method: 'PUT',
      path: `/v1/agent/service/maintenance/${encodeURIComponent(this.options.id)}`,
      query: { enable: enable ? 'true' : 'false', reason: enable ? reason : undefined },
      ...(signal ? { signal } : {}),
      timeoutMs: this.options.requestTimeoutMs,
    });
  }

  #log(level: 'warn' | 'info', message: string): void {
    this.options.logger?.[level](`proxyless registrar ${this.options.id}: ${message}`);
  }

  /** One line per failure streak: what failed at the agent, what to do, and what happens next. */
  #warnOnce(error: unknown, next: string): void {
    if (this.#outage) return;
    this.#outage = true;
    this.#log('warn', `${describeAgentFailure(error, this.#client.connection.origin, this.options.name)}; ${next}`);
  }

  #backToNormal(what: string): void {
    if (!this.#outage) return;
    this.#outage = false;
    this.#log('info', `the Consul agent at ${this.#client.connection.origin} answers again: ${what}`);
  }

  /** The rejection of a timed-out start(): says why it could not register, not just that time ran out. */
  #startTimeout(timeoutMs: number, failure: unknown): TimeoutError {
    const error = new TimeoutError('Registrar.start', timeoutMs, failure);
    if (failure !== undefined) {
      error.message += `: ${describeAgentFailure(failure, this.#client.connection.origin, this.options.name)}`;
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

  #setState(state: RegistrarState): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.emit('stateChange', state, previous);
  }

  #assertOpen(): void {
    if (this.#state === 'closed') throw new ClosedError('Registrar');
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
    this.#manual = status === 'passing' && output === '' ? undefined : { status, output };
    if (this.#state === 'registered' || this.#state === 'lost') await this.#enqueueBeat();
  }

  /**
   * Takes the instance out of rotation by failing its check (status
   * `critical`, output `draining…`) and keeps it failing on every beat, so
   * watchers drop it while the app still serves. Resolves once the agent has
   * the critical status. Used by the {@link ShutdownCoordinator}.
   */
  async drain(): Promise<void> {
    this.#assertOpen();
    this.#draining = true;
    if (this.#state === 'registered' || this.#state === 'lost') await this.#enqueueBeat();
  }

  /** Switches maintenance mode on: the agent adds a critical `_service_maintenance:<id>` check. */
  async enableMaintenance(reason?: string, options: RegistrarCallOptions = {}): Promise<void> {
    this.#assertOpen();
    await this.#putMaintenance(true, reason, options.signal);
    this.#maintenance = { reason };
    this.emit('maintenance', true, reason);
  }

  /** Switches maintenance mode off. */
  async disableMaintenance(options: RegistrarCallOptions = {}): Promise<void> {
    this.#assertOpen();
    await this.#putMaintenance(false, undefined, options.signal);
    this.#maintenance = undefined;
    this.emit('maintenance', false, undefined);
  }

  /**
   * Waits until this instance is absent from the agent's passing health
   * query (`GET /v1/health/service/:name?passing`), on core's blocking-query
   * loop ({@link runBlockingQuery}: rate limit, index rules, backoff).
   * @returns `true` once it is gone, `false` if `timeoutMs` (default 5000) ran out first.
   * @throws `AbortedError` (`ERR_ABORTED`) when `signal` aborts.
   */
  async waitUntilNotPassing(options: RegistrarCallOptions = {}): Promise<boolean> {
    this.#assertOpen();
    const timeoutMs = options.timeoutMs ?? 5000;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
    let gone = false;
    await runBlockingQuery(this.#client, {
      path: `/v1/health/service/${encodeURIComponent(this.options.name)}`,
      query: { passing: true },
      signal,
      decode: (body) => {
        if (!Array.isArray(body)) throw new BadResponseError(`Consul health answer for "${this.options.name}" is not an array`);
        return body as { Service?: { ID?: unknown } }[];
      },
      onAnswer: (entries) => {
        gone = !entries.some((e) => e?.Service?.ID === this.options.id);
        return gone ? false : undefined;
      },
      onError: (error) => this.#reportError(error),
    }, { waitMs: Math.min(600_000, Math.max(1000, timeoutMs)) });
    if (!gone && options.signal?.aborted) throw new AbortedError('waitUntilNotPassing', options.signal.reason);
    return gone;
  }

  /**
   * Stops heartbeating and deregisters (`404` counts as done). Retryable
   * failures are retried until `timeoutMs` (default 5000). Resolves at once
   * when not registered.
   * @throws the last agent error when deregistration did not succeed in time.
   */
  async stop(options: RegistrarCallOptions = {}): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'idle' || this.#state === 'deregistered') return;
    this.#run?.abort();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#started?.catch(() => undefined);
    await this.#chain;
    this.#setState('deregistering');
    const deadline = Date.now() + (options.timeoutMs ?? 5000);
    for (let attempt = 0; ; attempt++) {
      const remaining = deadline - Date.now();
      try {
        await this.#client.request({
          method: 'PUT',
          path: `/v1/agent/service/deregister/${encodeURIComponent(this.options.id)}`,
          ...(options.signal ? { signal: options.signal } : {}),
          timeoutMs: Math.max(1, Math.min(this.options.requestTimeoutMs, remaining)),
        });
        break;
      } catch (error) {
        if (error instanceof ConsulApiError && error.status === 404) break; // already gone
        this.#reportError(error);
        const wait = backoffDelay(attempt, { initialMs: this.options.retryMinDelayMs, maxMs: 1000 });
        if (!isRetryable(error) || options.signal?.aborted || Date.now() + wait >= deadline) {
          this.#setState('idle');
          throw error;
        }
        await sleep(wait, options.signal);
      }
    }
    this.#draining = false;
    this.#maintenance = undefined;
    this.#setState('deregistered');
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
   * timer and closes the Consul client if the registrar created it. Idempotent.
   */
  close(options: RegistrarCallOptions = {}): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.stop(options);
      } catch {
        // already reported through 'error'
      }
      this.#run?.abort();
      this.#setState('closed');
      if (this.#ownsClient) await this.#client.close();
    })();
    return this.#closing;
  }

  /** Same as {@link Registrar.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
