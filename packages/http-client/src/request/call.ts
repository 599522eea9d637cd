/**
 * The cancellation scope of one request: the client's own precise timers and
 * one abort handle per step (an attempt or a backoff wait), fired by the
 * per-try timeout, the deadline, the caller's signal or `destroy()`.
 * @internal
 * @module
 */
import { sleep } from '@proxyless/core/internal';
import type { RequestTrace } from '../observe/tracing.js';
import type { TimerEntry, TimerList, TimerQueue } from './timer-queue.js';

/** Why a step was stopped. `caller` and `destroyed` (and `deadline`) end the whole request. */
export type StopReason = 'perTry' | 'deadline' | 'caller' | 'destroyed';

/**
 * The abort handle of one attempt, in the EventEmitter shape undici accepts
 * as a request's `signal` (`aborted`, `reason`, `once`/`removeListener`).
 * On Node 20 an AbortController per request costs more than the rest of the
 * client's request path together (≈13 µs measured against ≈0.1 µs for this),
 * and undici only ever listens once. Pinned by the deadline and destroy tests.
 */
export class StepSignal {
  aborted = false;
  reason: Error | undefined = undefined;
  #listener: (() => void) | undefined;
  #settle: ((reason: Error) => void) | undefined;

  /**
   * Settles the attempt with the stop's error as soon as the step is
   * stopped (at once when it already was), whatever undici does: undici
   * notices a stop only once a connection takes the request up
   * (nodejs/undici#386), so a request waiting in its pool's queue — for a
   * busy connection, or a connect that never completes — would outlive its
   * deadline by as long as that wait lasts.
   */
  settleOnStop(reject: (reason: Error) => void): void {
    if (this.aborted) reject(this.reason ?? new Error('aborted'));
    else this.#settle = reject;
  }

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
    const settle = this.#settle;
    this.#settle = undefined;
    settle?.(reason);
  }
}

/** Something a step can be stopped through. @internal */
export interface Abortable {
  abort(reason: Error): void;
}

// A due step is stopped after the event loop's next I/O poll: timers run before I/O in each turn,
// so after a stall (GC, CPU starvation) answers that already arrived would otherwise be aborted as
// timeouts, and charged to healthy endpoints. One setImmediate, only when a step is due.
function onDueAfterIo(call: Call, reason: StopReason, step: Abortable, stalled: boolean): void {
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

/** Whether a timer found due at `nowMs`, due at `timerAt` after `delayMs`, fired late because this process stalled (see above). @internal */
export function firedLate(nowMs: number, timerAt: number, delayMs: number): boolean {
  return nowMs - timerAt > Math.max(STALL_MIN_MS, delayMs);
}

/**
 * What a holder outside the request layer (the dispatcher, for a caller's
 * abort) may do to a call in progress: stop it, nothing else.
 * @internal
 */
export interface CallHandle {
  /** Stops the call as its caller would: the current step ends and the request fails with `AbortedError`. */
  stop(reason: 'caller'): void;
}

/** @internal */
export class Call implements TimerEntry, CallHandle {
  /** `performance.now()` when the request started. */
  readonly startedAt: number;
  /** `performance.now()` when the deadline passes. */
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly #callerSignal: AbortSignal | undefined;
  readonly #onCallerAbort: (() => void) | undefined;
  readonly #timers: TimerQueue;
  #step: Abortable | undefined;
  /** What the queued timer stops when due: the step it was set for, and why. */
  #timedStep: Abortable | undefined;
  #timedReason: StopReason = 'perTry';
  /** The delay that step was given, ms (a timer later than this after it was due means this process stalled). */
  #timedDelayMs = 0;
  /** Why the current (or last) step stopped, if it did. */
  #stopped: StopReason | undefined;
  /** Whether that stop came from a timer that fired late because this process stalled. */
  #stalled = false;
  /** Set once the whole request is over (deadline, caller, destroy). */
  #ended: StopReason | undefined;
  /** The request's OpenTelemetry trace, when a provider is registered. */
  trace: RequestTrace | undefined;
  // The call is its own entry in the client's list of calls and in its timer queue (no allocation per request or attempt).
  prevCall: Call | undefined = undefined;
  nextCall: Call | undefined = undefined;
  timerAt = 0;
  timerPrev: TimerEntry | undefined = undefined;
  timerNext: TimerEntry | undefined = undefined;
  timerList: TimerList | undefined = undefined;

  constructor(timeoutMs: number, callerSignal: AbortSignal | undefined, timers: TimerQueue) {
    this.#timers = timers;
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
   * whichever comes first (one timer entry either way); returns the signal to
   * hand to undici (already aborted when the request ended). `nowMs` is
   * `performance.now()`, read by the caller.
   */
  begin(perTryMs: number, nowMs: number): StepSignal {
    const step = new StepSignal();
    this.#step = step;
    this.#stopped = this.#ended;
    this.#stalled = false;
    if (this.#ended !== undefined) {
      step.abort(stopError(this.#ended));
      return step;
    }
    this.#timedStep = step;
    // A per-try timer lands in its duration's list in start order; a deadline in the request timeout's list.
    if (this.deadline - nowMs <= perTryMs) {
      this.#timedReason = 'deadline';
      this.#timedDelayMs = this.deadline - nowMs;
      this.#timers.add(this, this.timeoutMs, this.deadline);
    } else {
      this.#timedReason = 'perTry';
      this.#timedDelayMs = perTryMs;
      this.#timers.add(this, perTryMs, nowMs + perTryMs);
    }
    return step;
  }

  /** The queued timer is due (TimerEntry); `nowMs` is when the queue found it due. */
  expired(nowMs: number): void {
    const step = this.#timedStep;
    this.#timedStep = undefined;
    const stalled = firedLate(nowMs, this.timerAt, this.#timedDelayMs);
    if (step !== undefined) setImmediate(onDueAfterIo, this, this.#timedReason, step, stalled);
  }

  /** The client's timer queue (a hedged request's copies and hedge delay use it too). */
  get timers(): TimerQueue {
    return this.#timers;
  }

  /**
   * Starts the copies of a hedged request as one step, bounded by the
   * deadline (each copy keeps its own per-try timer): the deadline, the
   * caller and `destroy()` stop `group`, which stops every copy. `group` is
   * stopped at once when the request already ended.
   */
  beginGroup(group: Abortable): void {
    this.#step = group;
    this.#stopped = this.#ended;
    this.#stalled = false;
    if (this.#ended !== undefined) {
      group.abort(stopError(this.#ended));
      return;
    }
    this.#timedStep = group;
    this.#timedReason = 'deadline';
    this.#timedDelayMs = this.remaining();
    this.#timers.add(this, this.timeoutMs, this.deadline);
  }

  /** A backoff wait as a step: ends early when the request is stopped. */
  async wait(ms: number): Promise<void> {
    await this.waitFor((signal) => sleep(ms, signal)).catch(() => undefined);
  }

  /**
   * Runs `until` as a step (a backoff, or the wait for a first snapshot):
   * stopped by the deadline, the caller or `destroy()` through `signal`.
   * Its deadline entry keeps the client's timer queue armed, so a call in
   * this step keeps the process alive too (see `TimerQueue.hold`).
   * Rejects at once when the request already ended.
   */
  async waitFor(until: (signal: AbortSignal) => Promise<unknown>): Promise<void> {
    const controller = new AbortController();
    this.#step = controller;
    this.#stopped = this.#ended;
    this.#stalled = false;
    if (this.#ended !== undefined) {
      this.#step = undefined;
      throw stopError(this.#ended);
    }
    this.#timedStep = controller;
    this.#timedReason = 'deadline';
    this.#timedDelayMs = this.remaining();
    this.#timers.add(this, this.timeoutMs, this.deadline);
    try {
      await until(controller.signal);
    } finally {
      this.end();
    }
  }

  /** Ends the current step: takes its timer out of the queue. */
  end(): void {
    if (this.timerList !== undefined) this.#timers.remove(this);
    this.#timedStep = undefined;
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

/** The error undici rejects a stopped attempt with (the request loop maps it to a typed error). @internal */
export function stopError(reason: StopReason | 'hedgeLost'): Error {
  const error = new Error(`attempt stopped: ${reason}`);
  error.name = 'AbortError';
  return error;
}

/**
 * A client's calls in progress (for `close()` and `destroy()`): a list
 * threaded through the calls themselves — adding and deleting are a few
 * field writes, where a `Set` hashes each call twice per request.
 * @internal
 */
export class CallList {
  #head: Call | undefined = undefined;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(call: Call): void {
    const head = this.#head;
    call.prevCall = undefined;
    call.nextCall = head;
    if (head !== undefined) head.prevCall = call;
    this.#head = call;
    this.#size++;
  }

  /** Deletes `call` (which must be in this list). */
  delete(call: Call): void {
    const prev = call.prevCall;
    const next = call.nextCall;
    if (prev === undefined) this.#head = next;
    else prev.nextCall = next;
    if (next !== undefined) next.prevCall = prev;
    call.prevCall = undefined;
    call.nextCall = undefined;
    this.#size--;
  }

  /** Stops every call in the list. */
  stopAll(reason: StopReason): void {
    for (let call = this.#head; call !== undefined; ) {
      const next = call.nextCall;
      call.stop(reason);
      call = next;
    }
  }
}
