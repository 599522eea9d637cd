/**
 * Pick cost per balancing strategy at 3, 100 and 10 000 endpoints (ns/pick),
 * and at 10 000 endpoints with one in ten unavailable (breaker open or
 * ejected: skipped at pick time); the cost of building a picker at 10 000
 * endpoints (done when the set's membership changes); and the cost of an
 * availability change at 10 000 endpoints (one endpoint's `available` flipped
 * and the picker told, as the transport does on a breaker flip or ejection;
 * before, that rebuilt the picker).
 *
 * Each cell is measured 5 times, interleaved across cells after a warm-up;
 * each pick measurement is a loop bounded by pick count and by duration.
 * Reports the median and the [min–max] spread.
 *
 * Run: node --conditions=proxyless-source --import tsx bench/pickers.bench.ts
 */
import { cpus, loadavg } from 'node:os';
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

interface BenchEndpoint extends BalancerEndpoint {
  available: boolean;
}

function makeEndpoints(n: number, unavailableEvery = 0): BenchEndpoint[] {
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
    const available = unavailableEvery === 0 || i % unavailableEvery !== 0;
    return { instance, load: { inFlight: i % 7, ewmaMs: 1 + (i % 11), readySince: 0 }, available };
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

function spread(values: number[], format: (v: number) => string): string {
  return `${format(median(values))} [${format(Math.min(...values))}–${format(Math.max(...values))}]`;
}

/** Builds a picker over `set`: ms. */
function timeBuild(balancer: Balancer, set: readonly BalancerEndpoint[]): { picker: Picker; ms: number } {
  const t0 = process.hrtime.bigint();
  const picker = balancer.createPicker(set);
  return { picker, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

/** One availability change: flip an endpoint, tell the picker, pick once (µs for the three). */
function timeAvailabilityChange(picker: Picker, set: BenchEndpoint[], keyed: boolean, which: number): number {
  const e = set[which % set.length]!;
  const t0 = process.hrtime.bigint();
  e.available = !e.available;
  picker.availabilityChanged?.();
  if (picker.pick(keyed ? contexts[which % BATCH] : undefined) === undefined) sink++;
  const us = Number(process.hrtime.bigint() - t0) / 1e3;
  e.available = !e.available;
  picker.availabilityChanged?.();
  return us;
}

/** Runs the benchmark and prints ns/pick, build ms and availability-change µs (median [min–max]) per strategy. */
export async function run(): Promise<void> {
  const big = SIZES[SIZES.length - 1]!;
  const sets = [...SIZES.map((n) => makeEndpoints(n)), makeEndpoints(big, 10)];
  const cells = sets.flatMap((set) => strategies.map((s) => ({ s, picker: s.balancer.createPicker(set), samples: [] as number[] })));
  const bigSet = sets[SIZES.length - 1]!;
  const builds = strategies.map(() => [] as number[]);
  const changes = strategies.map(() => [] as number[]);
  const changePickers = strategies.map((s) => s.balancer.createPicker(bigSet));
  for (const c of cells) measure(c.picker, c.s.keyed === true); // warm-up
  strategies.forEach((s, i) => {
    timeBuild(s.balancer, bigSet);
    timeAvailabilityChange(changePickers[i]!, bigSet, s.keyed === true, 0);
  });
  for (let r = 0; r < RUNS; r++) {
    for (const c of cells) c.samples.push(measure(c.picker, c.s.keyed === true));
    strategies.forEach((s, i) => {
      builds[i]!.push(timeBuild(s.balancer, bigSet).ms);
      changes[i]!.push(timeAvailabilityChange(changePickers[i]!, bigSet, s.keyed === true, 7919 * (r + 1)));
    });
    await new Promise((resolve) => setImmediate(resolve));
  }
  const header = [
    'strategy',
    ...SIZES.map((n) => `n=${n} ns/pick`),
    `n=${big}, 1 in 10 unavailable`,
    `build ms n=${big}`,
    `availability change µs n=${big}`,
  ];
  const rows = strategies.map((s, i) => {
    const mine = cells.filter((c) => c.s === s);
    return [s.label, ...mine.map((c) => spread(c.samples, fmt)), spread(builds[i]!, (v) => v.toFixed(2)), spread(changes[i]!, (v) => v.toFixed(1))];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (row: string[]): string => row.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  console.log(`\nPicker cost: median of ${RUNS} interleaved runs [min–max]; each pick run ≤ 2M picks and ≤ 150 ms`);
  console.log('availability change: one endpoint flipped, availabilityChanged(), one pick (before: a full picker build)');
  console.log(`command: node --conditions=proxyless-source --import tsx bench/pickers.bench.ts`);
  console.log(`node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  console.log(line(header));
  for (const row of rows) console.log(line(row));
  if (sink === -1) console.log(sink); // keep picks observable
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run();
}
