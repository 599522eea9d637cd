/**
 * Shared watches: one poll loop per (service, canonical query) per resolver,
 * fanned out to any number of subscribers. Resolvers supply only the loop
 * (a {@link WatchRunner}); this module owns snapshots, diffs, staleness,
 * subscriber lifecycles and cancellation.
 * @internal
 */
import { EventEmitter } from 'eventemitter3';
import { AbortedError, ClosedError, TimeoutError } from './errors.js';
import type { CallOptions, ServiceSnapshot, ServiceWatch, ServiceWatchEvents, SnapshotSourceInfo } from './resolver.js';
import { diffInstances, isEmptyDiff, type InstanceDiff, type ServiceInstance } from './service-instance.js';
import { ResetGrace } from './reset-grace.js';

/** How a runner publishes a fresh answer. @internal */
export interface PublishOptions {
  /** Mark the data stale although it came from the source (e.g. no known leader). Default false. */
  stale?: boolean;
  /** Override the hub's source label (fallback composition). */
  source?: string;
  /** When the data was confirmed. Default now. */
  updatedAt?: number;
  info?: SnapshotSourceInfo | undefined;
}

/** What a {@link WatchRunner} talks to. @internal */
export interface WatchSink {
  /** Aborted when the last subscriber leaves or the resolver closes. */
  readonly signal: AbortSignal;
  /** The latest snapshot, if any. */
  readonly current: ServiceSnapshot | undefined;
  /** Publishes an answer; subscribers hear about it only if the set (or staleness/source) changed. */
  publish(instances: readonly ServiceInstance[], options?: PublishOptions): void;
  /**
   * Reports a failure: an `error` event, and (by default) the last snapshot marked stale.
   * `report: false` only records it as `lastError` (no event): for a composition still
   * asking another source, whose subscribers (a client's first call) should wait for that.
   */
  fail(error: Error, options?: { markStale?: boolean; report?: boolean }): void;
  /**
   * The source's history reset (registry wiped, restored or restarted): instances missing
   * from the next answers are held, the snapshot marked stale, for the hub's reset grace.
   */
  reset(): void;
}

/** The poll loop of one shared watch; returns when `sink.signal` aborts. @internal */
export type WatchRunner<Query> = (service: string, query: Query, sink: WatchSink) => Promise<void>;

const emptyList: readonly ServiceInstance[] = Object.freeze([]);
const noChange: InstanceDiff = Object.freeze({ added: emptyList, removed: emptyList, updated: emptyList });

/** Rethrows a subscriber's exception outside our loop, like a throwing listener on a Node EventEmitter. */
function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

class SharedWatch<Query> implements WatchSink {
  snapshot: ServiceSnapshot | undefined;
  lastError: Error | undefined;
  readonly subscribers = new Set<WatchHandle>();
  readonly controller = new AbortController();
  done: Promise<void> = Promise.resolve();
  readonly #grace: ResetGrace<ServiceInstance>;
  /** The source's last answer as given, published again when the reset grace ends. */
  #answer: { instances: readonly ServiceInstance[]; options: PublishOptions; updatedAt: number } | undefined;
  /** The diff from empty of the current set, made once and given to every subscriber that joins late. */
  #greeting: InstanceDiff | undefined;

  constructor(
    readonly hub: WatchHub<Query>,
    readonly key: string,
    readonly service: string,
  ) {
    this.#grace = new ResetGrace<ServiceInstance>(hub.resetGraceMs, (i) => i.key, () => this.#graceEnded());
    this.controller.signal.addEventListener('abort', () => this.#grace.stop(), { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get current(): ServiceSnapshot | undefined {
    return this.snapshot;
  }

  /** A late joiner's first change: the whole current set as added, one object per set (not per subscriber). */
  greeting(instances: readonly ServiceInstance[]): InstanceDiff {
    if (this.#greeting?.added !== instances) this.#greeting = diffInstances(emptyList, instances);
    return this.#greeting;
  }

  reset(): void {
    this.#grace.reset();
  }

  #graceEnded(): void {
    const answer = this.#answer;
    if (this.signal.aborted || !answer) return;
    // The instances still missing leave now; a source failing since its answer keeps the set stale.
    const stale = this.lastError !== undefined;
    const error = this.lastError;
    this.publish(answer.instances, { ...answer.options, updatedAt: answer.updatedAt, stale: (answer.options.stale ?? false) || stale });
    this.lastError = error;
  }

  publish(answer: readonly ServiceInstance[], options: PublishOptions = {}): void {
    if (this.signal.aborted) return;
    const previous = this.snapshot;
    const updatedAt = options.updatedAt ?? Date.now();
    this.#answer = { instances: answer, options, updatedAt };
    const instances = this.#grace.hold(answer, previous?.instances);
    const before = previous?.instances ?? emptyList;
    const diff = diffInstances(before, instances);
    const changed = !isEmptyDiff(diff);
    // Instances held after a registry reset: the set is not what the source says.
    const stale = (options.stale ?? false) || this.#grace.holding;
    const source = options.source ?? this.hub.source;
    const snapshot: ServiceSnapshot = Object.freeze({
      service: this.service,
      // Keep the old array when nothing changed, so identity means "same set".
      instances: previous && !changed ? previous.instances : Object.freeze([...instances]),
      stale,
      updatedAt,
      source,
      info: options.info === undefined ? undefined : Object.freeze({ ...options.info }),
    });
    this.snapshot = snapshot;
    this.lastError = undefined;
    if (previous && !changed && previous.stale === stale && previous.source === source) return;
    // One diff per change, the same frozen object for every subscriber in step (all but late joiners).
    for (const handle of this.subscribers) handle.deliver(snapshot, diff);
  }

  fail(error: Error, options: { markStale?: boolean; report?: boolean } = {}): void {
    if (this.signal.aborted) return;
    this.lastError = error;
    const previous = this.snapshot;
    if ((options.markStale ?? true) && previous && !previous.stale) {
      // Stale-if-error: keep the last good set, flag it, keep its updatedAt (its age grows).
      const stale = Object.freeze({ ...previous, stale: true });
      this.snapshot = stale;
      for (const handle of this.subscribers) handle.deliver(stale, noChange);
    }
    if (options.report ?? true) for (const handle of this.subscribers) handle.report(error);
  }
}

class WatchHandle extends EventEmitter<ServiceWatchEvents> implements ServiceWatch {
  /** True once this subscriber was given a snapshot (its diffs start from empty until then). */
  #heard = false;
  #closed = false;
  readonly #waiters = new Set<{ resolve: (s: ServiceSnapshot) => void; reject: (e: Error) => void }>();

  constructor(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the handle never touches the query
    readonly shared: SharedWatch<any>,
    readonly onClose: (handle: WatchHandle) => Promise<void>,
  ) {
    super();
  }

  get service(): string {
    return this.shared.service;
  }

  get current(): ServiceSnapshot | undefined {
    return this.shared.snapshot;
  }

  get lastError(): Error | undefined {
    return this.shared.lastError;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends the current snapshot to a new subscriber, if it has heard nothing yet. */
  greet(): void {
    const snapshot = this.shared.snapshot;
    if (this.#closed || this.#heard || !snapshot) return;
    this.deliver(snapshot, noChange); // replaced by the shared greeting: this subscriber has heard nothing
  }

  /**
   * Delivers a snapshot with the shared diff of this change. Every delivery
   * reaches every subscriber, so one that has heard before is always in step
   * with the diff's base; one that has not gets the shared from-empty diff.
   */
  deliver(snapshot: ServiceSnapshot, diff: InstanceDiff): void {
    if (this.#closed) return;
    const change = this.#heard ? diff : this.shared.greeting(snapshot.instances);
    this.#heard = true;
    for (const waiter of this.#waiters) waiter.resolve(snapshot);
    this.#waiters.clear();
    try {
      this.emit('update', snapshot, change);
    } catch (error) {
      rethrowLater(error);
    }
  }

  report(error: Error): void {
    if (this.#closed) return;
    try {
      this.emit('error', error);
    } catch (thrown) {
      rethrowLater(thrown);
    }
  }

  ready(options: CallOptions = {}): Promise<ServiceSnapshot> {
    const current = this.shared.snapshot;
    if (current) return Promise.resolve(current);
    if (this.#closed) return Promise.reject(new ClosedError('Watch'));
    const { signal, timeoutMs } = options;
    if (signal?.aborted) return Promise.reject(new AbortedError(`Watch of "${this.service}"`, signal.reason));
    return new Promise<ServiceSnapshot>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waiters.delete(waiter);
      };
      const waiter = {
        resolve: (s: ServiceSnapshot) => {
          cleanup();
          resolve(s);
        },
        reject: (e: Error) => {
          cleanup();
          reject(e);
        },
      };
      const onAbort = (): void => waiter.reject(new AbortedError(`Watch of "${this.service}"`, signal?.reason));
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined) {
        // Ref'd: a wait with a deadline keeps the process alive until it settles (never silently cut short).
        timer = setTimeout(() => waiter.reject(new TimeoutError(`Waiting for "${this.service}"`, timeoutMs)), timeoutMs);
      }
      this.#waiters.add(waiter);
    });
  }

  /** Detaches without stopping anything (the hub does that). */
  detach(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of this.#waiters) waiter.reject(new ClosedError('Watch'));
    this.#waiters.clear();
    this.removeAllListeners();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.detach();
    await this.onClose(this);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Owns the shared watches of one resolver.
 * @internal
 */
export class WatchHub<Query> {
  readonly #watches = new Map<string, SharedWatch<Query>>();
  #closed = false;
  /** How long instances missing after a registry reset are held, in ms (see {@link WatchSink.reset}). */
  readonly resetGraceMs: number;

  /**
   * @param source - label put on snapshots (`consul`, `dns`…).
   * @param runner - the poll loop.
   * @param options - `resetGraceMs`: grace after a registry reset (validated by the resolver). Default 0: nothing held.
   */
  constructor(
    readonly source: string,
    readonly runner: WatchRunner<Query>,
    options: { resetGraceMs?: number } = {},
  ) {
    this.resetGraceMs = options.resetGraceMs ?? 0;
  }

  /** Number of live shared watches (one poll loop each). */
  get size(): number {
    return this.#watches.size;
  }

  /** The latest snapshot of a running watch, if any. */
  peek(key: string): ServiceSnapshot | undefined {
    return this.#watches.get(key)?.snapshot;
  }

  /**
   * Adds a subscriber to the watch for `key`, starting its loop if needed.
   * @param key - canonical (service, query) key; equal keys share one loop.
   */
  subscribe(key: string, service: string, query: Query): ServiceWatch {
    if (this.#closed) throw new ClosedError('Resolver');
    let shared = this.#watches.get(key);
    if (!shared) {
      const created = new SharedWatch<Query>(this, key, service);
      this.#watches.set(key, created);
      created.done = this.runner(service, query, created).catch((error: unknown) => {
        created.fail(error instanceof Error ? error : new Error(String(error)));
      });
      shared = created;
    }
    const handle = new WatchHandle(shared, (h) => this.#leave(key, h));
    shared.subscribers.add(handle);
    if (shared.snapshot) setImmediate(() => handle.greet());
    return handle;
  }

  async #leave(key: string, handle: WatchHandle): Promise<void> {
    const shared = this.#watches.get(key);
    if (!shared || !shared.subscribers.delete(handle)) return;
    if (shared.subscribers.size > 0) return;
    this.#watches.delete(key);
    shared.controller.abort(new ClosedError('Watch'));
    await shared.done;
  }

  /** Aborts every loop at once (in-flight requests included) and detaches every subscriber. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#watches.values()];
    this.#watches.clear();
    for (const shared of all) {
      shared.controller.abort(new ClosedError('Resolver'));
      for (const handle of shared.subscribers) handle.detach();
      shared.subscribers.clear();
    }
    await Promise.all(all.map((s) => s.done));
  }
}
