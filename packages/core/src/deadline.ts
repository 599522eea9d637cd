/**
 * The one way to put a deadline on work that also follows a caller's signal.
 * @module
 */
import { TimeoutError } from './errors.js';

/** Options of {@link withDeadline}. @internal */
export interface DeadlineOptions {
  /** The timer does not keep the process alive (a watch's long poll). Default: it does (a call someone awaits). */
  background?: boolean | undefined;
  /**
   * Settle at the deadline (or the caller's abort) even if `work` has not, rejecting with the
   * signal's reason: for work that may ignore its signal (a user's hook or health function).
   * Default: wait for `work`, which is expected to end soon after its signal aborts.
   */
  settleAtDeadline?: boolean | undefined;
  /** What the {@link TimeoutError} names (`<what> timed out after <ms> ms`). Default `operation`. */
  what?: string | undefined;
}

/**
 * Runs `work` with a signal that aborts when `signal` does or once `timeoutMs`
 * has passed (reason: a {@link TimeoutError}). Why not
 * `AbortSignal.any([signal, AbortSignal.timeout(ms)])`: on Node 20 the combined
 * signal holds its sources weakly, so an inline timeout signal can be garbage
 * collected and never fire (seen here as a wait that hung past its deadline).
 * Here the timer and the listener live until `work` settles, then are removed.
 * @internal
 */
export async function withDeadline<T>(signal: AbortSignal | undefined, timeoutMs: number, work: (signal: AbortSignal) => Promise<T>, options: DeadlineOptions = {}): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new TimeoutError(options.what ?? 'operation', timeoutMs)), Math.max(0, timeoutMs));
  // A call someone awaits keeps the process alive until it settles; a background poll does not.
  if (options.background === true) timer.unref();
  const onAbort = (): void => controller.abort(signal?.reason);
  if (signal?.aborted) controller.abort(signal.reason);
  else signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const running = work(controller.signal);
    if (options.settleAtDeadline !== true) return await running;
    running.catch(() => undefined); // it may settle after we gave up on it: nobody waits for it then
    return await Promise.race([running, rejectOnAbort(controller.signal)]);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

/** A promise that rejects with `signal`'s reason once it aborts. */
function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason as Error);
    else signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
}
