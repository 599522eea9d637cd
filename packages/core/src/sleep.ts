/**
 * The one abortable sleep.
 * @module
 */

/**
 * Resolves after `ms`, or as soon as `signal` aborts (it never rejects: the
 * caller checks `signal.aborted`). The timer is unref'd, so a pending delay
 * never keeps the process alive.
 * @internal
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    timer.unref();
    signal?.addEventListener('abort', done, { once: true });
  });
}
