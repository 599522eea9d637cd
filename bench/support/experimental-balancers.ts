/**
 * Bench-only experiments: variants of peak EWMA fused with reported load,
 * tried on the testbed before one goes into core. P2C over the available,
 * not-excluded endpoints; costs as named.
 */
import type { Balancer, BalancerEndpoint, PickContext, Picker } from '@proxyless/core';
import type { Build } from './builds.js';

type Cost = (e: BalancerEndpoint) => number;

const fresh = (ageMs: number, tauMs: number): number => (ageMs > 0 ? Math.exp(-ageMs / tauMs) : 1);

function p2c(name: string, cost: Cost, both?: (a: BalancerEndpoint, b: BalancerEndpoint) => boolean): Balancer {
  return {
    name,
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      return {
        endpoints,
        pick(context?: PickContext): E | undefined {
          const ok = (e: E): boolean => e.available !== false && !(context?.exclude?.has(e) ?? false);
          const n = endpoints.length;
          let a: E | undefined;
          let b: E | undefined;
          for (let t = 0; t < 8 && (a === undefined || b === undefined); t++) {
            const e = endpoints[Math.floor(Math.random() * n)]!;
            if (!ok(e)) continue;
            if (a === undefined) a = e;
            else if (e !== a) b = e;
          }
          if (a === undefined) a = endpoints.find(ok);
          if (a === undefined) return undefined;
          if (b === undefined) return a;
          if (both !== undefined) return both(a, b) ? a : b;
          const ca = cost(a);
          const cb = cost(b);
          return ca < cb || (ca === cb && Math.random() < 0.5) ? a : b;
        },
      };
    },
  };
}

const ewmaOf = (e: BalancerEndpoint): number => (e.load.ewmaMs > 0 ? e.load.ewmaMs : 1);

/** Server's requests in flight, faded, or this client's if larger / not reported. */
function rifOf(e: BalancerEndpoint, tauMs = 1_000): number {
  const r = e.load.reported;
  if (r?.rif === undefined) return e.load.inFlight;
  return Math.max(e.load.inFlight, r.rif * fresh(r.ageMs, tauMs));
}

/** `prequal(options)` of the build under test (bench-only settings to compare). */
const prequalWith = (options: Record<string, unknown>) => (b: Build): Balancer => (b.core as unknown as { prequal: (o: Record<string, unknown>) => Balancer }).prequal(options);
/** `prequalWhenReported({ prequal: options })` of the build under test: its defaults, then `options`. */
const compositeWith = (options: Record<string, unknown>) => (b: Build): Balancer =>
  (b.core as unknown as { prequalWhenReported: (o: Record<string, unknown>) => Balancer }).prequalWhenReported({ prequal: options });

export const EXPERIMENTS: Record<string, (build: Build) => Balancer> = {
  /** Prequal with the paper's cold rule: the lowest latency. */
  'x prequal lowest': prequalWith({ coldChoice: 'lowest' }),
  /** Prequal, hot above the median RIF. */
  'x prequal q0.5': prequalWith({ hotQuantile: 0.5 }),
  'x prequal lowest q0.5': prequalWith({ coldChoice: 'lowest', hotQuantile: 0.5 }),
  /** Fresher probes: each serves one pick. */
  'x prequal fresh': prequalWith({ maxReuse: 1, probeRate: 2 }),
  'x prequal q0.5 fresh': prequalWith({ hotQuantile: 0.5, maxReuse: 1, probeRate: 2 }),
  'x prequal q0.3': prequalWith({ hotQuantile: 0.3 }),
  'x prequal q0.5 r1': prequalWith({ hotQuantile: 0.5, probeRate: 1 }),
  'x prequal q0.5 r0.5': prequalWith({ hotQuantile: 0.5, probeRate: 0.5 }),
  /** No probes at all: the pool fed by the reports answers carry in-band. */
  'x prequal q0.5 r0': prequalWith({ hotQuantile: 0.5, probeRate: 0 }),
  'x prequal q0.3 r1': prequalWith({ hotQuantile: 0.3, probeRate: 1 }),
  /** The composite as it was at 12:25 on 5 Dec: ½ probe per pick, odds 1/latency, RIFs as reported, the threshold from the history. */
  'x composite 12:25': compositeWith({ probeRate: 0.5, latencyExponent: 1, rifAging: false, hotThresholdOf: 'history' }),
  /** Today's composite with one setting back (what each one brings). */
  'x composite ½ probe': compositeWith({ probeRate: 0.5 }),
  'x composite x=1': compositeWith({ latencyExponent: 1 }),
  'x composite x=4': compositeWith({ latencyExponent: 4 }),
  'x composite as reported': compositeWith({ rifAging: false }),
  'x composite history': compositeWith({ hotThresholdOf: 'history' }),
  /** The fused cost before 5 Dec: ewma × (max(in flight, rif) + 1) ÷ max(1 − utilisation, 0.05), reports faded over 1 s. */
  'x old fused': () =>
    p2c('x-old-fused', (e) => {
      const r = e.load.reported;
      if (r === undefined) return ewmaOf(e) * (e.load.inFlight + 1);
      const f = fresh(r.ageMs, 1_000);
      return (ewmaOf(e) * (rifOf(e) + 1)) / Math.max(1 - (r.utilization ?? 0) * f, 0.05);
    }),
  /** Peak EWMA × (max(local in flight, reported rif) + 1): no utilisation headroom. */
  'x ewma×rif': () => p2c('x-ewma-rif', (e) => ewmaOf(e) * (rifOf(e) + 1)),
  /** Same, the report fading over 200 ms. */
  'x ewma×rif fast fade': () => p2c('x-ewma-rif-200', (e) => ewmaOf(e) * (rifOf(e, 200) + 1)),
  /** Reported rif alone (least-request on the server's count). */
  'x rif': () => p2c('x-rif', (e) => rifOf(e)),
  /** Hot–cold in P2C: the one with fewer in flight (server's) unless within 1, then the lower latency. */
  'x hot-cold': () =>
    p2c('x-hot-cold', () => 0, (a, b) => {
      const ra = rifOf(a);
      const rb = rifOf(b);
      if (Math.abs(ra - rb) >= 1) return ra < rb;
      return ewmaOf(a) <= ewmaOf(b);
    }),
};
