import type { Balancer, BalancerEndpoint, PickContext, Picker, ReportedLoadView } from './balancer.js';
import { checkClock, checkRandom, emptyPicker } from './balancer-util.js';
import { edfPicker } from './balancer-weighted.js';
import { checkNumber, checkOptions, optionKeys } from './validate.js';

/** Options of {@link loadWeightedRoundRobin}. */
export interface LoadWeightedRoundRobinOptions {
  /**
   * How much errors cost: the weight is `rps / (utilization + eps / rps × penalty)`.
   * Default 1.0, the value Envoy's documentation recommends (gRPC A58's
   * default, 0, ignores errors: an endpoint failing fast would look idle and
   * draw more traffic). ≥ 0.
   */
  errorUtilizationPenalty?: number;
  /**
   * Weights are recomputed from the latest reports at most this often, ms
   * (A58's `weight_update_period`): lazily, at the first pick after the
   * period (no timer). Default 1000, at least 100 (grpc-go's floor).
   */
  weightUpdatePeriodMs?: number;
  /** Clock, ms. Default `Date.now`. */
  now?: () => number;
  /** Random source in [0, 1) for the phase of each new schedule. Default `Math.random`. */
  random?: () => number;
}

/** Defaults of {@link loadWeightedRoundRobin}. */
export const loadWeightedDefaults = Object.freeze({
  errorUtilizationPenalty: 1,
  weightUpdatePeriodMs: 1_000,
});

/**
 * The weight an endpoint's report gives under gRPC A58 / Envoy's client-side
 * WRR: `rps / (utilization + eps / rps × errorUtilizationPenalty)`, or 0 when
 * the report gives none — no report, or `rps` or `utilization` not > 0
 * (grpc-go's `OnLoadReport` ignores such a report and keeps the previous
 * weight). Finite and ≥ 0 for any input.
 */
export function reportedLoadWeight(reported: ReportedLoadView | undefined, errorUtilizationPenalty: number = loadWeightedDefaults.errorUtilizationPenalty): number {
  if (reported === undefined) return 0;
  const rps = reported.rps;
  const utilization = reported.utilization;
  if (rps === undefined || utilization === undefined || !(rps > 0) || !(utilization > 0)) return 0;
  const eps = reported.eps ?? 0;
  const weight = rps / (utilization + (eps / rps) * errorUtilizationPenalty);
  // Envoy caps the weight (at uint32 max); here only a non-finite result (absurd rps) is dropped.
  return Number.isFinite(weight) && weight > 0 ? weight : 0;
}

/**
 * Load-weighted round robin: gRPC's `weighted_round_robin` (gRFC A58) and
 * Envoy's `client_side_weighted_round_robin`, over the load each endpoint
 * reports in its ORCA `endpoint-load-metrics` header (`load.reported`).
 *
 * - Weight per endpoint: {@link reportedLoadWeight}, updated only from a
 *   report with `rps > 0` and `utilization > 0` (else the last weight stays,
 *   as in grpc-go's `endpointWeight.OnLoadReport`).
 * - A58's blackout (10 s of reports before use) and expiry (3 min) are the
 *   transport's: it sets `load.reported` only while a report may be used.
 *   An endpoint without a usable weight (new, silent, blacked out, expired)
 *   weighs the mean of the known weights (grpc-go's `newScheduler`; Envoy
 *   uses the median); with no known weight at all, every endpoint weighs the
 *   same (round robin), as today.
 * - Weights are recomputed at most every `weightUpdatePeriodMs`, at a pick
 *   (grpc-go and Envoy run a timer; a picker here owns none). Each new
 *   schedule is core's EDF ({@link weightedRoundRobin}'s, over the float
 *   weights) started at a random phase, so at one request at a time the
 *   heaviest endpoint does not win every first turn.
 * - Like every picker: skips unavailable endpoints, honours `exclude`.
 * - Explained picks push the chosen endpoint, its weight as score (higher
 *   gets more turns), and the signal: `reported-weight`, `mean-weight`, or
 *   `rotation` when all weights are equal.
 *
 * Servers report with `@proxyless/load-report` (or anything that writes ORCA's
 * header: Envoy, vLLM, Triton, grpc-go's ORCA interceptor).
 *
 * @example
 * ```ts
 * import { loadWeightedRoundRobin } from '@proxyless/core';
 * import { createClient } from '@proxyless/http-client';
 * const client = createClient({ service: 'users', balancer: loadWeightedRoundRobin() });
 * ```
 */
export function loadWeightedRoundRobin(options: LoadWeightedRoundRobinOptions = {}): Balancer {
  checkOptions('loadWeightedRoundRobin', options, optionKeys<LoadWeightedRoundRobinOptions>({ errorUtilizationPenalty: true, weightUpdatePeriodMs: true, now: true, random: true }));
  const penalty = checkNumber('errorUtilizationPenalty', options.errorUtilizationPenalty, loadWeightedDefaults.errorUtilizationPenalty, { min: 0 });
  const periodMs = checkNumber('weightUpdatePeriodMs', options.weightUpdatePeriodMs, loadWeightedDefaults.weightUpdatePeriodMs, { min: 100 });
  const now = checkClock('now', options.now);
  const random = checkRandom('random', options.random);
  return {
    name: 'load-weighted-round-robin',
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      const n = endpoints.length;
      if (n === 0) return emptyPicker(endpoints);
      /** The last weight each endpoint's reports gave (0: none usable). */
      const known = new Float64Array(n);
      /** The weights of the current schedule (the EDF normalises its copy). */
      const effective = new Float64Array(n);
      let mean = 0;
      let inner: Picker<E> = emptyPicker(endpoints);
      let nextUpdateAt = -Infinity;
      const update = (t: number): void => {
        nextUpdateAt = t + periodMs;
        let sum = 0;
        let count = 0;
        for (let i = 0; i < n; i++) {
          const reported = (endpoints[i] as E).load.reported;
          // No usable report (A58: blacked out or expired): the weight is gone, as grpc-go's weight() returns 0.
          if (reported === undefined) known[i] = 0;
          else {
            const w = reportedLoadWeight(reported, penalty);
            if (w > 0) known[i] = w;
          }
          const w = known[i] as number;
          if (w > 0) {
            sum += w;
            count++;
          }
        }
        mean = count === 0 ? 1 : sum / count;
        for (let i = 0; i < n; i++) effective[i] = (known[i] as number) > 0 ? (known[i] as number) : mean;
        // A random phase of up to two rounds: rebuilt every period, the schedule would otherwise always start at the heaviest class.
        inner = edfPicker(endpoints, effective.slice(), Math.floor(random() * 2 * n));
      };
      return {
        endpoints,
        pick(context?: PickContext): E | undefined {
          const t = now();
          if (t >= nextUpdateAt) update(t);
          const chosen = inner.pick(context);
          if (chosen !== undefined && context !== undefined) explain(chosen, context);
          return chosen;
        },
      };
      function explain(chosen: E, context: PickContext): void {
        if (context.candidates === undefined && context.signals === undefined) return;
        const i = endpoints.indexOf(chosen);
        const w = effective[i] as number;
        context.candidates?.push(chosen);
        context.scores?.push(w);
        let equal = true;
        for (let j = 0; j < n && equal; j++) equal = effective[j] === w;
        context.signals?.push(equal ? 'rotation' : (known[i] as number) > 0 ? 'reported-weight' : 'mean-weight');
      }
    },
  };
}
