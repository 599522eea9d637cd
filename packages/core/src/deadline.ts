/**
 * The one way to put a deadline on work that also follows a caller's signal.
 * @module
 */
import { TimeoutError } from './errors.js';

/**
 * Runs `work` with a signal that aborts when `signal` does or once `timeoutMs`
 * has passed (reason: a {@link TimeoutError}). Why not
 * `AbortSignal.any([signal, AbortSignal.timeout(ms)])`: on Node 20 the combined
 * signal holds its sources weakly, so an inline timeout signal can be garbage
 * collected and never fire (seen here as a wait that hung past its deadline).
 * Here the timer and the listener live until `work` settles, then are removed.
 * The timer is ref'd unless `background` is set (a watch's long poll).
 * @internal
 */
export async function withDeadline<T>(signal: AbortSignal | undefined, timeoutMs: number, work: (signal: AbortSignal) => Promise<T>, background = false): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new TimeoutError('operation', timeoutMs)), Math.max(0, timeoutMs));
  // A call someone awaits keeps the process alive until it settles; a background poll (`background`) does not.
  if (background) timer.unref();
  const onAbort = (): void => controller.abort(signal?.reason);
  if (signal?.aborted) controller.abort(signal.reason);
  else signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await work(controller.signal);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}
