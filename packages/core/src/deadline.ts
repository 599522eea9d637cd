/**
 * The one way to put a deadline on work that also follows a caller's signal,
 * and the one way to send an undici request that the deadline really ends.
 * @module
 */
import type { Dispatcher } from 'undici';
import { TimeoutError } from './errors.js';

/**
 * Runs `work` with a signal that aborts when `signal` does or once `timeoutMs`
 * has passed (reason: a {@link TimeoutError}). Why not
 * `AbortSignal.any([signal, AbortSignal.timeout(ms)])`: on Node 20 the combined
 * signal holds its sources weakly, so an inline timeout signal can be garbage
 * collected and never fire (seen here as a wait that hung past its deadline).
 * Here the timer and the listener live until `work` settles, then are removed.
 * @internal
 */
export async function withDeadline<T>(signal: AbortSignal | undefined, timeoutMs: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new TimeoutError('operation', timeoutMs)), Math.max(0, timeoutMs));
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

/**
 * undici's `request()`, settled by `options.signal` the moment it aborts.
 * undici notices an abort only once a connection takes the request up
 * (nodejs/undici#386), so a request still waiting in its pool's queue —
 * behind busy connections, or on a connect to a host that never answers the
 * SYN — would outlive its deadline by as long as that wait lasts (up to the
 * connect timeout, 10 s by default). Rejects with the signal's reason; undici
 * drops the request itself when a connection takes it up.
 * @internal
 */
export function requestUntilAborted(dispatcher: Dispatcher, options: Dispatcher.RequestOptions & { signal: AbortSignal }): Promise<Dispatcher.ResponseData> {
  const signal = options.signal;
  // The reason as given, as undici rejects with it (callers compare it with their deadline's reason).
  const reason = (): Error => signal.reason as Error;
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(reason());
      return;
    }
    const onAbort = (): void => reject(reason());
    signal.addEventListener('abort', onAbort, { once: true });
    dispatcher.request(options, (error, data) => {
      signal.removeEventListener('abort', onAbort);
      if (error === null) resolve(data);
      else reject(error);
    });
  });
}
