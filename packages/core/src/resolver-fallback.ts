import { ClosedError, InvalidOptionError, ResolutionFailedError, isProxylessError } from './errors.js';
import type { CallOptions, Resolver, ServiceSnapshot, ServiceWatch } from './resolver.js';
import type { ServiceInstance } from './service-instance.js';
import { checkKnownKeys, checkNumber, optionKeys, validateServiceName } from './validate.js';
import { WatchHub, type WatchSink } from './watch-hub.js';

/** Options of {@link FallbackResolver}. */
export interface FallbackResolverOptions<PrimaryQuery extends object, SecondaryQuery extends object> {
  /** Asked first, and preferred whenever it has fresh data. */
  primary: Resolver<PrimaryQuery>;
  /** Used while the primary fails or has no data yet. */
  secondary: Resolver<SecondaryQuery>;
  /** Translates a primary query for the secondary. Default: passes it unchanged. */
  secondaryQuery?: (query: PrimaryQuery) => SecondaryQuery;
  /** Close both resolvers in {@link FallbackResolver.close}. Default false. */
  closeResolvers?: boolean;
  /**
   * How long a new watch waits for the primary's first answer before it also
   * opens the secondary, in ms. Covers a primary that hangs rather than fails
   * (its own request timeout can be many seconds). Default 2000; at most 3 600 000.
   */
  primaryTimeoutMs?: number;
}

const fallbackKeys = optionKeys<FallbackResolverOptions<object, object>>({
  primary: true, secondary: true, secondaryQuery: true, closeResolvers: true, primaryTimeoutMs: true,
});

/** Errors that another source cannot fix: bad input, closure, cancellation. */
function isFinal(error: unknown): boolean {
  return ['ERR_INVALID_OPTION', 'ERR_INVALID_SERVICE_NAME', 'ERR_CLOSED', 'ERR_ABORTED'].some((code) => isProxylessError(error, code));
}

/**
 * Composes two resolvers: the primary first; the secondary while the primary
 * errors, is stale or has not answered yet; back to the primary as soon as it
 * publishes fresh data again. The secondary is watched only while needed.
 * Primary errors are still reported as `error` events (one that comes before
 * anything was served, once the secondary answers or fails: a client's first
 * call waits for the secondary rather than failing on the primary's error).
 *
 * @example
 * ```ts
 * const resolver = new FallbackResolver({
 *   primary: new ConsulResolver(),
 *   secondary: new DnsSrvResolver({ servers: ['127.0.0.1:8600'] }),
 *   secondaryQuery: (q) => ({ tags: q.tags?.slice(0, 1), datacenter: q.datacenter }),
 * });
 * const watch = resolver.watch('web'); // snapshot.source says which one answered
 * ```
 */
export class FallbackResolver<PrimaryQuery extends object = object, SecondaryQuery extends object = object> implements Resolver<PrimaryQuery> {
  readonly #primary: Resolver<PrimaryQuery>;
  readonly #secondary: Resolver<SecondaryQuery>;
  readonly #map: (query: PrimaryQuery) => SecondaryQuery;
  readonly #closeResolvers: boolean;
  readonly #primaryTimeoutMs: number;
  readonly #hub: WatchHub<PrimaryQuery>;
  readonly #keys = new WeakMap<object, number>();
  #nextKey = 0;
  #closed = false;

  constructor(options: FallbackResolverOptions<PrimaryQuery, SecondaryQuery>) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', options, 'must be an object');
    checkKnownKeys('', options, fallbackKeys, 'FallbackResolver');
    for (const name of ['primary', 'secondary'] as const) {
      const r = options[name] as Partial<Resolver> | undefined;
      if (typeof r?.watch !== 'function' || typeof r.resolve !== 'function') throw new InvalidOptionError(name, r, 'must be a Resolver');
    }
    this.#primary = options.primary;
    this.#secondary = options.secondary;
    this.#map = options.secondaryQuery ?? ((q) => q as unknown as SecondaryQuery);
    this.#closeResolvers = options.closeResolvers ?? false;
    // At most an hour: a timer waits for it (a Node timer past 2^31 ms fires at once, and the secondary would open at once).
    this.#primaryTimeoutMs = checkNumber('primaryTimeoutMs', options.primaryTimeoutMs, 2000, { min: 0, max: 3_600_000 });
    this.#hub = new WatchHub<PrimaryQuery>('fallback', (service, query, sink) => this.#run(service, query, sink));
  }

  async #run(service: string, query: PrimaryQuery, sink: WatchSink): Promise<void> {
    const primary = this.#primary.watch(service, query);
    let secondary: ServiceWatch | undefined;
    let secondaryBroken = false;
    /** The primary's error, held back while the watch has nothing and the secondary's first answer is awaited. */
    let held: Error | undefined;
    const reportHeld = (): void => {
      const error = held;
      held = undefined;
      if (error !== undefined) sink.fail(error, { markStale: false });
    };
    const primaryHealthy = (): boolean => primary.current !== undefined && !primary.current.stale;
    const publish = (snapshot: ServiceSnapshot): void => {
      sink.publish(snapshot.instances, { source: snapshot.source, stale: snapshot.stale, updatedAt: snapshot.updatedAt, info: snapshot.info });
    };
    const openSecondary = (): void => {
      if (secondary || secondaryBroken || sink.signal.aborted) return;
      let watch: ServiceWatch;
      try {
        watch = this.#secondary.watch(service, this.#map(query));
      } catch (error) {
        // E.g. a query the secondary cannot honour: report it once, keep the primary's data.
        secondaryBroken = true;
        sink.fail(error instanceof Error ? error : new Error(String(error)), { markStale: false });
        return;
      }
      secondary = watch;
      watch.on('update', (snapshot) => {
        if (!primaryHealthy()) publish(snapshot);
        reportHeld();
      });
      watch.on('error', (error) => {
        reportHeld();
        if (!primaryHealthy()) sink.fail(error);
      });
    };
    const closeSecondary = (): void => {
      const watch = secondary;
      secondary = undefined;
      void watch?.close();
    };
    primary.on('update', (snapshot) => {
      held = undefined; // the primary answered: its earlier error is news no more
      if (!snapshot.stale) {
        closeSecondary();
        publish(snapshot);
        return;
      }
      openSecondary();
      const fallback = secondary?.current;
      if (fallback && !fallback.stale) publish(fallback);
      else publish(snapshot);
    });
    primary.on('error', (error) => {
      openSecondary();
      const fallback = secondary?.current;
      if (sink.current === undefined && secondary !== undefined && fallback === undefined && secondary.lastError === undefined) {
        // Nothing to serve yet, and the secondary is being asked: its answer (or error) reports this one, so a
        // first call waits for the secondary instead of failing on the primary's error. Recorded as lastError now.
        held = error;
        sink.fail(error, { markStale: false, report: false });
        return;
      }
      // Keep serving the secondary's fresh data; the primary's error is still reported.
      sink.fail(error, { markStale: !(fallback && !fallback.stale) });
    });
    // A primary that hangs (no answer, no error) must not leave the watch empty.
    const firstAnswer = setTimeout(() => {
      if (primary.current === undefined) openSecondary();
    }, this.#primaryTimeoutMs);
    firstAnswer.unref();
    await new Promise<void>((resolve) => sink.signal.addEventListener('abort', () => resolve(), { once: true }));
    clearTimeout(firstAnswer);
    await Promise.all([primary.close(), secondary?.close()]);
  }

  /**
   * Resolves with the primary, or with the secondary when the primary fails.
   * @throws the secondary's `ERR_NO_HEALTHY_INSTANCES` when both have none, else {@link ResolutionFailedError} with the primary's error as `cause`.
   */
  async resolve(service: string, options: PrimaryQuery & CallOptions = {} as PrimaryQuery & CallOptions): Promise<readonly ServiceInstance[]> {
    if (this.#closed) throw new ClosedError('Resolver');
    validateServiceName(service);
    try {
      return await this.#primary.resolve(service, options);
    } catch (primaryError) {
      if (isFinal(primaryError)) throw primaryError;
      const { signal, timeoutMs, ...query } = options;
      const callOptions: CallOptions = {};
      if (signal) callOptions.signal = signal;
      if (timeoutMs !== undefined) callOptions.timeoutMs = timeoutMs;
      try {
        return await this.#secondary.resolve(service, { ...this.#map(query as PrimaryQuery), ...callOptions });
      } catch (secondaryError) {
        if (isFinal(secondaryError)) throw secondaryError;
        if (isProxylessError(primaryError, 'ERR_NO_HEALTHY_INSTANCES') && isProxylessError(secondaryError, 'ERR_NO_HEALTHY_INSTANCES')) throw secondaryError;
        throw new ResolutionFailedError(service, 'fallback', primaryError);
      }
    }
  }

  #key(service: string, query: PrimaryQuery): string {
    // Queries are opaque here: equal JSON means the same watch.
    let text: string;
    try {
      text = JSON.stringify(query);
    } catch {
      let id = this.#keys.get(query);
      if (id === undefined) this.#keys.set(query, (id = this.#nextKey++));
      text = `#${id}`;
    }
    return `${service}|${text}`;
  }

  /** Watches a service through the composition; one shared watch per (service, query). */
  watch(service: string, query: PrimaryQuery = {} as PrimaryQuery): ServiceWatch {
    if (this.#closed) throw new ClosedError('Resolver');
    validateServiceName(service);
    return this.#hub.subscribe(this.#key(service, query), service, query);
  }

  /** Stops every watch (and closes both resolvers if `closeResolvers`). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#hub.close();
    if (this.#closeResolvers) await Promise.all([this.#primary.close(), this.#secondary.close()]);
  }

  /** Same as {@link FallbackResolver.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
