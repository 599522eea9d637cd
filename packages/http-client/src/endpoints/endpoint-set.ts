import { EventEmitter as NodeEventEmitter } from 'node:events';
import type { Balancer, InstanceDiff, PickContext, Picker, ServiceInstance } from '@proxyless/core';
import { Endpoint } from './endpoint.js';
import type { LoadContext } from './load.js';
import { isPanic, mayEject } from './outlier-detection.js';
import type { ResolvedOptions } from '../config/options.js';
import type { EmitClientEvent } from '../shared/events.js';
import { PickHandle } from './pick-handle.js';

/** Why no endpoint could be picked. @internal */
export type EmptyReason = 'none' | 'circuitOpen';

/** How often the neutral latency (the set's median estimate) is recomputed, at most. */
const NEUTRAL_REFRESH_MS = 1000;
/** Endpoints sampled for that median (bounded work at any set size). */
const NEUTRAL_SAMPLE = 31;

/**
 * The endpoints of one service: follows snapshots, owns per-endpoint state,
 * keeps a picker over every endpoint (rebuilt only when membership changes)
 * whose picks skip the endpoints marked unavailable (breaker open, ejected;
 * flags kept on every breaker, ejection or panic change, no rebuild),
 * and hands out a {@link PickHandle} per attempt.
 * @internal
 */
export class EndpointSet implements LoadContext {
  readonly #options: ResolvedOptions;
  readonly #balancer: Balancer;
  /** The client's events, reported through this function alone. */
  readonly #emit: EmitClientEvent;
  readonly #byKey = new Map<string, Endpoint>();
  readonly #draining = new Set<Promise<void>>();
  /** Removed endpoints whose pools still drain (for pick explanations). */
  readonly #drainingEndpoints = new Set<Endpoint>();
  /** Shared bucket-rotation clock for every breaker (one timer per client, not per endpoint). */
  readonly #rotate = new NodeEventEmitter();
  readonly #rotateTimer: NodeJS.Timeout | undefined;
  #picker: Picker<Endpoint>;
  #panic = false;
  #ejectedCount = 0;
  /** Endpoints marked available: the ready set (in panic, every endpoint whose breaker is not open). */
  #availableCount = 0;
  /** Endpoints whose breaker is not open, and of those the ones not ejected (the ready set), as last counted. */
  #notOpenCount = 0;
  #readyCount = 0;
  #closed = false;
  #neutralMs = 0;
  #neutralAt = -Infinity;
  /** The time of the pick in progress, or -1 between picks. */
  #pickingAt = -1;
  /** True once a snapshot was applied. */
  hasSnapshot = false;

  constructor(options: ResolvedOptions, balancer: Balancer, emit: EmitClientEvent) {
    this.#options = options;
    this.#balancer = balancer;
    this.#emit = emit;
    this.#rotate.setMaxListeners(0);
    this.#picker = balancer.createPicker<Endpoint>([]);
    if (options.breaker) {
      const t = setInterval(() => this.#rotate.emit('rotate'), options.breaker.rollingWindowMs / options.breaker.rollingBuckets);
      t.unref();
      this.#rotateTimer = t;
    }
  }

  /** All current (non-removed) endpoints. */
  get endpoints(): IterableIterator<Endpoint> {
    return this.#byKey.values();
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** Removed endpoints still draining their in-flight requests. */
  get draining(): ReadonlySet<Endpoint> {
    return this.#drainingEndpoints;
  }

  get balancer(): Balancer {
    return this.#balancer;
  }

  get panic(): boolean {
    return this.#panic;
  }

  get picker(): Picker<Endpoint> {
    return this.#picker;
  }

  /** How many endpoints picks may choose now. */
  get availableCount(): number {
    return this.#availableCount;
  }

  /**
   * The neutral latency a cold endpoint starts from and an idle one decays
   * to: the median raw estimate of (a sample of) the endpoints that have
   * answered, refreshed at most once a second; 0 while none has.
   */
  neutralMs(nowMs: number): number {
    if (nowMs - this.#neutralAt < NEUTRAL_REFRESH_MS) return this.#neutralMs;
    this.#neutralAt = nowMs;
    const values: number[] = [];
    for (const ep of this.#byKey.values()) {
      if (ep.load.sampled) values.push(ep.load.rawMs);
      if (values.length >= NEUTRAL_SAMPLE) break;
    }
    values.sort((a, b) => a - b);
    this.#neutralMs = values.length === 0 ? 0 : (values[values.length >> 1] ?? 0);
    return this.#neutralMs;
  }

  /** The time of the pick in progress (one clock read per pick, not one per candidate), else `performance.now()`. */
  nowMs(): number {
    return this.#pickingAt >= 0 ? this.#pickingAt : performance.now();
  }

  /** Picks an endpoint for one attempt starting at `nowMs` (`performance.now()`), honouring half-open trials (one at a time). Hot path. */
  pick(context: PickContext | undefined, nowMs: number): PickHandle | undefined {
    if (this.#availableCount === 0) return undefined;
    this.#pickingAt = nowMs;
    try {
      const ep = this.#picker.pick(context);
      if (ep === undefined) return undefined;
      const breaker = ep.breaker;
      // `available` is checked too for a custom balancer that does not honour it.
      if (ep.available && (breaker === undefined || breaker.tryAcquire())) return new PickHandle(ep, nowMs);
      const other = this.#pickAvoiding(ep, context);
      return other === undefined ? undefined : new PickHandle(other, nowMs);
    } finally {
      this.#pickingAt = -1;
    }
  }

  #pickAvoiding(first: Endpoint, context: PickContext | undefined): Endpoint | undefined {
    const exclude = new Set(context?.exclude as ReadonlySet<Endpoint> | undefined);
    exclude.add(first);
    const ctx: PickContext = { hashKey: context?.hashKey, exclude };
    for (let i = 0; i < this.#picker.endpoints.length; i++) {
      const ep = this.#picker.pick(ctx);
      if (ep === undefined || exclude.has(ep)) return undefined;
      if (ep.available && (ep.breaker === undefined || ep.breaker.tryAcquire())) return ep;
      exclude.add(ep);
    }
    return undefined;
  }

  /** Why the picker is empty. */
  emptyReason(): EmptyReason {
    for (const ep of this.#byKey.values()) if (ep.breakerState !== 'closed') return 'circuitOpen';
    return 'none';
  }

  /**
   * Applies the watch's diff of one change (computed once by the watch, shared by every
   * subscriber): drains the removed endpoints, adds the new ones, updates the changed ones
   * (a new address or port is a new endpoint, with a new pool). O(size of the change), plus
   * one picker build when anything changed. An added instance already present counts as an update.
   */
  apply(change: InstanceDiff): void {
    if (this.#closed) return;
    this.hasSnapshot = true;
    let changed = false;
    for (const instance of change.removed) {
      const ep = this.#byKey.get(instance.key);
      if (ep === undefined) continue;
      this.#remove(ep);
      changed = true;
    }
    for (const instance of change.updated) if (this.#upsert(instance)) changed = true;
    for (const instance of change.added) if (this.#upsert(instance)) changed = true;
    if (changed) {
      this.#picker = this.#balancer.createPicker([...this.#byKey.values()]);
      this.#refreshAvailability();
    }
  }

  /** Adds an instance, or updates the endpoint of its key; false when it is already there as is. */
  #upsert(instance: ServiceInstance): boolean {
    const existing = this.#byKey.get(instance.key);
    if (existing === undefined) this.#add(instance);
    else if (existing.instance === instance) return false;
    else if (existing.instance.address !== instance.address || existing.instance.port !== instance.port) {
      // Same identity, new address: a new endpoint (new pool).
      this.#remove(existing);
      this.#add(instance);
    } else existing.instance = instance;
    return true;
  }

  #add(instance: ServiceInstance): void {
    const ep: Endpoint = new Endpoint(instance, this.#options, this, this.#rotate, {
      onBreakerOpen: () => this.#onBreaker(ep, 'breakerOpen'),
      onBreakerHalfOpen: () => this.#onBreaker(ep, 'breakerHalfOpen'),
      onBreakerClose: () => this.#onBreaker(ep, 'breakerClose'),
      onOutlier: () => this.#onOutlier(ep),
    });
    this.#byKey.set(instance.key, ep);
    this.#emit('endpointAdded', ep.info);
  }

  #onBreaker(ep: Endpoint, event: 'breakerOpen' | 'breakerHalfOpen' | 'breakerClose'): void {
    if (ep.removed) return;
    if (event === 'breakerHalfOpen') ep.rejoined();
    this.#emit(event, ep.info);
    this.#endpointChanged(ep);
  }

  #remove(ep: Endpoint): void {
    this.#byKey.delete(ep.instance.key);
    ep.removed = true;
    if (ep.outlier.ejected) this.#ejectedCount--;
    ep.outlier.dispose();
    ep.breaker?.shutdown();
    this.#emit('endpointRemoved', ep.info);
    this.#drain(ep, this.#options.drainTimeoutMs);
  }

  /** Closes the pool once in-flight requests finish (bounded), then destroys it. */
  #drain(ep: Endpoint, timeoutMs: number): void {
    let timer: NodeJS.Timeout | undefined;
    this.#drainingEndpoints.add(ep);
    const done: Promise<void> = Promise.race([
      ep.pool.close().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        timer.unref();
      }),
    ])
      .then(() => {
        clearTimeout(timer);
        // close() resolved: a no-op; the drain timed out: cut what is left.
        return ep.pool.destroy().catch(() => undefined);
      })
      .finally(() => {
        this.#draining.delete(done);
        this.#drainingEndpoints.delete(ep);
      });
    this.#draining.add(done);
  }

  /** Outlier detection's threshold was reached: eject, within the ejection cap. */
  #onOutlier(ep: Endpoint): void {
    const o = this.#options.outlier;
    if (!o || ep.removed || ep.outlier.ejected) return;
    if (!mayEject(this.#ejectedCount, this.#byKey.size, o.maxEjectionPercent)) return;
    const duration = ep.outlier.eject(o, Date.now());
    this.#ejectedCount++;
    const timer = setTimeout(() => this.#restore(ep), duration);
    timer.unref();
    ep.outlier.timer = timer;
    this.#emit('eject', ep.info, duration);
    this.#endpointChanged(ep);
  }

  #restore(ep: Endpoint): void {
    if (ep.removed || !ep.outlier.ejected) return;
    ep.outlier.restore(Date.now());
    ep.rejoined();
    this.#ejectedCount--;
    this.#emit('restore', ep.info);
    this.#endpointChanged(ep);
  }

  /**
   * One endpoint's breaker or ejection changed: its own flag and the counts,
   * O(1); every endpoint's flag only when the set enters or leaves panic.
   */
  #endpointChanged(ep: Endpoint): void {
    if (this.#closed) return;
    const notOpen = ep.breakerState !== 'open';
    const ready = notOpen && !ep.outlier.ejected;
    if (notOpen !== ep.countedNotOpen) this.#notOpenCount += notOpen ? 1 : -1;
    if (ready !== ep.countedReady) this.#readyCount += ready ? 1 : -1;
    ep.countedNotOpen = notOpen;
    ep.countedReady = ready;
    if (this.#panicNow() !== this.#panic) {
      this.#refreshAvailability();
      return;
    }
    ep.available = this.#panic ? notOpen : ready;
    this.#availableCount = this.#panic ? this.#notOpenCount : this.#readyCount;
    this.#picker.availabilityChanged?.();
  }

  /** Is the ready share below the panic threshold? */
  #panicNow(): boolean {
    const o = this.#options.outlier;
    return o !== false && isPanic(this.#readyCount, this.#byKey.size, o.panicThresholdPercent);
  }

  /**
   * Marks which endpoints picks may choose: the ready set (breaker not open,
   * not ejected), or, in panic, every endpoint whose breaker is not open; then
   * tells the picker. O(n) flag writes, no picker build: on membership changes
   * (the picker is rebuilt then anyway) and when panic starts or ends.
   */
  #refreshAvailability(): void {
    if (this.#closed) return;
    let ready = 0;
    let notOpen = 0;
    for (const ep of this.#byKey.values()) {
      ep.countedNotOpen = ep.breakerState !== 'open';
      ep.countedReady = ep.countedNotOpen && !ep.outlier.ejected;
      if (ep.countedNotOpen) notOpen++;
      if (ep.countedReady) ready++;
    }
    this.#readyCount = ready;
    this.#notOpenCount = notOpen;
    const panic = this.#panicNow();
    for (const ep of this.#byKey.values()) ep.available = panic ? ep.countedNotOpen : ep.countedReady;
    this.#availableCount = panic ? notOpen : ready;
    this.#picker.availabilityChanged?.();
    if (panic !== this.#panic) {
      this.#panic = panic;
      this.#emit('panic', panic);
    }
  }

  /** Stops taking picks and every timer; pools drain within `graceMs` (0: destroyed at once). */
  async close(graceMs: number): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      if (this.#rotateTimer) clearInterval(this.#rotateTimer);
      for (const ep of [...this.#byKey.values()]) {
        this.#byKey.delete(ep.instance.key);
        ep.removed = true;
        ep.outlier.dispose();
        ep.breaker?.shutdown();
        this.#drain(ep, graceMs);
      }
      this.#picker = this.#balancer.createPicker<Endpoint>([]);
      this.#availableCount = 0;
    }
    await Promise.all([...this.#draining]);
  }

  /** Destroys every pool at once (fails what is in flight), including those still draining. */
  async destroy(): Promise<void> {
    const pools = [...this.#byKey.values()].map((ep) => ep.pool);
    void this.close(0);
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
    await Promise.all([...this.#draining]);
  }
}
