import type { EndpointLoad, ReportedLoadView } from '@proxyless/core';
import type { ReportedLoad } from './reported-load.js';
import type { AttemptObserver, AttemptOutcome } from '../shared/attempt-outcome.js';

/** What a {@link LoadTracker} reads from its endpoint set. @internal */
export interface LoadContext {
  /** The set's neutral latency (ms), the scale of the failure penalty: 0 when nothing is known yet. */
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
 * The least an answered endpoint's estimate reads: a long-idle estimate decays
 * to about this instead of underflowing to 0, which core reads as "unknown".
 */
const MIN_ESTIMATE_MS = 1e-6;

/**
 * One endpoint's load as balancers read it: requests in flight and a
 * peak-EWMA latency estimate that
 * - decays toward 0 with time constant {@link DECAY_TAU_MS}, as Finagle's and
 *   tower's (Linkerd's) PeakEwma do: each read decays the estimate as of now
 *   (no timer over the endpoints), so an idle endpoint ends up cheaper than a
 *   busy one and is tried again. It used to decay toward the set's neutral
 *   latency and never below it; with two endpoints the neutral was the slower
 *   one's own estimate, so an endpoint whose first (cold) answer was slow kept
 *   that estimate and, at one request at a time, never won a pick again (1 of
 *   332 requests through the gateway over 15 minutes);
 * - tries a cold endpoint at once, one request at a time: idle and without
 *   an answer yet, it is the cheapest candidate (a new instance is served at
 *   the next pick it is drawn for); with a request outstanding, it is not
 *   given a second before its first answer;
 * - charges time in flight: while requests are outstanding, their mean age
 *   counts as latency, so a hung endpoint stops being picked before its first
 *   timeout fires;
 * - takes a bounded failure penalty: `max(elapsed, 2 × neutral)`, never a
 *   multiple of its own (possibly already penalised) estimate; like any
 *   estimate, it fades toward 0, so a failed endpoint is tried again;
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
  /** Answers the server shed (503 + `x-proxyless-shed`): neither successes nor failures, and no latency sample. */
  shed = 0;
  readonly #context: LoadContext;
  readonly #reported: ReportedLoad | undefined;
  /** Sum of the start times of the attempts in flight (their mean age is charged as latency). */
  #startSum = 0;
  #value = 0;
  #stamp = 0;
  #sampled = false;

  /** @param reported - the endpoint's server-reported load, read through {@link LoadTracker.reported}. */
  constructor(context: LoadContext, reported?: ReportedLoad) {
    this.#context = context;
    this.#reported = reported;
  }

  /** The server's own report, while gRPC A58 lets a balancer use it (the pick's time; no allocation per read). */
  get reported(): ReportedLoadView | undefined {
    return this.#reported?.view(this.#context.nowMs());
  }

  /** The estimate a balancer reads now, in ms (decayed as of now: a read moves the estimate's stamp, as in Finagle). */
  get ewmaMs(): number {
    const now = this.#context.nowMs();
    const n = this.inFlight;
    if (!this.#sampled) return n > 0 ? COLD_BUSY_MS : COLD_IDLE_MS;
    this.#decay(now);
    let estimate = Math.max(this.#value, MIN_ESTIMATE_MS);
    if (n > 0) {
      const age = now - this.#startSum / n;
      if (age > estimate) estimate = age;
    }
    return estimate;
  }

  /** The estimate as last recorded or read, without in-flight charge (for the set's median). */
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
    if (outcome === 'shed') {
      // A shed answer is fast and says nothing about the latency of served work: as a sample it would draw
      // more traffic to the overloaded endpoint, as a failure penalty it would punish an honest server.
      this.shed++;
      return;
    }
    if (outcome === 'success') {
      this.successes++;
      this.#observe(elapsedMs, nowMs);
    } else {
      this.failures++;
      this.#observe(Math.max(elapsedMs, FAILURE_PENALTY * this.#context.neutralMs(nowMs), 1), nowMs);
    }
  }

  /** Decays the estimate toward 0 as of `nowMs` (reads and answers compose: e^(−a/τ)·e^(−b/τ) = e^(−(a+b)/τ)). */
  #decay(nowMs: number): void {
    const dt = nowMs - this.#stamp;
    if (dt <= 0) return; // a pick's own time can be earlier than the last answer's
    this.#value *= Math.exp(-dt / DECAY_TAU_MS);
    this.#stamp = nowMs;
  }

  /**
   * Peak EWMA over an unevenly spaced series (Finagle's `observe`): a sample
   * above the estimate replaces it; a lower one pulls it with weight
   * 1 − e^(−Δt/τ), Δt since the last read or answer.
   */
  #observe(sampleMs: number, nowMs: number): void {
    if (!this.#sampled || sampleMs > this.#value) {
      this.#value = sampleMs;
    } else {
      const w = Math.exp(-Math.max(0, nowMs - this.#stamp) / DECAY_TAU_MS);
      this.#value = this.#value * w + sampleMs * (1 - w);
    }
    this.#stamp = Math.max(this.#stamp, nowMs);
    this.#sampled = true;
  }
}
