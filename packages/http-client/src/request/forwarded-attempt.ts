/**
 * One attempt of the dispatcher path, sent with the endpoint pool's
 * `dispatch()`: its head goes to the request loop (which keeps it or retries),
 * and a kept answer's body goes straight to the caller's handler. No body
 * stream, no header re-encoding, no second request handler: the dispatcher
 * path costs what `client.request()` does (bench/dispatcher.bench.ts).
 * @internal
 * @module
 */
import type { IncomingHttpHeaders } from 'node:http';
import { util, type Dispatcher } from 'undici';
import type { CallHandle } from './call.js';
import type { Answer, LoopResponse } from './request-loop.js';

/** Where a kept answer goes: the caller's handler, old or new style (see dispatcher.ts). @internal */
export interface Sink {
  /** Returns false when the handler wants the body paused (it calls `resume` later). */
  headers(statusCode: number, rawHeaders: Buffer[], headers: IncomingHttpHeaders, resume: () => void): boolean;
  /** Returns false when the handler wants the body paused. */
  data(chunk: Buffer): boolean;
  end(): void;
  error(error: Error): void;
}

/**
 * A forwarded call in progress, as the dispatcher holds it (from
 * `ProxylessClient.forward`): its answer, and the one thing the caller's
 * abort may do to it, stop it.
 * @internal
 */
export interface ForwardedCall extends CallHandle {
  /** The kept answer, whose body the dispatcher pipes to its caller's handler. */
  readonly response: Promise<LoopResponse<ForwardedAttempt>>;
}

/** A discarded body (before a retry) is read to its end up to this size, so the connection is kept; beyond it the connection is closed. */
const DUMP_MAX_BYTES = 128 * 1024;
/** Body bytes kept between the answer's head and the loop's decision before the connection is paused. */
const EARLY_MAX_BYTES = 64 * 1024;

/** The abort handle the request loop gives an attempt (call.ts `StepSignal`). */
interface StepSignalLike {
  readonly aborted: boolean;
  readonly reason: Error | undefined;
  once(event: 'abort', listener: () => void): unknown;
  removeListener(event: 'abort', listener: () => void): unknown;
}

/**
 * undici's handler for one attempt (the `onConnect`/`onHeaders`/… shape its
 * pools call; the `onRequestStart` shape would have undici parse the headers
 * and wrap the handler on every request). Also the attempt's `body`: the
 * loop pipes a kept answer to a {@link Sink}, or dumps a discarded one.
 * @internal
 */
export class ForwardedAttempt {
  statusCode = 0;
  rawHeaders: Buffer[] = [];
  headers: IncomingHttpHeaders = {};
  readonly #signal: StepSignalLike | undefined;
  readonly #onAbort = (): void => this.abort(this.#signal?.reason);
  #abort: ((reason?: Error) => void) | undefined;
  #abortReason: Error | undefined;
  #resume: (() => void) | undefined;
  #settle: { resolve(answer: Answer<ForwardedAttempt>): void; reject(error: Error): void } | undefined;
  #sink: Sink | undefined;
  #error: Error | undefined;
  #complete = false;
  /** Chunks that came with the head, before the loop kept the answer (at most what the socket had read). */
  #early: Buffer[] | undefined;
  #earlyBytes = 0;
  #dump: { bytes: number; done: () => void } | undefined;

  constructor(signal: StepSignalLike | undefined) {
    this.#signal = signal;
    if (signal?.aborted) this.#abortReason = signal.reason ?? new Error('aborted');
    else signal?.once('abort', this.#onAbort);
  }

  /** Dispatches to `pool`; resolves with the answer's head (its body paused), rejects with the attempt's error. */
  send(pool: Dispatcher, options: Dispatcher.DispatchOptions): Promise<Answer<ForwardedAttempt>> {
    return new Promise((resolve, reject) => {
      if (this.#abortReason !== undefined) {
        reject(this.#abortReason); // stopped before it started: nothing to send
        return;
      }
      this.#settle = { resolve, reject };
      pool.dispatch(options, this);
    });
  }

  /**
   * Stops the attempt, or the body's flow after the head: undici closes the
   * connection and calls `onError`. Before a connection took the attempt up,
   * undici would notice only then (nodejs/undici#386: a busy connection, or a
   * connect that never completes), so the attempt settles at once and undici
   * drops it when it reaches `onConnect`.
   */
  abort(reason?: Error): void {
    const error = reason ?? new Error('aborted');
    if (this.#abort !== undefined) {
      this.#abort(error);
      return;
    }
    this.#abortReason ??= error;
    const settle = this.#settle;
    this.#settle = undefined;
    if (settle !== undefined) {
      this.#done();
      settle.reject(error);
    }
  }

  /** Sends the kept answer's head and body to `sink`, with the handler's back-pressure. */
  pipe(sink: Sink): void {
    this.#sink = sink;
    if (this.#error !== undefined) {
      sink.error(this.#error);
      return;
    }
    let flowing = sink.headers(this.statusCode, this.rawHeaders, this.headers, this.#resumeBody);
    const early = this.#early;
    this.#early = undefined;
    if (early !== undefined) for (const chunk of early) flowing = sink.data(chunk);
    if (this.#complete) sink.end();
    else if (flowing) this.#resumeBody();
  }

  /** Reads a discarded answer's body to its end (bounded), so its connection stays open. */
  dump(): Promise<void> {
    this.#early = undefined;
    if (this.#complete || this.#error !== undefined) return Promise.resolve();
    return new Promise((resolve) => {
      this.#dump = { bytes: this.#earlyBytes, done: resolve };
      this.#resumeBody();
    });
  }

  readonly #resumeBody = (): void => {
    if (!this.#complete && this.#error === undefined) this.#resume?.();
  };

  #done(): void {
    this.#signal?.removeListener('abort', this.#onAbort);
  }

  // undici's handler interface.

  onConnect(abort: (reason?: Error) => void): void {
    this.#abort = abort;
    if (this.#abortReason !== undefined) abort(this.#abortReason);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx informational: not an answer
    this.statusCode = statusCode;
    this.rawHeaders = rawHeaders;
    this.headers = util.parseHeaders(rawHeaders);
    this.#resume = resume;
    this.#done();
    const settle = this.#settle;
    this.#settle = undefined;
    settle?.resolve(this);
    return true; // the rest of this read is kept in #early until the loop keeps (pipe) or discards (dump) the answer
  }

  onData(chunk: Buffer): boolean {
    const dump = this.#dump;
    if (dump !== undefined) {
      dump.bytes += chunk.length;
      if (dump.bytes > DUMP_MAX_BYTES) this.abort(new Error('discarded body too large'));
      return true;
    }
    if (this.#sink !== undefined) return this.#sink.data(chunk);
    // Not kept yet: keep what comes (a small body whole, no pause and resume of the parser), pause beyond that.
    (this.#early ??= []).push(chunk);
    this.#earlyBytes += chunk.length;
    return this.#earlyBytes < EARLY_MAX_BYTES;
  }

  onComplete(): void {
    this.#complete = true;
    this.#dump?.done();
    this.#sink?.end();
  }

  onError(error: Error): void {
    this.#done();
    this.#error = error;
    const settle = this.#settle;
    this.#settle = undefined;
    if (settle !== undefined) settle.reject(error);
    else if (this.#dump !== undefined) this.#dump.done();
    else this.#sink?.error(error);
  }

  /** The answer's body is the attempt itself ({@link ForwardedAttempt.pipe}, {@link ForwardedAttempt.dump}). */
  get body(): this {
    return this;
  }
}
