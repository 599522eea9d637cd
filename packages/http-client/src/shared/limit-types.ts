/**
 * The shapes of an endpoint's concurrency limit and of a service's admission
 * control as `stats()` and events show them. A leaf: imports nothing.
 * @module
 */

/** Which algorithm an endpoint's adaptive concurrency limit runs (see `ConcurrencyLimitOptions`). */
export type ConcurrencyLimitAlgorithm = 'vegas' | 'gradient2';

/** An endpoint's concurrency limit and its inputs, in `stats().endpoints[]` and the `concurrencyLimit` event. */
export interface ConcurrencyLimitStats {
  /** The algorithm. */
  algorithm: ConcurrencyLimitAlgorithm;
  /** Attempts the endpoint may have in flight now; a pick never chooses it at this count. */
  limit: number;
  /** The least RTT seen (re-probed now and then): the RTT without a queue, ms (0 before the first sample). */
  rttNoLoadMs: number;
  /** The last sample window's mean RTT, ms. */
  shortRttMs: number;
  /** The RTT's long-term average (EMA over 600 windows), ms. */
  longRttMs: number;
  /** How many times the (whole) limit changed. */
  changes: number;
  /** Attempts that ended in a drop (timeout, failure status or shed). */
  drops: number;
  /** Picks that passed this endpoint over because it was at its limit. */
  atLimit: number;
}

/** A service's admission control in `stats().admission`. */
export interface AdmissionStats {
  /** Attempts counted in the window (admitted or rejected here). */
  requests: number;
  /** Attempts the service accepted in the window (answered with anything but an overload answer). */
  accepts: number;
  /** The probability the next attempt is rejected locally (0 up to `maxRejectProbability`). */
  rejectProbability: number;
  /** Attempts rejected locally since the client started. */
  rejected: number;
}
