import type { Balancer, InstanceDiff, LoadReport, PickContext, Picker, ServiceInstance } from '@proxyless/core';
import { withDeadline } from '@proxyless/core/internal';
import { Endpoint, type HealthOwner } from './endpoint.js';
import { DueHeap } from './due-heap.js';
import { healthEvent, isPanic, mayEject, type EjectionGate, type EndpointHealthState, type HealthState, type HealthTransition } from './health.js';
import type { LoadContext } from './load.js';
import type { ResolvedOptions } from '../config/options.js';
import type { AttemptOutcome } from '../shared/attempt-outcome.js';
import type { EmitClientEvent } from '../shared/events.js';
import { PickHandle } from './pick-handle.js';
import { Prober, probeResultOf, type ProbeCounts } from './prober.js';

/**
 * Why a pick found no endpoint, read from the per-state counts (no scan):
 * `circuitOpen` when some breaker is open or probing (its trial in flight),
 * else `ejected` when some endpoint is ejected (and panic is off), else
 * `noEndpoints` (the set is empty); `concurrencyLimit` when endpoints were
 * available but every one tried was at its concurrency limit.
 * @internal
 */
export type EmptyReason = 'noEndpoints' | 'circuitOpen' | 'ejected' | 'concurrencyLimit';

/** A pick that found no endpoint, and why. @internal */
export interface EmptyPick {
  readonly kind: 'empty';
  readonly reason: EmptyReason;
}

const EMPTY: Readonly<Record<EmptyReason, EmptyPick>> = {
  noEndpoints: Object.freeze({ kind: 'empty', reason: 'noEndpoints' }),
  circuitOpen: Object.freeze({ kind: 'empty', reason: 'circuitOpen' }),
  ejected: Object.freeze({ kind: 'empty', reason: 'ejected' }),
  concurrencyLimit: Object.freeze({ kind: 'empty', reason: 'concurrencyLimit' }),
};

/**
 * Below its concurrency limit (always, when limits are off). Checked at pick
 * time rather than through `available`: the count changes at every attempt,
 * and flipping the flag would tell the picker twice per attempt.
 */
function underLimit(ep: Endpoint): boolean {
  const limit = ep.limit;
  if (limit === undefined || ep.load.inFlight < limit.limit) return true;
  limit.atLimit++;
  return false;
}

/** Hears every health transition of the set's endpoints, once each. @internal */
export type TransitionListener = (endpoint: Endpoint, from: HealthState, to: HealthState) => void;

/** How often the neutral latency (the set's median estimate) is recomputed, at most. */
const NEUTRAL_REFRESH_MS = 1000;
/** Endpoints sampled for that median (bounded work at any set size). */
const NEUTRAL_SAMPLE = 31;

/** The set's clock: `performance.now()` (tests inject their own). */
const performanceClock = (): number => performance.now();

/**
 * The endpoints of one service: follows snapshots, owns per-endpoint state,
 * keeps a picker over every endpoint (rebuilt only when membership changes)
 * whose picks skip unavailable endpoints, and hands out a
 * {@link PickHandle} per attempt.
 *
 * Health: each endpoint's state is one union (health.ts). Every transition
 * comes through {@link EndpointSet.#transitioned}, once: it moves one count
 * per state, and from the counts derives the ready share, panic, the
 * `available` flag of the endpoint (and of the ejected ones when panic
 * flips), the empty-pick reason and the public events; then it tells the
 * transition listeners (telemetry). Timed states are ended by one timer for
 * the whole set, armed at the earliest due time (a min-heap), and checked at
 * pick time too: no timer per endpoint, no tick over the endpoints.
 * @internal
 */
export class EndpointSet implements LoadContext, HealthOwner, EjectionGate {
  readonly #options: ResolvedOptions;
  readonly #balancer: Balancer;
  /** The client's events, reported through this function alone. */
  readonly #emit: EmitClientEvent;
  readonly #clock: () => number;
  readonly #byKey = new Map<string, Endpoint>();
  readonly #draining = new Set<Promise<void>>();
  /** Removed endpoints whose pools still drain (for pick explanations). */
  readonly #drainingEndpoints = new Set<Endpoint>();
  /** One count per state of the current endpoints. */
  readonly #count: Record<EndpointHealthState, number> = { ready: 0, open: 0, probing: 0, ejected: 0 };
  /** The ejected endpoints (their `available` flag follows panic). */
  readonly #ejected = new Set<Endpoint>();
  readonly #due = new DueHeap<Endpoint>();
  #dueTimer: NodeJS.Timeout | undefined;
  /** When the armed timer is meant to fire (Infinity: none armed). */
  #dueArmedFor = Infinity;
  readonly #onDueTimer = (): void => {
    this.#dueTimer = undefined;
    this.#dueArmedFor = Infinity;
    this.runDue(this.#clock());
  };
  readonly #listeners: TransitionListener[] = [];
  /** Sends the probes a probing picker asks for (idle unless the balancer probes). */
  readonly #prober: Prober;
  #picker: Picker<Endpoint>;
  #panic = false;
  /** True while a membership change is applied. */
  #applying = false;
  #closed = false;
  #neutralMs = 0;
  #neutralAt = -Infinity;
  /** The last pick that found nothing passed over an endpoint at its concurrency limit. */
  #limited = false;
  /** The time of the pick in progress, or -1 between picks. */
  #pickingAt = -1;
  /** True once a snapshot was applied. */
  hasSnapshot = false;

  constructor(options: ResolvedOptions, balancer: Balancer, emit: EmitClientEvent, clock: () => number = performanceClock) {
    this.#options = options;
    this.#balancer = balancer;
    this.#emit = emit;
    this.#clock = clock;
    // Answers go to the picker of the moment: a probe sent before a membership change still counts after it.
    this.#prober = new Prober(clock, () => this.#picker.probing);
    this.#picker = balancer.createPicker<Endpoint>([]);
  }

  /** Adds a listener of every health transition (each reported once, after the counts and events). */
  onTransition(listener: TransitionListener): void {
    this.#listeners.push(listener);
  }

  /** All current (non-removed) endpoints. */
  get endpoints(): IterableIterator<Endpoint> {
    return this.#byKey.values();
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** The current endpoint of an instance key, if the set holds it. */
  get(key: string): Endpoint | undefined {
    return this.#byKey.get(key);
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

  /** Probe counts and the pool's size, when the balancer probes (`prequal()`); else undefined. */
  get probes(): (ProbeCounts & { readonly poolSize: number }) | undefined {
    const probing = this.#picker.probing;
    return probing === undefined ? undefined : { ...this.#prober.counts, poolSize: probing.poolSize };
  }

  /** How many endpoints picks may choose now: ready and probing ones, and in panic the ejected ones too. */
  get availableCount(): number {
    const c = this.#count;
    return c.ready + c.probing + (this.#panic ? c.ejected : 0);
  }

  /** How many current endpoints are in each state. */
  get counts(): Readonly<Record<EndpointHealthState, number>> {
    return this.#count;
  }

  /** Why a pick finds nothing now (see {@link EmptyReason}). */
  emptyReason(): EmptyReason {
    const c = this.#count;
    if (c.open + c.probing > 0) return 'circuitOpen';
    return c.ejected > 0 ? 'ejected' : 'noEndpoints';
  }

  /** The ejection cap (maxEjectionPercent, at least one always allowed), asked by a health state reaching its threshold. */
  mayEject(): boolean {
    const o = this.#options.outlier;
    return o !== false && mayEject(this.#count.ejected, this.#byKey.size, o.maxEjectionPercent);
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

  /** The set's clock. */
  clockMs(): number {
    return this.#clock();
  }

  /** The time of the pick in progress (one clock read per pick, not one per candidate), else the clock. */
  nowMs(): number {
    return this.#pickingAt >= 0 ? this.#pickingAt : this.#clock();
  }

  /**
   * Picks an endpoint for one attempt starting at `nowMs` (the set's clock),
   * honouring probing trials (one at a time). Hot path. Due states are ended
   * first when their time came (the timer may run late).
   */
  pick(context: PickContext | undefined, nowMs: number): PickHandle | EmptyPick {
    if (nowMs >= this.#due.nextAt) this.runDue(nowMs);
    if (this.availableCount === 0) return EMPTY[this.emptyReason()];
    this.#pickingAt = nowMs;
    try {
      const ep = this.#picker.pick(context);
      if (ep === undefined) return EMPTY[this.emptyReason()];
      // A probing picker owes probes for this pick: sent in the background, bounded.
      const probing = this.#picker.probing;
      if (probing !== undefined) this.#prober.probeFor(probing);
      // `available` is checked too for a custom balancer that does not honour it; the limit before a probing trial is taken.
      if (ep.available && underLimit(ep) && ep.health.tryAcquire()) return new PickHandle(ep, nowMs);
      const other = this.#pickAvoiding(ep, context);
      if (other !== undefined) return new PickHandle(other, nowMs);
      return EMPTY[this.#limited ? 'concurrencyLimit' : this.emptyReason()];
    } finally {
      this.#pickingAt = -1;
    }
  }

  /** The pick's first choice could not take it: another one, avoiding every endpoint that could not. Sets {@link EndpointSet.#limited}. */
  #pickAvoiding(first: Endpoint, context: PickContext | undefined): Endpoint | undefined {
    const exclude = new Set(context?.exclude as ReadonlySet<Endpoint> | undefined);
    exclude.add(first);
    let limited = first.limit !== undefined && first.available && first.load.inFlight >= first.limit.limit;
    this.#limited = false;
    const ctx: PickContext = { hashKey: context?.hashKey, exclude };
    for (let i = 0; i < this.#picker.endpoints.length; i++) {
      const ep = this.#picker.pick(ctx);
      if (ep === undefined || exclude.has(ep)) break;
      if (ep.available) {
        if (!underLimit(ep)) limited = true;
        else if (ep.health.tryAcquire()) return ep;
      }
      exclude.add(ep);
    }
    this.#limited = limited;
    return undefined;
  }

  /** An attempt ended (from its {@link PickHandle}): the outcome is an input to the endpoint's health. */
  attemptEnded(ep: Endpoint, outcome: AttemptOutcome, startedIn: HealthState, nowMs: number): HealthTransition | undefined {
    if (outcome === 'shed') this.#emit('shed', ep.info);
    const t = ep.health.outcome(outcome, startedIn, nowMs, this);
    if (t !== undefined) this.#transitioned(ep, t);
    return t;
  }

  /** An answer carried a load report: with `rif`, a free probe for a probing picker. */
  loadReported(ep: Endpoint, report: LoadReport): void {
    const probing = this.#picker.probing;
    if (probing === undefined) return;
    const result = probeResultOf(report);
    if (result !== undefined) probing.result(ep, result);
  }

  /** An endpoint's concurrency limit changed: the `concurrencyLimit` event (with the limit's inputs). */
  limitChanged(ep: Endpoint): void {
    const limit = ep.limit;
    if (limit !== undefined) this.#emit('concurrencyLimit', ep.info, limit.stats());
  }

  /** Ends every timed state due at `nowMs` (the set's timer calls it; so do picks, and tests with their own clock). */
  runDue(nowMs: number): void {
    const due = this.#due;
    while (due.nextAt <= nowMs) {
      const ep = due.pop();
      const t = ep.health.due(nowMs); // undefined for an entry whose state already ended (a trial, a removal)
      if (t !== undefined) this.#transitioned(ep, t);
    }
    this.#armDue();
  }

  /** Arms the one timer for the earliest due time, if it is earlier than the armed one. */
  #armDue(): void {
    const at = this.#due.nextAt;
    if (this.#closed || at === Infinity || at >= this.#dueArmedFor) return;
    if (this.#dueTimer !== undefined) clearTimeout(this.#dueTimer);
    // +1: a Node timer may fire up to 1 ms early by performance.now(); runDue re-arms if it still did.
    const t = setTimeout(this.#onDueTimer, Math.max(0, Math.ceil(at - this.#clock())) + 1);
    t.unref();
    this.#dueTimer = t;
    this.#dueArmedFor = at;
  }

  /**
   * The one place a health transition lands: counts, availability, panic,
   * the load's cold restart, the public event, then the listeners. O(1),
   * plus O(ejected) flag writes when panic flips.
   */
  #transitioned(ep: Endpoint, t: HealthTransition): void {
    const { from, to } = t;
    const c = this.#count;
    if (from.kind !== 'removed') c[from.kind]--;
    if (from.kind === 'ejected') this.#ejected.delete(ep);
    if (to.kind !== 'removed') c[to.kind]++;
    if (to.kind === 'ejected') this.#ejected.add(ep);
    if (to.kind === 'open' || to.kind === 'ejected') {
      this.#due.push(to.until, ep);
      this.#armDue();
    }
    // Back from an open breaker or an ejection: cold again, and slow start applies again.
    if (to.kind === 'probing' || (to.kind === 'ready' && from.kind === 'ejected')) {
      ep.load.rejoined();
      ep.reported.rejoined();
    }
    ep.available = this.#availableIn(to);
    // During a membership change, panic and the picker are settled once at its end.
    if (!this.#applying && !this.#updatePanic()) this.#picker.availabilityChanged?.();
    const event = healthEvent(from, to);
    if (event === 'eject' && to.kind === 'ejected') this.#emit('eject', ep.info, to.durationMs);
    else if (event !== undefined && event !== 'eject') this.#emit(event, ep.info);
    for (const l of this.#listeners) l(ep, from, to);
  }

  /** Whether an endpoint in `state` may be picked, given panic now. */
  #availableIn(state: HealthState): boolean {
    const k = state.kind;
    return k === 'ready' || k === 'probing' || (k === 'ejected' && this.#panic);
  }

  /**
   * Panic from the counts: the ready share (ready and probing) below the
   * threshold. When it flips, the ejected endpoints' flags follow, the picker
   * is told and `panic` is emitted; returns whether it flipped.
   */
  #updatePanic(): boolean {
    const o = this.#options.outlier;
    const panic = o !== false && isPanic(this.#count.ready + this.#count.probing, this.#byKey.size, o.panicThresholdPercent);
    if (panic === this.#panic) return false;
    this.#panic = panic;
    for (const ep of this.#ejected) ep.available = panic;
    this.#picker.availabilityChanged?.();
    this.#emit('panic', panic);
    return true;
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
    this.#applying = true;
    let changed = false;
    try {
      for (const instance of change.removed) {
        const ep = this.#byKey.get(instance.key);
        if (ep === undefined) continue;
        this.#remove(ep);
        changed = true;
      }
      for (const instance of change.updated) if (this.#upsert(instance)) changed = true;
      for (const instance of change.added) if (this.#upsert(instance)) changed = true;
    } finally {
      this.#applying = false;
    }
    if (changed) this.#membershipChanged();
  }

  /** Membership changed: a new picker (inheriting the old one's probes of the endpoints still here), and panic settled from the counts (no scan). */
  #membershipChanged(): void {
    const previous = this.#picker.probing;
    this.#picker = this.#balancer.createPicker([...this.#byKey.values()]);
    if (previous !== undefined) this.#picker.probing?.inherit?.(previous);
    this.#updatePanic();
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
    const ep = new Endpoint(instance, this.#options, this, this);
    this.#byKey.set(instance.key, ep);
    this.#count.ready++;
    this.#emit('endpointAdded', ep.info);
  }

  #remove(ep: Endpoint): void {
    this.#byKey.delete(ep.instance.key);
    this.#leave(ep);
    this.#emit('endpointRemoved', ep.info);
    this.#drain(ep, this.#options.drainTimeoutMs);
  }

  /** The endpoint's health ends in `removed` (its due-heap entry, if any, is dropped when it comes up). */
  #leave(ep: Endpoint): void {
    const t = ep.health.remove(this.#clock());
    if (t !== undefined) this.#transitioned(ep, t);
    ep.available = false;
  }

  /** Closes the pool once in-flight requests finish (bounded), then destroys it. */
  #drain(ep: Endpoint, timeoutMs: number): void {
    this.#drainingEndpoints.add(ep);
    // Background: a draining pool never holds the process; settle at the deadline even though close() ignores signals.
    const done: Promise<void> = withDeadline(undefined, timeoutMs, () => ep.pool.close(), { background: true, settleAtDeadline: true, what: 'endpoint drain' })
      .catch(() => undefined)
      // close() resolved: a no-op; the drain timed out or failed: cut what is left.
      .then(() => ep.pool.destroy().catch(() => undefined))
      .finally(() => {
        this.#draining.delete(done);
        this.#drainingEndpoints.delete(ep);
      });
    this.#draining.add(done);
  }

  /** Stops taking picks and the due timer; pools drain within `graceMs` (0: destroyed at once). */
  async close(graceMs: number): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#prober.close();
      if (this.#dueTimer !== undefined) clearTimeout(this.#dueTimer);
      this.#dueTimer = undefined;
      this.#due.clear();
      this.#applying = true; // no panic or picker updates while everything leaves
      for (const ep of [...this.#byKey.values()]) {
        this.#byKey.delete(ep.instance.key);
        this.#leave(ep);
        this.#drain(ep, graceMs);
      }
      this.#picker = this.#balancer.createPicker<Endpoint>([]);
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
