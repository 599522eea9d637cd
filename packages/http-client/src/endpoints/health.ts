/**
 * One endpoint's health as one state machine: a discriminated union
 * ({@link HealthState}) moved only by {@link EndpointHealth}'s inputs, fed by
 * two small decision values ({@link FailureWindow}, {@link ConsecutiveFailures}).
 * Pure: no timer, no I/O, no clock read — every input carries its time. The
 * endpoint set reports each transition once, keeps one count per state and
 * runs one timer for the whole set at the earliest due time (endpoint-set.ts).
 *
 * Shapes: cockatiel's `CircuitBreakerPolicy` (state as a union with per-state
 * data, the decision a separate value), linkerd2-proxy's consecutive-failures
 * breaker (open → probation with a limit of one), Envoy's outlier detection
 * (the n-th ejection lasts n × base, capped; healthy time decays the streak).
 *
 * ## The table
 * An outcome is evidence only about the state its attempt started in: the
 * pick records the state object it saw, and an outcome of an attempt that
 * started in an earlier state moves nothing (it also keeps an attempt that
 * hung across an open breaker from re-opening it after a good trial). By
 * identity, not by start time: a call's start time can precede a state that
 * began between the call's start and its pick (a timer ran in between), and
 * a probing trial misread as "older" would hold the trial slot forever.
 *
 * | from | input | to | public event |
 * |---|---|---|---|
 * | ready | success | ready (window +1 call; consecutive count reset) | – |
 * | ready | failure; the window trips (≥ volumeThreshold calls, failure rate > errorThresholdPercentage) | open(now + resetTimeoutMs) | `breakerOpen` |
 * | ready | failure; consecutive failures ≥ N and the ejection cap allows | ejected(now + min(max, streak × base)) | `eject` |
 * | ready | failure; both of the above at once | **open** (the breaker wins: it is the stronger exclusion — panic does not override it — and it probes its own way back; the streak is not advanced) | `breakerOpen` |
 * | ready | failure; neither | ready (counted) | – |
 * | open | any outcome | open (not counted: the window is frozen while open) | – |
 * | open | due (now ≥ until) | probing(trial free) | `breakerHalfOpen` |
 * | probing | pick | probing(trial taken): one trial at a time | – |
 * | probing | trial success | ready | `breakerClose` |
 * | probing | trial failure | open(now + resetTimeoutMs) | `breakerOpen` |
 * | probing | trial cancelled or shed | probing(trial free) | – |
 * | ejected | due (now ≥ until) | ready (the streak starts decaying) | `restore` |
 * | ejected | failure of panic traffic (started while ejected) that trips the window | open(now + resetTimeoutMs) | `breakerOpen` |
 * | ejected | other outcomes | ejected (the window counts them; consecutive failures are not counted) | – |
 * | any | removal | removed (terminal: every later input is ignored) | – |
 *
 * A cancelled attempt (the caller gave up, a stalled process) is never the
 * endpoint's fault: it only frees a probing trial. Nor is a shed answer (the
 * server turned the request away under overload, `503` + `x-proxyless-shed`):
 * the endpoint is alive and said so; counting it would open breakers exactly
 * when a spike of low-priority work hits every endpoint at once.
 *
 * ## Room for what comes next
 * A concurrency limit and a server-reported load are more inputs to this
 * machine, not flags beside it:
 * - **adaptive concurrency limit**: an `inFlightChanged(n, limit)` input;
 *   `ready → saturated(since)` when `n ≥ limit` and back when a slot frees.
 *   The set counts `saturated` like any state (skipped by picks, counted as
 *   ready for panic: the endpoint is healthy, only full).
 * - **server-reported load** (ORCA `endpoint-load-metrics`): a `loadReport`
 *   input feeding a third decision value beside the window and the detector
 *   (utilisation over a threshold, or a 503 with Retry-After) —
 *   `ready → shedding(until)`, due like `open`, with no trial (the server said
 *   when to come back).
 * Both would add a case to {@link HealthState}, a row to the table above, a
 * count in the set and an event in {@link healthEvent}; the set's
 * availability, panic and empty-pick reason stay derived from the counts.
 * @internal
 * @module
 */
import type { BreakerOptions, OutlierDetectionOptions } from '../config/options.js';
import type { AttemptOutcome } from '../shared/attempt-outcome.js';
import { RollingCounts } from '../shared/rolling-counts.js';

/**
 * An endpoint's health. `since` is when the state began (the set's clock,
 * ms); `until` when a timed state is due to end.
 * - `ready`: picks may choose it.
 * - `open`: its breaker tripped; skipped by every pick (panic included) until `until`.
 * - `probing`: the breaker's reset timeout passed; one trial attempt at a time decides.
 * - `ejected`: outlier detection took it out until `until` (`streak`: consecutive ejections, the duration multiplier); panic mode still uses it.
 * - `removed`: it left the service's snapshot.
 * @internal
 */
export type HealthState =
  | { readonly kind: 'ready'; readonly since: number }
  | { readonly kind: 'open'; readonly since: number; readonly until: number }
  | { readonly kind: 'probing'; readonly since: number; trialInFlight: boolean }
  | { readonly kind: 'ejected'; readonly since: number; readonly until: number; readonly durationMs: number; readonly streak: number }
  | { readonly kind: 'removed'; readonly since: number };

/** The state's name. @internal */
export type HealthKind = HealthState['kind'];

/**
 * An endpoint's health as `stats()` reports it: `ready` (picks may choose
 * it), `open` (its breaker tripped), `probing` (half-open: one trial at a
 * time), `ejected` (outlier detection took it out for a while; panic mode
 * still uses it).
 */
export type EndpointHealthState = 'ready' | 'open' | 'probing' | 'ejected';

/** Public breaker states, read from the health state: `open` is `open`, `probing` is `halfOpen`, every other state `closed`. */
export type BreakerState = 'closed' | 'open' | 'halfOpen';

/** The breaker state a health state reads as. @internal */
export function breakerStateOf(kind: HealthKind): BreakerState {
  return kind === 'open' ? 'open' : kind === 'probing' ? 'halfOpen' : 'closed';
}

/** One transition, reported once. @internal */
export interface HealthTransition {
  readonly from: HealthState;
  readonly to: HealthState;
}

/** The public event a transition is reported as (undefined for removal). @internal */
export type HealthEvent = 'breakerOpen' | 'breakerHalfOpen' | 'breakerClose' | 'eject' | 'restore';

/** Which public event a transition is: one place, read by the set (client events) and telemetry (span events, metrics). @internal */
export function healthEvent(from: HealthState, to: HealthState): HealthEvent | undefined {
  switch (to.kind) {
    case 'open':
      return 'breakerOpen';
    case 'probing':
      return 'breakerHalfOpen';
    case 'ejected':
      return 'eject';
    case 'ready':
      return from.kind === 'probing' ? 'breakerClose' : from.kind === 'ejected' ? 'restore' : undefined;
    default:
      return undefined;
  }
}

/** May an endpoint in this state be picked (before panic and a probing trial are considered)? */
export function isUsable(kind: HealthKind): boolean {
  return kind === 'ready' || kind === 'probing';
}

/**
 * The breaker's decision value: calls and failures over a rolling window of
 * `rollingBuckets` buckets, advanced lazily from the clock (no rotation
 * timer). Trips with at least `volumeThreshold` calls in the window and a
 * failure rate above `errorThresholdPercentage` — opossum's rule.
 * @internal
 */
export class FailureWindow extends RollingCounts {
  readonly #volume: number;
  readonly #thresholdPercent: number;

  constructor(options: Required<BreakerOptions>) {
    super(options.rollingWindowMs, options.rollingBuckets);
    this.#volume = options.volumeThreshold;
    this.#thresholdPercent = options.errorThresholdPercentage;
  }

  /** Counts one call; returns true when the window now trips. */
  record(nowMs: number, failed: boolean): boolean {
    if (!failed) {
      this.add(nowMs, 1, 0);
      return false;
    }
    this.add(nowMs, 1, 1);
    const calls = this.sumA(nowMs);
    return calls >= this.#volume && (this.sumB(nowMs) / calls) * 100 > this.#thresholdPercent;
  }

  /** Calls and failures in the window now. */
  counts(nowMs: number): { calls: number; failures: number } {
    return { calls: this.sumA(nowMs), failures: this.sumB(nowMs) };
  }
}

/**
 * Outlier detection's decision value (Envoy's consecutive-5xx detector):
 * consecutive failures, and the ejection streak — the n-th ejection in a row
 * lasts `n × baseEjectionTimeMs`, capped at `maxEjectionTimeMs`; the streak
 * decays by one for every `maxEjectionTimeMs` spent healthy since the last
 * ejection ended.
 * @internal
 */
export class ConsecutiveFailures {
  readonly #options: Required<OutlierDetectionOptions>;
  #count = 0;
  #streak = 0;
  /** When the last ejection ended (the set's clock). */
  #lastEndedAt = 0;

  constructor(options: Required<OutlierDetectionOptions>) {
    this.#options = options;
  }

  get count(): number {
    return this.#count;
  }

  /** Consecutive ejections so far (before decay). */
  get streak(): number {
    return this.#streak;
  }

  reset(): void {
    this.#count = 0;
  }

  /** Counts one failure; true when the threshold is reached (the caller decides whether the cap allows an ejection). */
  failure(): boolean {
    return ++this.#count >= this.#options.consecutiveFailures;
  }

  /** Starts an ejection at `nowMs`: decays the streak by the healthy time since the last one, then extends it. */
  eject(nowMs: number): { durationMs: number; streak: number } {
    const o = this.#options;
    if (this.#streak > 0) this.#streak = Math.max(0, this.#streak - Math.floor(Math.max(0, nowMs - this.#lastEndedAt) / o.maxEjectionTimeMs));
    this.#streak++;
    this.#count = 0;
    return { durationMs: Math.min(o.maxEjectionTimeMs, o.baseEjectionTimeMs * this.#streak), streak: this.#streak };
  }

  /** The ejection ended at `nowMs`. */
  ended(nowMs: number): void {
    this.#lastEndedAt = nowMs;
    this.#count = 0;
  }
}

/** May one more of `total` endpoints be ejected when `ejected` already are? At least one always may. @internal */
export function mayEject(ejected: number, total: number, maxEjectionPercent: number): boolean {
  if (total <= 0 || maxEjectionPercent <= 0) return false;
  if (ejected === 0) return true;
  return ((ejected + 1) * 100) / total <= maxEjectionPercent;
}

/** Is the ready share (ready and probing endpoints) below the panic threshold? @internal */
export function isPanic(ready: number, total: number, panicThresholdPercent: number): boolean {
  return total > 0 && panicThresholdPercent > 0 && (ready * 100) / total < panicThresholdPercent;
}

/** What an ejection needs from the set: whether the ejection cap allows one more. @internal */
export interface EjectionGate {
  mayEject(): boolean;
}

/** The options health reads (`false`: that detector is off). @internal */
export interface HealthOptions {
  readonly breaker: Required<BreakerOptions> | false;
  readonly outlier: Required<OutlierDetectionOptions> | false;
}

/**
 * One endpoint's health: the state and its two decision values. Each input
 * returns the transition it caused, or undefined; the caller reports it.
 * @internal
 */
export class EndpointHealth {
  #state: HealthState;
  readonly #window: FailureWindow | undefined;
  readonly #detector: ConsecutiveFailures | undefined;
  readonly #resetTimeoutMs: number;

  constructor(options: HealthOptions, nowMs: number) {
    this.#state = { kind: 'ready', since: nowMs };
    this.#window = options.breaker ? new FailureWindow(options.breaker) : undefined;
    this.#detector = options.outlier ? new ConsecutiveFailures(options.outlier) : undefined;
    this.#resetTimeoutMs = options.breaker ? options.breaker.resetTimeoutMs : 0;
  }

  get state(): HealthState {
    return this.#state;
  }

  /** When the state is due to end (`open`, `ejected`), else Infinity. */
  get dueAt(): number {
    const s = this.#state;
    return s.kind === 'open' || s.kind === 'ejected' ? s.until : Infinity;
  }

  /** The failure-rate window (undefined with breakers off). */
  get window(): FailureWindow | undefined {
    return this.#window;
  }

  /** The consecutive-failures detector (undefined with outlier detection off). */
  get detector(): ConsecutiveFailures | undefined {
    return this.#detector;
  }

  #to(to: HealthState): HealthTransition {
    const from = this.#state;
    this.#state = to;
    return { from, to };
  }

  #open(nowMs: number): HealthTransition {
    this.#detector?.reset();
    return this.#to({ kind: 'open', since: nowMs, until: nowMs + this.#resetTimeoutMs });
  }

  /**
   * Input at pick time: may an attempt start now? `ready` and `ejected` (a
   * panic pick): yes; `probing`: only while no trial is in flight (taking it);
   * `open`, `removed`: no.
   */
  tryAcquire(): boolean {
    const s = this.#state;
    switch (s.kind) {
      case 'ready':
      case 'ejected':
        return true;
      case 'probing':
        if (s.trialInFlight) return false;
        s.trialInFlight = true;
        return true;
      default:
        return false;
    }
  }

  /** Input: an attempt picked in state `startedIn` (see {@link EndpointHealth.state}) ended with `outcome` at `nowMs`. */
  outcome(outcome: AttemptOutcome, startedIn: HealthState, nowMs: number, gate: EjectionGate): HealthTransition | undefined {
    const s = this.#state;
    if (startedIn !== s) return undefined; // evidence about an earlier state
    switch (s.kind) {
      case 'ready': {
        if (outcome === 'cancelled' || outcome === 'shed') return undefined;
        const failed = outcome !== 'success';
        const trips = this.#window?.record(nowMs, failed) === true;
        const detector = this.#detector;
        if (detector === undefined) return trips ? this.#open(nowMs) : undefined;
        if (!failed) {
          detector.reset();
          return undefined;
        }
        const reached = detector.failure();
        if (trips) return this.#open(nowMs); // the breaker wins a tie (see the table)
        if (!reached || !gate.mayEject()) return undefined;
        const { durationMs, streak } = detector.eject(nowMs);
        return this.#to({ kind: 'ejected', since: nowMs, until: nowMs + durationMs, durationMs, streak });
      }
      case 'probing':
        if (outcome === 'cancelled' || outcome === 'shed') {
          s.trialInFlight = false;
          return undefined;
        }
        if (outcome === 'success') {
          this.#window?.record(nowMs, false);
          this.#detector?.reset();
          return this.#to({ kind: 'ready', since: nowMs });
        }
        return this.#open(nowMs);
      case 'ejected':
        if (outcome === 'cancelled' || outcome === 'shed') return undefined;
        if (this.#window?.record(nowMs, outcome !== 'success') === true) {
          this.#detector?.ended(nowMs);
          return this.#open(nowMs);
        }
        return undefined;
      default:
        return undefined; // open: not counted; removed: terminal
    }
  }

  /** Input: the clock reached `nowMs`; ends an `open` or `ejected` state that is due. */
  due(nowMs: number): HealthTransition | undefined {
    const s = this.#state;
    if (s.kind === 'open' && nowMs >= s.until) return this.#to({ kind: 'probing', since: nowMs, trialInFlight: false });
    if (s.kind === 'ejected' && nowMs >= s.until) {
      this.#detector?.ended(nowMs);
      return this.#to({ kind: 'ready', since: nowMs });
    }
    return undefined;
  }

  /** Input: the endpoint left the set. */
  remove(nowMs: number): HealthTransition | undefined {
    return this.#state.kind === 'removed' ? undefined : this.#to({ kind: 'removed', since: nowMs });
  }
}
