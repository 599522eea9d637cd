/**
 * The cancellation scope of one request: the client's own precise timers and
 * one abort handle per step (an attempt or a backoff wait), fired by the
 * per-try timeout, the deadline, the caller's signal or `destroy()`.
 * @internal
 * @module
 */
import type { EventEmitter } from 'node:events';
import { sleep } from '@proxyless/core';
import type { RequestTrace } from './tracing.js';

/** Why a step was stopped. `caller` and `destroyed` (and `deadline`) end the whole request. */
export type StopReason = 'perTry' | 'deadline' | 'caller' | 'destroyed';

/**
 * The abort handle of one attempt, in the EventEmitter shape undici accepts
 * as a request's `signal` (`aborted`, `reason`, `once`/`removeListener`).
 * On Node 20 an AbortController per request costs more than the rest of the
 * client's request path together (≈13 µs measured against ≈0.1 µs for this),
 * and undici only ever listens once. Pinned by the deadline and destroy tests.
 */
class StepSignal {
  aborted = false;
  reason: Error | undefined = undefined;
  #listener: (() => void) | undefined;

  once(_event: 'abort', listener: () => void): this {
    this.#listener = listener;
    return this;
  }

  on(event: 'abort', listener: () => void): this {
    return this.once(event, listener);
  }

  removeListener(_event: 'abort', listener: () => void): this {
    if (this.#listener === listener) this.#listener = undefined;
    return this;
  }

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listener = this.#listener;
    this.#listener = undefined;
    listener?.();
  }
}

/** Something a step can be stopped through. */
interface Abortable {
  abort(reason: Error): void;
}

// A timer that fires is acted on after the event loop's next I/O poll: timers run before I/O in
// each turn, so after a stall (GC, CPU starvation) answers that already arrived would otherwise be
// aborted as timeouts, and charged to healthy endpoints. One setImmediate, only when a timer fires.
function onTimer(call: Call, reason: StopReason, step: Abortable, dueAt: number, delayMs: number): void {
  const lateMs = performance.now() - dueAt;
  setImmediate(onTimerAfterIo, call, reason, step, lateMs > Math.max(STALL_MIN_MS, delayMs));
}

function onTimerAfterIo(call: Call, reason: StopReason, step: Abortable, stalled: boolean): void {
  call.stopStep(step, reason, stalled);
}

/**
 * A timer that fires later than its own delay (so after at least twice that delay; and at least
 * 20 ms late) means this process itself stood still for longer than it gave the endpoint: it could
 * not send, read or even run what it asked for, and an endpoint in the same starved process or on
 * the same starved machine could not answer either. Such a timeout says nothing reliable about the
 * endpoint, so it is not charged to it (the request still fails with its timeout). Timers a little
 * late, as on any loaded machine, still count: a hung endpoint must be found out under load too.
 */
const STALL_MIN_MS = 20;

/** @internal */
export class Call {
  /** `performance.now()` when the request started. */
  readonly startedAt: number;
  /** `performance.now()` when the deadline passes. */
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly #callerSignal: AbortSignal | undefined;
  readonly #onCallerAbort: (() => void) | undefined;
  #step: Abortable | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Why the current (or last) step stopped, if it did. */
  #stopped: StopReason | undefined;
  /** Whether that stop came from a timer that fired late because this process stalled. */
  #stalled = false;
  /** Set once the whole request is over (deadline, caller, destroy). */
  #ended: StopReason | undefined;
  /** The request's OpenTelemetry trace, when a provider is registered. */
  trace: RequestTrace | undefined;

  constructor(timeoutMs: number, callerSignal: AbortSignal | undefined) {
    this.startedAt = performance.now();
    this.timeoutMs = timeoutMs;
    this.deadline = this.startedAt + timeoutMs;
    this.#callerSignal = callerSignal;
    if (callerSignal) {
      this.#onCallerAbort = (): void => this.stop('caller');
      if (callerSignal.aborted) this.#ended = 'caller';
      else callerSignal.addEventListener('abort', this.#onCallerAbort, { once: true });
    }
  }

  /** Why the request as a whole ended early, if it did. */
  get ended(): StopReason | undefined {
    return this.#ended;
  }

  /** Why the last step stopped, if it did. */
  get stopped(): StopReason | undefined {
    return this.#stopped;
  }

  /**
   * Whether the last step was stopped by its per-try or deadline timer firing
   * well after it was due: this process stalled, so the timeout is not the
   * endpoint's fault.
   */
  get stalled(): boolean {
    return this.#stalled;
  }

  /** Time left to the deadline, ms. */
  remaining(nowMs = performance.now()): number {
    return this.deadline - nowMs;
  }

  /**
   * Starts an attempt bounded by the per-try timeout and the deadline,
   * whichever comes first; returns the signal to hand to undici (already
   * aborted when the request ended).
   */
  begin(perTryMs: number): EventEmitter {
    const step = new StepSignal();
    this.#step = step;
    this.#stopped = this.#ended;
    this.#stalled = false;
    if (this.#ended !== undefined) {
      step.abort(stopError(this.#ended));
      return step as unknown as EventEmitter;
    }
    const now = performance.now();
    const remaining = this.remaining(now);
    const byDeadline = remaining <= perTryMs;
    // setTimeout has millisecond resolution; round up so a step never ends early.
    const delayMs = Math.max(1, Math.ceil(byDeadline ? remaining : perTryMs));
    this.#timer = setTimeout(onTimer, delayMs, this, byDeadline ? 'deadline' : 'perTry', step, now + delayMs, delayMs);
    this.#timer.unref();
    return step as unknown as EventEmitter;
  }

  /** A backoff wait as a step: ends early when the request is stopped (no timer of its own beyond the sleep). */
  async wait(ms: number): Promise<void> {
    const controller = new AbortController();
    this.#step = controller;
    this.#stopped = this.#ended;
    this.#stalled = false;
    if (this.#ended === undefined) await sleep(ms, controller.signal);
    this.#step = undefined;
  }

  /** Ends the current step: clears its timer. */
  end(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#step = undefined;
  }

  /** Stops the current step; `deadline`, `caller` and `destroyed` end the request too. */
  stop(reason: StopReason, stalled = false): void {
    if (reason !== 'perTry' && this.#ended === undefined) this.#ended = reason;
    if (this.#step === undefined || this.#stopped !== undefined) return;
    this.#stopped = reason;
    this.#stalled = stalled;
    this.#step.abort(stopError(reason));
  }

  /** Stops `step` if it is still the current one (a timer's late action for a step that already settled does nothing). */
  stopStep(step: Abortable, reason: StopReason, stalled: boolean): void {
    if (this.#step === step) this.stop(reason, stalled);
  }

  /** Releases the timer and the caller's-signal listener. */
  finish(): void {
    this.end();
    if (this.#onCallerAbort) this.#callerSignal?.removeEventListener('abort', this.#onCallerAbort);
  }
}

/** The error undici rejects a stopped attempt with (the request loop maps it to a typed error). */
function stopError(reason: StopReason): Error {
  const error = new Error(`attempt stopped: ${reason}`);
  error.name = 'AbortError';
  return error;
}
