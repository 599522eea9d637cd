/**
 * Bench helper (run by hand): ns per `prequal()` pick over 12 endpoints whose pool is full and
 * refreshed every pick (as in-band reports do), for the settings named on the command line.
 *   node --import tsx bench/support/prequal-pick-cost.ts
 */
import { prequal, type BalancerEndpoint, type PrequalOptions } from '@proxyless/core';

function endpoints(n: number): BalancerEndpoint[] {
  return Array.from({ length: n }, (_, i) => ({
    instance: { key: `e${i}`, id: `e${i}`, service: 's', address: '10.0.0.1', port: 8000 + i, tags: [], meta: {}, weights: { passing: 1, warning: 1 }, datacenter: undefined, zone: undefined, health: 'passing' },
    load: { inFlight: i % 3, ewmaMs: 80 + i, readySince: 0, reported: { utilization: 0.5, rps: 50, eps: 0, rif: 4, latencyMs: 80, ageMs: 10, report: {} } },
  })) as unknown as BalancerEndpoint[];
}

function nsPerPick(options: PrequalOptions, picks = 400_000): number {
  const set = endpoints(12);
  const picker = prequal(options).createPicker(set);
  const probing = picker.probing!;
  let t = 0;
  for (let i = 0; i < picks; i++) {
    if (i === picks / 4) t = performance.now();
    const e = set[i % 12]!;
    probing.result(e, { rif: (i * 7) % 9, latencyMs: 70 + ((i * 13) % 40) });
    picker.pick();
  }
  return ((performance.now() - t) * 1e6) / ((3 * picks) / 4);
}

const settings: Record<string, PrequalOptions> = {
  'history, as reported': { hotQuantile: 0.5 },
  'pool, aged, x = 3': { hotQuantile: 0.5, latencyExponent: 3, rifAging: true, hotThresholdOf: 'pool' },
};
for (let round = 0; round < 3; round++) {
  for (const [name, o] of Object.entries(settings)) console.log(`${name}: ${nsPerPick({ ...o, maxReuse: 1000 }).toFixed(0)} ns/pick (result + pick)`);
}
