/**
 * The cancellation scope of one request: the client's own precise timers and
 * one AbortSignal per step (an attempt or a backoff wait), fired by the
 * per-try timeout, the deadline, the caller's signal or `destroy()`.
 * @internal
 * @module
 */
import { sleep } from '@proxyless/core';

/** Why a step was stopped. `caller` and `destroyed` (and `deadline`) end the whole request. */
export type StopReason = 'perTry' | 'deadline' | 'caller' | 'destroyed';

function onTimer(call: Call, reason: StopReason): void {
  call.stop(reason);
}

/** @internal */
export class Call {
  /** `performance.now()` when the request started. */
  readonly startedAt: number;
  /** `performance.now()` when the deadline passes. */
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly #callerSignal: AbortSignal | undefined;
  readonly #onCallerAbort = (): void => this.stop('caller');
  #step: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Why the current (or last) step stopped, if it did. */
  #stopped: StopReason | undefined;
  /** Set once the whole request is over (deadline, caller, destroy). */
  #ended: StopReason | undefined;

  constructor(timeoutMs: number, callerSignal: AbortSignal | undefined) {
    this.startedAt = performance.now();
    this.timeoutMs = timeoutMs;
    this.deadline = this.startedAt + timeoutMs;
    this.#callerSignal = callerSignal;
    if (callerSignal) {
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

  /** Time left to the deadline, ms. */
  remaining(nowMs = performance.now()): number {
    return this.deadline - nowMs;
  }

  /**
   * Starts a step bounded by the per-try timeout and the deadline, whichever
   * comes first; returns its signal (already aborted when the request ended).
   */
  begin(perTryMs: number): AbortSignal {
    const controller = new AbortController();
    this.#step = controller;
    this.#stopped = this.#ended;
    if (this.#ended !== undefined) {
      controller.abort(this.#ended);
      return controller.signal;
    }
    const remaining = this.remaining();
    const byDeadline = remaining <= perTryMs;
    // setTimeout has millisecond resolution; round up so a step never ends early.
    this.#timer = setTimeout(onTimer, Math.max(1, Math.ceil(byDeadline ? remaining : perTryMs)), this, byDeadline ? 'deadline' : 'perTry');
    this.#timer.unref();
    return controller.signal;
  }

  /** A backoff wait as a step: ends early when the request is stopped (no timer of its own beyond the sleep). */
  async wait(ms: number): Promise<void> {
    const controller = new AbortController();
    this.#step = controller;
    this.#stopped = this.#ended;
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
  stop(reason: StopReason): void {
    if (reason !== 'perTry' && this.#ended === undefined) this.#ended = reason;
    if (this.#step === undefined || this.#stopped !== undefined) return;
    this.#stopped = reason;
    this.#step.abort(reason);
  }

  /** Releases the timer and the caller's-signal listener. */
  finish(): void {
    this.end();
    this.#callerSignal?.removeEventListener('abort', this.#onCallerAbort);
  }
}
