/**
 * Watches Consul's service catalog (`GET /v1/catalog/services`) with blocking
 * queries, so services registered after the gateway started become routable
 * without a restart (Zuul's route refresh, minus the polling interval).
 */
import { EventEmitter } from 'eventemitter3';
import type { ConsulHttpClient } from '@proxyless/core';

/** Options of {@link CatalogWatch}. */
export interface CatalogWatchOptions {
  /** Blocking-query wait, in ms. Default 60 000. */
  waitMs?: number;
  /**
   * Minimum time between the starts of two polls, in ms. Default 1 000:
   * the catalog changes on every registration anywhere in the datacenter,
   * and Consul asks clients to rate-limit blocking queries on busy endpoints.
   */
  minIntervalMs?: number;
  /** Longest backoff after errors, in ms. Default 30 000. */
  maxBackoffMs?: number;
}

/** Events of a {@link CatalogWatch}. */
export interface CatalogWatchEvents {
  /** The set of service names (with their tags) changed. */
  update: [services: ReadonlyMap<string, readonly string[]>];
  error: [error: Error];
}

/** A blocking-query loop over the catalog's service list. */
export class CatalogWatch extends EventEmitter<CatalogWatchEvents> {
  /** The latest service list (empty until the first answer). */
  services: ReadonlyMap<string, readonly string[]> = new Map();
  lastError: Error | undefined;
  readonly #abort = new AbortController();
  readonly #waitMs: number;
  readonly #minIntervalMs: number;
  readonly #maxBackoffMs: number;
  #loop: Promise<void> | undefined;
  #first: Promise<void>;
  #resolveFirst!: () => void;

  constructor(private readonly consul: ConsulHttpClient, options: CatalogWatchOptions = {}) {
    super();
    this.#waitMs = options.waitMs ?? 60_000;
    this.#minIntervalMs = Math.max(1_000, options.minIntervalMs ?? 1_000);
    this.#maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.#first = new Promise((resolve) => (this.#resolveFirst = resolve));
  }

  /** Starts polling; resolves after the first answer (or when closed). */
  start(): Promise<void> {
    this.#loop ??= this.#run();
    return this.#first;
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    let index = 0;
    let failures = 0;
    while (!signal.aborted) {
      const started = Date.now();
      try {
        const res = await this.consul.request({
          path: '/v1/catalog/services',
          query: { index: index > 0 ? index : undefined, wait: `${Math.ceil(this.#waitMs / 1000)}s` },
          signal,
          timeoutMs: this.#waitMs + 10_000,
        });
        failures = 0;
        this.lastError = undefined;
        const next = Number(res.headers['x-consul-index']);
        // Consul's rules: an index that goes backwards means reset; never send 0 again after data.
        index = !Number.isFinite(next) || next < 1 ? 0 : next < index ? 0 : next;
        this.#publish(res.body);
        this.#resolveFirst();
      } catch (error) {
        if (signal.aborted) break;
        this.lastError = error as Error;
        this.emit('error', error as Error);
        failures++;
      }
      const gap = failures > 0 ? Math.min(this.#maxBackoffMs, this.#minIntervalMs * 2 ** (failures - 1)) : this.#minIntervalMs;
      const wait = gap - (Date.now() - started);
      if (wait > 0) await sleep(wait, signal);
    }
    this.#resolveFirst();
  }

  #publish(body: unknown): void {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
    const next = new Map<string, readonly string[]>();
    for (const [name, tags] of Object.entries(body as Record<string, unknown>)) {
      next.set(name, Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string') : []);
    }
    const same = next.size === this.services.size &&
      [...next].every(([name, tags]) => this.services.get(name)?.join(',') === tags.join(','));
    if (same) return;
    this.services = next;
    this.emit('update', next);
  }

  /** Stops the loop; no timer or request remains. Idempotent. */
  async close(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    this.removeAllListeners();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
