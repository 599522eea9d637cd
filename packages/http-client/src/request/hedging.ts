/**
 * What a client keeps for hedged requests: the latency window a percentile
 * delay reads (made on first use), the counters `stats().hedges` reports,
 * and the events. Nothing here runs unless a policy sets `hedge`.
 * @internal
 * @module
 */
import type { HedgePolicy } from '../config/policy.js';
import type { EmitClientEvent } from '../shared/events.js';
import { LatencyWindow } from './latency-window.js';
import type { HedgeStats } from './request-types.js';

/** @internal */
export class Hedging {
  /** Every answered attempt's latency, once a percentile hedge asked for it (undefined until then: no recording). */
  latency: LatencyWindow | undefined;
  readonly counts: HedgeStats = { sent: 0, won: 0, cancelled: 0, refused: 0 };
  readonly emit: EmitClientEvent;

  constructor(emit: EmitClientEvent) {
    this.emit = emit;
  }

  /** The delay before a hedge under `policy`, ms; undefined while a percentile has too few samples (the request is not hedged). */
  delayFor(policy: HedgePolicy): number | undefined {
    if (policy.delayMs !== undefined) return policy.delayMs;
    const window = (this.latency ??= new LatencyWindow());
    const p = window.percentile(policy.percentile ?? 95, policy.minSamples);
    return p === undefined ? undefined : Math.max(policy.minDelayMs, p);
  }
}
