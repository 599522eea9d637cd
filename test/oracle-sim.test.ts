import assert from 'node:assert/strict';
import { simulateOracle, type OracleOptions } from '../bench/support/oracle-sim.js';
import { percentile } from '../bench/support/testbed.js';

// The balancer testbed's oracle (bench/support/oracle-sim.ts): its figures are the floor the bench
// reports every balancer against, so the model must offer what the testbed offers and honour capacity.
const base: OracleOptions = {
  backends: Array.from({ length: 12 }, () => ({ slots: 5, baseMs: 40, expMs: 40, queueMax: 64 })),
  rate: 0.75 * 750,
  warmMs: 2_000,
  durationMs: 10_000,
  changes: [],
  sampleMs: 250,
  deadlineMs: 2_000,
  seed: 1,
};
const pct = (r: ReturnType<typeof simulateOracle>, p: number): number => percentile(Float64Array.from(r.requests.map((x) => x.latencyMs)).sort(), p);
const p50 = (r: ReturnType<typeof simulateOracle>): number => pct(r, 50);
const p99 = (r: ReturnType<typeof simulateOracle>): number => pct(r, 99);
const meanUtil = (r: ReturnType<typeof simulateOracle>): number => {
  const us = r.samples.flatMap((b) => b.filter((s) => s.t > 0 && s.t <= base.durationMs).map((s) => s.u));
  return us.reduce((a, b) => a + b, 0) / us.length;
};

describe('balancer testbed oracle simulation', () => {
  it('offers the configured load and its backends are busy that share of the time', () => {
    const r = simulateOracle(base);
    assert.ok(Math.abs(r.requests.length / 10 / base.rate - 1) < 0.05, `${r.requests.length} requests in 10 s at ${base.rate}/s`);
    assert.ok(Math.abs(r.offeredLoad - 0.75) < 0.03, `offered ${r.offeredLoad}`);
    assert.ok(Math.abs(meanUtil(r) - 0.75) < 0.04, `mean utilisation ${meanUtil(r)}`);
  });

  it('is deterministic for a seed', () => {
    assert.deepEqual(simulateOracle(base).requests.slice(0, 50), simulateOracle(base).requests.slice(0, 50));
  });

  it('join-the-shortest-wait stays at the service time; a random split queues', () => {
    const jsq = simulateOracle(base);
    const random = simulateOracle({ ...base, dispatch: 'random' });
    // 40 ms + exp(40 ms) alone: p50 = 40 + 40 ln 2 ≈ 68 ms, p99 = 40 + 40 ln 100 ≈ 224 ms.
    assert.ok(p50(jsq) < 72, `oracle p50 ${p50(jsq)}`);
    assert.ok(p99(jsq) < 260, `oracle p99 ${p99(jsq)}`);
    assert.ok(p50(random) > 1.15 * p50(jsq), `random split p50 ${p50(random)}`);
    assert.ok(p99(random) > p99(jsq), `random split p99 ${p99(random)}`);
  });

  it('honours an antagonist: fewer slots queue requests, the extra delay lengthens every service', () => {
    const all = base.backends.map((_, i) => i);
    // One slot each from 2 s: 150 req/s of capacity for 300 offered, so queues grow and requests wait.
    const halved = simulateOracle({ ...base, rate: 300, changes: [{ at: 2_000, backends: all, slots: all.map(() => 1) }] });
    const waiting = halved.requests.filter((x) => x.at > 4_000).map((x) => x.latencyMs).sort((a, b) => a - b);
    assert.ok(waiting[waiting.length >> 1]! > 500, `median while short of slots ${waiting[waiting.length >> 1]} ms`);
    for (const s of halved.samples.flat()) assert.ok(s.u <= 1 + 1e-9, `utilisation ${s.u}`);
    const delayed = simulateOracle({ ...base, rate: 300, changes: [{ at: 2_000, backends: all, extraMs: 80 }] });
    const later = delayed.requests.filter((x) => x.at > 2_500).map((x) => x.latencyMs);
    const before = delayed.requests.filter((x) => x.at < 1_500).map((x) => x.latencyMs);
    assert.ok(Math.min(...later) >= 120, `fastest while delayed ${Math.min(...later)} ms`);
    assert.ok(Math.min(...before) < 45, `fastest before ${Math.min(...before)} ms`);
  });
});
