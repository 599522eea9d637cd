import type { EndpointLoad } from '@proxyless/core';
import type { AttemptObserver, AttemptOutcome } from '../shared/attempt-outcome.js';

/** What a {@link LoadTracker} reads from its endpoint set. @internal */
export interface LoadContext {
  /** The set's neutral latency (ms): 0 when nothing is known yet. */
  neutralMs(nowMs: number): number;
  /** The time (`performance.now()`): during a pick, the pick's own time, so the candidates' estimates cost no clock read each. */
  nowMs(): number;
}

/** Decay time constant of the latency estimate, in ms (Finagle's and Linkerd's default). */
export const DECAY_TAU_MS = 10_000;
/** A failure costs at most this multiple of the set's neutral latency (or the failed call's own elapsed time, if longer). */
const FAILURE_PENALTY = 2;
/**
 * Cost of a cold endpoint (no answer yet) that already has a request
 * outstanding: as Finagle does, it is not picked again before it answers
 * unless every candidate is in the same state (then in-flight counts decide).
 */
const COLD_BUSY_MS = 1e9;
/**
 * Cost of a cold endpoint with nothing in flight: below any latency a real
 * answer can take (1 µs), so it wins the next pick it is a candidate of —
 * Finagle's cost 0 (core reads 0 as "unknown" and would let in-flight counts
 * decide, where a new endpoint only wins half the ties).
 */
const COLD_IDLE_MS = 1e-3;

/**
 * One endpoint's load as balancers read it: requests in flight and a
 * peak-EWMA latency estimate that
 * - decays when read (no timer over the endpoints), toward the set's neutral
 *   latency rather than 0, so an idle slow endpoint is probed again but an
 *   idle one never looks faster than the rest;
 * - tries a cold endpoint at once, one request at a time: idle and without
 *   an answer yet, it is the cheapest candidate (a new instance is served at
 *   the next pick it is drawn for); with a request outstanding, it is not
 *   given a second before its first answer;
 * - charges time in flight: while requests are outstanding, their mean age
 *   counts as latency, so a hung endpoint stops being picked before its first
 *   timeout fires;
 * - takes a bounded failure penalty: `max(elapsed, 2 × neutral)`, never a
 *   multiple of its own (possibly already penalised) estimate;
 * - is cold again when the endpoint rejoins after an ejection or an open breaker.
 * Observes attempts through {@link AttemptObserver}.
 * @internal
 */
export class LoadTracker implements EndpointLoad, AttemptObserver {
  inFlight = 0;
  /** When the endpoint (re)joined the ready set, epoch ms (slow start reads it). */
  readySince = Date.now();
  successes = 0;
  failures = 0;
  readonly #context: LoadContext;
  /** Sum of the start times of the attempts in flight (their mean age is charged as latency). */
  #startSum = 0;
  #value = 0;
  #stamp = 0;
  #sampled = false;

  constructor(context: LoadContext) {
    this.#context = context;
  }

  /** The estimate a balancer reads now, in ms. */
  get ewmaMs(): number {
    const now = this.#context.nowMs();
    const n = this.inFlight;
    if (!this.#sampled) return n > 0 ? COLD_BUSY_MS : COLD_IDLE_MS;
    let estimate = this.#value;
    const floor = this.#context.neutralMs(now);
    if (estimate > floor) estimate = floor + (estimate - floor) * Math.exp(-(now - this.#stamp) / DECAY_TAU_MS);
    if (n > 0) {
      const age = now - this.#startSum / n;
      if (age > estimate) estimate = age;
    }
    return estimate;
  }

  /** The last recorded estimate, without decay or in-flight charge (for the set's median). */
  get rawMs(): number {
    return this.#sampled ? this.#value : 0;
  }

  get sampled(): boolean {
    return this.#sampled;
  }

  /**
   * Back from an ejection or an open breaker: forget the old estimate, so the
   * endpoint is cold again — probed at once, and given no second request before
   * it answers (a still-broken endpoint gets one probe at a time, not a burst).
   */
  rejoined(): void {
    this.readySince = Date.now();
    this.#sampled = false;
  }

  started(nowMs: number): void {
    this.inFlight++;
    this.#startSum += nowMs;
  }

  ended(outcome: AttemptOutcome, elapsedMs: number, nowMs: number, startedAt: number): void {
    this.inFlight--;
    this.#startSum = this.inFlight === 0 ? 0 : this.#startSum - startedAt;
    if (outcome === 'cancelled') return;
    if (outcome === 'success') {
      this.successes++;
      this.#observe(elapsedMs, nowMs);
    } else {
      this.failures++;
      this.#observe(Math.max(elapsedMs, FAILURE_PENALTY * this.#context.neutralMs(nowMs), 1), nowMs);
    }
  }

  /** Peak EWMA over an unevenly spaced series: a higher sample replaces the estimate, a lower one pulls it with weight 1 − e^(−Δt/τ). */
  #observe(sampleMs: number, nowMs: number): void {
    if (!this.#sampled || sampleMs > this.#value) {
      this.#value = sampleMs;
    } else {
      const w = Math.exp(-Math.max(0, nowMs - this.#stamp) / DECAY_TAU_MS);
      this.#value = this.#value * w + sampleMs * (1 - w);
    }
    this.#stamp = nowMs;
    this.#sampled = true;
  }
}
