/**
 * Test support: waiting for a condition with a bound, and failing with what
 * was awaited (and, for a watch, the last thing it saw) instead of a bare
 * mocha timeout.
 *
 * Not part of any package's public API.
 */
import type { CatalogServices, CatalogWatch, ServiceSnapshot, ServiceWatch } from '@proxyless/core';

/**
 * Polls `check` every 50 ms until it gives a truthy value (a throw counts as not yet) and returns
 * that value; after `timeoutMs` throws naming `what` and the last error.
 */
export async function eventually<T>(what: string, check: () => T | Promise<T>, timeoutMs = 15_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls `condition` every 5 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * The first snapshot of `watch` satisfying `check`, the current one included (no polling: each
 * update is checked). After `timeoutMs` it rejects naming `what` and the last snapshot and error.
 */
export function untilSnapshot(watch: ServiceWatch, check: (s: ServiceSnapshot) => boolean, timeoutMs = 10_000, what = 'a matching snapshot'): Promise<ServiceSnapshot> {
  return untilUpdate(watch, watch.current, check, timeoutMs, () => {
    const last = watch.current;
    return `no snapshot with ${what} in ${timeoutMs} ms; last: ports ${JSON.stringify(last?.instances.map((i) => i.port))}, ` +
      `stale=${String(last?.stale)}, error: ${watch.lastError?.message ?? 'none'}`;
  });
}

/** The first service list of `catalog` satisfying `check`, the current one included; rejects after `timeoutMs` with the last list. */
export function untilServices(catalog: CatalogWatch, check: (s: CatalogServices) => boolean, timeoutMs = 10_000): Promise<CatalogServices> {
  return untilUpdate(catalog, catalog.services, check, timeoutMs, () =>
    `no matching service list in ${timeoutMs} ms; last: ${JSON.stringify([...(catalog.services ?? new Map())])}`);
}

interface Updates<T> {
  on(event: 'update', listener: (value: T) => void): unknown;
  off(event: 'update', listener: (value: T) => void): unknown;
}

function untilUpdate<T>(source: Updates<T>, current: T | undefined, check: (value: T) => boolean, timeoutMs: number, explain: () => string): Promise<T> {
  if (current !== undefined && check(current)) return Promise.resolve(current);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      source.off('update', onUpdate);
      reject(new Error(explain()));
    }, timeoutMs);
    const onUpdate = (value: T): void => {
      if (!check(value)) return;
      clearTimeout(timer);
      source.off('update', onUpdate);
      resolve(value);
    };
    source.on('update', onUpdate);
  });
}
