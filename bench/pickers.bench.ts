/**
 * Pick cost per balancing strategy at 3, 100 and 10 000 endpoints (ns/pick).
 *
 * Each (strategy, size) cell is measured 5 times, interleaved across cells
 * after a warm-up; each measurement is a loop bounded by pick count and by
 * duration. Reports the median and the [min–max] spread, plus the cost of
 * building a picker (done on every ready-set change).
 *
 * Run: node --conditions=proxyless-source --import tsx bench/pickers.bench.ts
 */
import { cpus } from 'node:os';
import { pathToFileURL } from 'node:url';
import type { Balancer, BalancerEndpoint, PickContext, Picker } from '../packages/core/src/balancer.js';
import type { ServiceInstance } from '../packages/core/src/service-instance.js';
import { roundRobin } from '../packages/core/src/balancer-round-robin.js';
import { random } from '../packages/core/src/balancer-random.js';
import { weightedRoundRobin } from '../packages/core/src/balancer-weighted.js';
import { leastRequest } from '../packages/core/src/balancer-least-request.js';
import { peakEwma } from '../packages/core/src/balancer-peak-ewma.js';
import { consistentHash } from '../packages/core/src/balancer-hash.js';
import { locality } from '../packages/core/src/locality.js';
import { slowStart } from '../packages/core/src/slow-start.js';

const SIZES = [3, 100, 10_000];
const RUNS = 5;
const MAX_PICKS = 2_000_000;
const MAX_MS = 150;
const BATCH = 1024;

interface Strategy {
  label: string;
  balancer: Balancer;
  keyed?: boolean;
}

const strategies: Strategy[] = [
  { label: 'round-robin', balancer: roundRobin() },
  { label: 'random', balancer: random() },
  { label: 'weighted-round-robin', balancer: weightedRoundRobin() },
  { label: 'least-request (P2C)', balancer: leastRequest() },
  { label: 'peak-ewma (P2C)', balancer: peakEwma() },
  { label: 'ring-hash (keyed)', balancer: consistentHash({ algorithm: 'ring' }), keyed: true },
  { label: 'maglev (keyed)', balancer: consistentHash({ algorithm: 'maglev' }), keyed: true },
  { label: 'locality(peak-ewma)', balancer: locality(peakEwma(), { zone: 'z0' }) },
  { label: 'slow-start(peak-ewma)', balancer: slowStart(peakEwma()) },
];

function makeEndpoints(n: number): BalancerEndpoint[] {
  return Array.from({ length: n }, (_, i) => {
    const instance: ServiceInstance = Object.freeze({
      key: `node${i}/web-${i}`,
      id: `web-${i}`,
      service: 'web',
      address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      port: 8080,
      tags: [],
      meta: {},
      weights: { passing: 1 + (i % 3), warning: 1 },
      datacenter: 'dc1',
      zone: `z${i % 3}`,
      health: 'passing' as const,
    });
    return { instance, load: { inFlight: i % 7, ewmaMs: 1 + (i % 11), readySince: 0 } };
  });
}

const contexts: PickContext[] = Array.from({ length: BATCH }, (_, i) => ({ hashKey: `user-${i * 7919}` }));

let sink = 0;

/** One bounded measurement: ns per pick. */
function measure(picker: Picker, keyed: boolean): number {
  const deadline = process.hrtime.bigint() + BigInt(MAX_MS * 1e6);
  const first = picker.endpoints[0];
  let picks = 0;
  const start = process.hrtime.bigint();
  let now = start;
  while (picks < MAX_PICKS && now < deadline) {
    if (keyed) {
      for (let i = 0; i < BATCH; i++) if (picker.pick(contexts[i]) === first) sink++;
    } else {
      for (let i = 0; i < BATCH; i++) if (picker.pick() === first) sink++;
    }
    picks += BATCH;
    now = process.hrtime.bigint();
  }
  return Number(now - start) / picks;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function fmt(ns: number): string {
  return ns >= 1000 ? `${(ns / 1000).toFixed(1)}µs` : ns.toFixed(1);
}

/** Runs the benchmark and prints a table of ns/pick (median [min–max]) per strategy and size. */
export async function run(): Promise<void> {
  const cells = SIZES.flatMap((n) => {
    const set = makeEndpoints(n);
    return strategies.map((s) => {
      const t0 = process.hrtime.bigint();
      const picker = s.balancer.createPicker(set);
      const buildMs = Number(process.hrtime.bigint() - t0) / 1e6;
      return { s, n, picker, buildMs, samples: [] as number[] };
    });
  });
  for (const c of cells) measure(c.picker, c.s.keyed === true); // warm-up
  for (let r = 0; r < RUNS; r++) {
    for (const c of cells) c.samples.push(measure(c.picker, c.s.keyed === true));
    await new Promise((resolve) => setImmediate(resolve));
  }
  const header = ['strategy', ...SIZES.map((n) => `n=${n} ns/pick`), 'build ms n=10000'];
  const rows = strategies.map((s) => {
    const mine = cells.filter((c) => c.s === s);
    return [
      s.label,
      ...mine.map((c) => `${fmt(median(c.samples))} [${fmt(Math.min(...c.samples))}–${fmt(Math.max(...c.samples))}]`),
      mine[mine.length - 1]!.buildMs.toFixed(1),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (row: string[]): string => row.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  console.log('\nPicker cost: ns per pick, median of 5 interleaved runs [min–max]; each run ≤ 2M picks and ≤ 150 ms');
  console.log(`command: node --conditions=proxyless-source --import tsx bench/pickers.bench.ts`);
  console.log(`node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}\n`);
  console.log(line(header));
  for (const row of rows) console.log(line(row));
  if (sink === -1) console.log(sink); // keep picks observable
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run();
}
