/**
 * The heartbeat and recovery loop of one registration's run: the first
 * registration (retried while the registry is away), fixed-rate beats, and
 * re-registration when a beat finds the registration gone. The lifecycle
 * around it (states, events, drain, stop) is the {@link Registrar}'s; the two
 * meet through {@link SessionHost}.
 * @module
 */
import {
  AbortedError,
  ProxylessError,
  RegistrationLostError,
  TimeoutError,
  type RegistryCallOptions,
  type RegistryPort,
  type RegistryReport,
} from '@proxyless/core';
import { retryWithBackoff, withDeadline, type RetryWithBackoffOptions } from '@proxyless/core/internal';
import { asError } from './as-error.js';
import { evaluateHealth, type Intent } from './health.js';
import type { ResolvedRegistrarOptions } from './options.js';
import type { OutageLog } from './outage-log.js';
import type { HeartbeatInfo, LostReason, RegistrarCallOptions } from './registrar-events.js';

/**
 * Fixed-rate schedule: beat `n` is due at `anchor + n * interval`, moved by a
 * jitter of up to `±jitter * interval`. Slots are computed from the anchor, not
 * from the previous beat, so slow beats never make the schedule drift; slots
 * already in the past are skipped.
 * @returns the index of the next slot after `afterIndex` whose time is not
 *   in the past, and the delay until it (≥ 0).
 * @internal
 */
export function nextBeat(
  anchor: number,
  intervalMs: number,
  afterIndex: number,
  now: number,
  jitter: number,
  random: () => number = Math.random,
): { index: number; delayMs: number } {
  let index = afterIndex + 1;
  const behind = Math.floor((now - anchor) / intervalMs);
  if (behind >= index) index = behind + 1;
  const offset = (random() * 2 - 1) * jitter * intervalMs;
  const at = anchor + index * intervalMs + offset;
  return { index, delayMs: Math.max(0, Math.round(at - now)) };
}

/**
 * Retry-loop options: retry (forever, unless `shouldRetry` refuses) with
 * core's full-jitter backoff capped at `maxMs`, stopped by `signal`.
 * @internal
 */
export function retryOptions(
  initialMs: number,
  maxMs: number,
  signal: AbortSignal,
  onFailedAttempt: (error: unknown) => void,
  shouldRetry: (error: unknown) => boolean = () => true,
): RetryWithBackoffOptions {
  return { backoff: { initialMs, maxMs }, signal, onFailedAttempt, shouldRetry };
}

/**
 * What a session needs of its registrar, and all it may touch.
 * @internal
 */
export interface SessionHost {
  readonly registry: RegistryPort;
  readonly options: ResolvedRegistrarOptions;
  readonly intent: Intent;
  readonly outage: OutageLog;
  /** Sends a registration and remembers whether the registry may now hold it. */
  register(report: RegistryReport, signal: AbortSignal): Promise<void>;
  /** A failure, for the `error` event and `lastError`. */
  reportError(error: unknown): void;
  /** The registry accepted a beat. */
  accepted(beat: HeartbeatInfo): void;
  /** A beat found the registration gone or the registry away; `recovery` aborts the re-registration. */
  lost(reason: LostReason, error: Error, recovery: AbortController): void;
  /** Registered again after {@link SessionHost.lost}. */
  recovered(): void;
}

const never = new AbortController().signal;

/**
 * One registration's run, from {@link Registrar.start} until {@link Registrar.stop}.
 * @internal
 */
export class Session {
  /** The start() in progress or done. */
  started: Promise<void> = Promise.resolve();
  readonly #host: SessionHost;
  /** Aborted by stop() and close(): ends beats, retries and recovery. */
  readonly #run = new AbortController();
  /** The next beat. */
  #timer: NodeJS.Timeout | undefined;
  /** Beats and recoveries, one at a time. */
  #chain: Promise<void> = Promise.resolve();
  /** Aborts the beat in flight (drain() does not wait behind a beat a registry keeps retrying). */
  #beat: AbortController | undefined;
  /** Fixed-rate schedule origin and the last slot used. */
  #anchor = 0;
  #beatIndex = 0;

  constructor(host: SessionHost) {
    this.#host = host;
  }

  /** Aborted once the run is over. */
  get signal(): AbortSignal {
    return this.#run.signal;
  }

  #call(signal: AbortSignal, timeoutMs = this.#host.options.requestTimeoutMs): RegistryCallOptions {
    return { signal, timeoutMs };
  }

  #evaluate(): Promise<RegistryReport> {
    const { intent, options } = this.#host;
    return evaluateHealth(intent, options.health, options.requestTimeoutMs);
  }

  /** One line per failure streak: what failed at the registry, what to do, and what happens next. */
  #warnOnce(error: unknown, next: string): void {
    const { registry, options, outage } = this.#host;
    outage.warnOnce(() => `${registry.describeFailure(error, options.name)}; ${next}`);
  }

  /**
   * Registers and sends the first heartbeat. Unreachable registries and
   * retryable answers are retried with backoff until `caller` (the caller's
   * signal and `options.timeoutMs`, as one) aborts; refusals reject at once.
   */
  async register(options: RegistrarCallOptions, caller: AbortSignal): Promise<void> {
    const host = this.#host;
    const { registry } = host;
    const startSignal = AbortSignal.any([this.#run.signal, caller]);
    // stop() ends the retries (the run's signal) but lets a register call in flight finish: aborting it
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
          await host.register(report, registerSignal);
          await this.#heartbeat(report, startSignal);
        },
        retryOptions(
          host.options.retryInitialMs,
          host.options.retryMaxMs,
          startSignal,
          (error) => {
            // The call cut short by the deadline itself says nothing about why it was not met.
            if (!startSignal.aborted) lastFailure = error;
            host.reportError(error);
            if (!startSignal.aborted) this.#warnOnce(error, registry.isRetryable(error) ? retrying : 'not retrying');
          },
          (error) => registry.isRetryable(error),
        ),
      );
    } catch (error) {
      // A refusal (400, 403, bad credentials) is the answer; anything else after the signal fired is a timeout or an abort.
      const refusal = error instanceof ProxylessError && !registry.isUnreachable(error) && error.code !== 'ERR_ABORTED' && error.code !== 'ERR_CLOSED';
      if (startSignal.aborted && !refusal) {
        if (options.timeoutMs !== undefined && !this.#run.signal.aborted && !options.signal?.aborted) {
          throw this.#startTimeout(options.timeoutMs, lastFailure ?? error);
        }
        throw new AbortedError('Registrar.start', error);
      }
      throw error;
    }
  }

  /** The rejection of a timed-out start(): says why it could not register, not just that time ran out. */
  #startTimeout(timeoutMs: number, failure: unknown): TimeoutError {
    const error = new TimeoutError('Registrar.start', timeoutMs, failure);
    if (failure !== undefined) {
      error.message += `: ${this.#host.registry.describeFailure(failure, this.#host.options.name)}`;
      // The stack's first line was rendered from the shorter message.
      Error.captureStackTrace(error, this.#startTimeout);
    }
    return error;
  }

  /** Starts the fixed-rate beats; the first is one interval after now (start() sent one already). */
  beatOnSchedule(): void {
    this.#anchor = Date.now();
    this.#beatIndex = 0;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#run.signal.aborted) return;
    const { heartbeatIntervalMs, jitter } = this.#host.options;
    const { index, delayMs } = nextBeat(this.#anchor, heartbeatIntervalMs, this.#beatIndex, Date.now(), jitter);
    this.#beatIndex = index;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.beatNow().finally(() => this.#schedule());
    }, delayMs);
    // A heartbeat alone must not keep the process alive.
    this.#timer.unref();
  }

  /** Queues one beat behind any beat or recovery in progress (beats never overlap); resolves when it is done. */
  beatNow(): Promise<void> {
    const beat = this.#chain.then(() => this.#beatOnce());
    this.#chain = beat.catch(() => undefined);
    return beat;
  }

  /** Gives up the beat in flight (a registry slow but still holding the registration), so a draining beat goes next. */
  abortBeat(): void {
    this.#beat?.abort();
  }

  /** Ends beats, retries and recovery at once, without waiting. */
  cancel(): void {
    this.#run.abort();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Ends the run and waits for what was in flight (a start(), a beat, a recovery). */
  async stop(): Promise<void> {
    this.cancel();
    await this.started.catch(() => undefined);
    await this.#chain;
  }

  async #heartbeat(report: RegistryReport, signal: AbortSignal): Promise<void> {
    // A registry may retry within the beat while the registration can still be alive (etcd: a leader election): each failed try is reported.
    const onRetry = (error: unknown): void => {
      this.#host.reportError(error);
      this.#warnOnce(error, 'retrying while the registration can still be alive');
    };
    await this.#host.registry.heartbeat(report, { ...this.#call(signal), onRetry });
    this.#host.accepted({ status: report.status, output: report.output, at: Date.now() });
  }

  async #beatOnce(): Promise<void> {
    const run = this.#run.signal;
    if (run.aborted) return;
    const host = this.#host;
    const beat = new AbortController();
    this.#beat = beat;
    const signal = AbortSignal.any([run, beat.signal]);
    const report = await this.#evaluate();
    try {
      // Draining: one call deadline per beat, never the retries of a registration that may still live (they would hold up the shutdown).
      if (host.intent.draining) await withDeadline(signal, host.options.requestTimeoutMs, (limit) => this.#heartbeat(report, limit));
      else await this.#heartbeat(report, signal);
      host.outage.backToNormal('heartbeats accepted again');
    } catch (error) {
      if (run.aborted || beat.signal.aborted) return;
      const gone = error instanceof RegistrationLostError;
      // Shutting down: report, never start a recovery that the shutdown would wait behind.
      const recoverable = !host.intent.draining && (gone || host.registry.isUnreachable(error));
      // The registry's own answer (e.g. Consul's 404) is what listeners get, when there is one.
      const reported = gone && error.cause instanceof Error ? error.cause : error;
      // Read, not assumed: the error may come from another copy of core (brands make instanceof work across copies).
      const reason: LostReason = gone ? (error.reason === 'expired' ? 'expired' : 'forgotten') : 'unreachable';
      if (recoverable) await this.#recover(reason, reported);
      else {
        host.reportError(error);
        this.#warnOnce(error, host.intent.draining ? 'draining goes on' : 'heartbeats go on');
      }
    } finally {
      if (this.#beat === beat) this.#beat = undefined;
    }
  }

  async #recover(reason: LostReason, error: unknown): Promise<void> {
    const host = this.#host;
    const { registry, options, intent } = host;
    host.reportError(error);
    if (reason === 'unreachable') this.#warnOnce(error, 're-registering when it answers');
    else host.outage.warnOnce(() => `${registry.label} no longer holds ${options.id} (${reason}); registering again`);
    const recovery = new AbortController();
    host.lost(reason, asError(error), recovery);
    const signal = AbortSignal.any([this.#run.signal, recovery.signal]);
    try {
      await retryWithBackoff(async () => {
        // Re-evaluated per attempt: a status set during the outage is what gets registered.
        const report = await this.#evaluate();
        if (signal.aborted) return;
        await host.register(report, never); // not aborted by stop(): see register()
        if (intent.maintenance) await registry.setMaintenance(true, intent.maintenance.reason, this.#call(signal));
        await this.#heartbeat(report, signal);
      }, retryOptions(options.retryInitialMs, options.retryMaxMs, signal, (e) => host.reportError(e)));
    } catch (failure) {
      if (signal.aborted) return;
      host.reportError(failure);
      return;
    }
    if (signal.aborted) return;
    host.outage.backToNormal(`registered ${options.id} again`);
    host.recovered();
  }
}
