/**
 * Balancer testbed (issue 22): backends of known, changing capacity, an open
 * loop at a fixed share of it, every balancer in turn on the same schedule,
 * in one run.
 *
 * - BACKENDS backend processes (testbed-backend.ts: node:http +
 *   `@proxyless/load-report` from dist, so every response carries
 *   `endpoint-load-metrics`), 5 worker slots each (BENCH_SLOTS=4,5,6: in
 *   turn, a mixed fleet) and a queue in front (64, then 503); service time
 *   70 ms + exponential(10 ms) (BENCH_BASE_MS, BENCH_EXP_MS), a timer: 750
 *   req/s in all at 12 backends, little CPU for two shared cores. Until
 *   5 Dec it was 40 ms + exponential(40 ms), whose own p99 (224 ms) was the
 *   oracle's: the p99 column then measured the service time, not the
 *   balancing; the same mean with a tighter spread leaves p99 to queueing.
 * - Antagonists: the run is cut into periods of PERIOD_S; every second period
 *   one quarter of the backends (i % 4 = k, rotating) loses capacity: half its
 *   slots, or (alternating) +80 ms per request (the same halving of capacity,
 *   but one a latency balancer can see). Same schedule for every balancer.
 * - Load: Poisson arrivals at LOAD × the full capacity (70–85 %: with a quarter
 *   antagonised, the rest then run hotter), through `@proxyless/http-client`
 *   (dist), CLIENTS fresh, independent clients per balancer (each arrival to
 *   one at random, so each sees 1/CLIENTS of the traffic, as one of a fleet
 *   does: its own in-flight counts no longer see the whole load, the
 *   servers' reports do), 2 s deadline, defaults otherwise. BENCH_CLIENTS=1:
 *   one client alone, as before.
 *   First every client is warmed together for BLACKOUT_S (gRPC A58 ignores an
 *   endpoint's reports for its first 10 s), and on until 95 % of (client,
 *   backend) pairs are past it (at most 2 × BLACKOUT_S more), then each
 *   balancer's clients run WARM_S + SECONDS alone.
 *   BENCH_ROUNDS rounds (default 1), the order reversed every other round, fresh
 *   clients each: median [min–max] over rounds, ratios taken within a round;
 *   the chart shows the first round.
 *
 * Per balancer: p50/p99/p99.9 of every request (failures count with their
 * time), errors, the load generator's lag (issued − scheduled: when it is
 * large the machine, not the balancer, made the tail), and per-backend utilisation (busy slots ÷ slots, sampled by
 * the backends): per 1 s, max/avg and p95/avg across backends (p95
 * interpolated between ranks), averaged over the run, and max/avg of each backend's
 * utilisation over the whole run (persistent imbalance without the 1 s sampling noise). Last
 * row, an oracle: a seeded in-process simulation of the same backends, schedule and load
 * (support/oracle-sim.ts, no sockets) dispatched by join-the-shortest-expected-wait with perfect
 * instant knowledge, measured by the same utilisation code: the floor of every figure on this
 * testbed; each real row's ratio to it is printed. Beside it, the same simulation split
 * uniformly at random (a fair share with no knowledge): what sampling noise alone gives. Draws bench/results/balancer-testbed.svg: p99 per second per
 * balancer, failed requests per second, and a utilisation heat map per
 * balancer, antagonist periods marked.
 *
 * Run (after `npm run build`; ROUNDS × (balancers × (SECONDS + 3) s + 12 s)):
 *   flock -x /tmp/proxyless-heavy.lock npm run bench -- bench/balancer-testbed.bench.ts
 * Knobs: BENCH_SECONDS=30 BENCH_PERIOD_S=3 BENCH_LOAD=0.75 BENCH_BACKENDS=12
 * BENCH_WARM_S=2 BENCH_BLACKOUT_S=11 BENCH_CLIENTS=8 BENCH_SLOTS=5 BENCH_UTIL=occupancy|busy
 * (what backends report as application_utilization) BENCH_BALANCERS='round robin,peak EWMA'
 * BENCH_SVG=<path>; a short run: BENCH_SECONDS=12; figures: BENCH_ROUNDS=3.
 * After the table, p99 by phase (no antagonist, ½ slots, +80 ms). BENCH_PROFILE=1 adds, per balancer:
 * p99/p50 by 250 ms into each phase (a transient at its start, or a steady imbalance), each backend
 * group's served rate, queue and busy share per phase (antagonised or not), and the signal of every
 * pick (requests sent with `explain: true`, which costs a little client CPU).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ProxylessClient } from '@proxyless/http-client';
import type { StaticResolver } from '@proxyless/core';
import { loadBuild, describeCheckout, THIS_TREE, type Build } from './support/builds.js';
import { selectBalancers, type BalancerChoice } from './support/balancers.js';
import { freePorts } from './support/processes.js';
import { epochNow, percentile, percentileInterpolated, poissonArrivals, settle, startTestbed, type BackendSpec, type TestbedBackend, type UtilSample } from './support/testbed.js';
import { simulateOracle, type OracleChange } from './support/oracle-sim.js';
import { heatKey, heatmap, lineChart, PALETTE, svgDocument, type Band } from './support/svg.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 30);
const PERIOD_S = Number(process.env['BENCH_PERIOD_S'] ?? 3);
const LOAD = Number(process.env['BENCH_LOAD'] ?? 0.75);
const BACKENDS = Number(process.env['BENCH_BACKENDS'] ?? 12);
const WARM_S = Number(process.env['BENCH_WARM_S'] ?? 2);
const BLACKOUT_S = Number(process.env['BENCH_BLACKOUT_S'] ?? 11);
/** Independent clients per balancer sharing the load (each sees 1/CLIENTS of it, as in a fleet); 1: one client alone. */
const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 8);
const SVG_PATH = process.env['BENCH_SVG'] ?? fileURLToPath(new URL('./results/balancer-testbed.svg', import.meta.url));
const DEADLINE_MS = 2_000;
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 1);
const BIN_MS = 1_000;
const SAMPLE_MS = 250;
const SLOTS = (process.env['BENCH_SLOTS'] ?? '5').split(',').map(Number);
const UTIL = process.env['BENCH_UTIL'] ?? 'occupancy';
const BASE_MS = Number(process.env['BENCH_BASE_MS'] ?? 70);
const EXP_MS = Number(process.env['BENCH_EXP_MS'] ?? 10);
const ANTAGONIST_EXTRA_MS = 80;

/** One antagonist period: which backends, what it does, when (s from the run's start). */
interface Antagonist {
  from: number;
  to: number;
  backends: number[];
  kind: 'halve' | 'delay';
}

function schedule(): Antagonist[] {
  const out: Antagonist[] = [];
  const groups = Math.min(4, BACKENDS);
  for (let k = 1, n = 0; (k + 1) * PERIOD_S <= SECONDS; k += 2, n++) {
    const g = n % groups;
    out.push({
      from: k * PERIOD_S,
      to: (k + 1) * PERIOD_S,
      backends: Array.from({ length: BACKENDS }, (_, i) => i).filter((i) => i % groups === g),
      kind: n % 2 === 0 ? 'halve' : 'delay',
    });
  }
  return out;
}

interface RunResult {
  name: string;
  requests: number;
  errors: number;
  errorKinds: Map<string, number>;
  p50: number;
  p99: number;
  p999: number;
  /** p99 per BIN_MS bin (by scheduled time). */
  p99Bins: number[];
  /** Failed requests per bin, % of the bin's requests. */
  errorBins: number[];
  /** Utilisation per backend per bin. */
  util: number[][];
  utilAvg: number;
  maxOverAvg: number;
  p95OverAvg: number;
  /** Each backend's utilisation over the whole run, max ÷ avg across backends (no 1 s sampling noise). */
  wholeMaxOverAvg: number;
  /** p99 of (issued − scheduled) arrival times, ms: the generator's own lag. */
  lagP99: number;
  /** Load generator's CPU µs per request. */
  cpuUsPerRequest: number;
  offered: number;
  /** Share of (client, backend) pairs whose reports a balancer could use (past A58's blackout) when recording began. */
  reportsUsable: number;
  /** p99 of the requests scheduled in each phase: no antagonist, slots halved, service time delayed. */
  phaseP99: Record<Phase, number>;
}

const PHASES = ['calm', 'halve', 'delay'] as const;
type Phase = (typeof PHASES)[number];

/** The phase at `ms` from the recorded start: which antagonist, if any, is active. */
function phaseAt(plan: readonly Antagonist[], ms: number): Phase {
  const s = ms / 1000;
  return plan.find((a) => s >= a.from && s < a.to)?.kind ?? 'calm';
}

const phaseP99 = (byPhase: Record<Phase, number[]>): Record<Phase, number> =>
  Object.fromEntries(PHASES.map((k) => [k, percentile(Float64Array.from(byPhase[k]).sort(), 99)])) as Record<Phase, number>;
/** BENCH_PROFILE=1: p99 by time into the phase (250 ms steps), per phase kind: a transient at the phase's start, or a steady imbalance. */
const PROFILE = process.env['BENCH_PROFILE'] === '1';
function printProfile(name: string, plan: readonly Antagonist[], requests: readonly [number, number][]): void {
  const step = 250;
  const steps = Math.ceil((PERIOD_S * 1000) / step);
  const cells = new Map<string, number[]>();
  for (const [at, ms] of requests) {
    const s = at / 1000;
    const a = plan.find((x) => s >= x.from && s < x.to);
    const kind = a?.kind ?? 'calm';
    const into = a !== undefined ? at - a.from * 1000 : at - Math.floor(s / PERIOD_S) * PERIOD_S * 1000;
    const key = `${kind}:${Math.min(steps - 1, Math.floor(into / step))}`;
    (cells.get(key) ?? cells.set(key, []).get(key)!).push(ms);
  }
  for (const kind of PHASES) {
    const row = Array.from({ length: steps }, (_, i) => {
      const xs = Float64Array.from(cells.get(`${kind}:${i}`) ?? []).sort();
      return `${percentile(xs, 99).toFixed(0)}/${percentile(xs, 50).toFixed(0)}`;
    });
    console.log(`profile ${name} ${kind} (p99/p50 per ${step} ms into the phase): ${row.join(' ')}`);
  }
}
/** BENCH_PROFILE=1: per phase kind, antagonised backends against the rest: served per second each, mean queue, mean busy share. */
function printBackendProfile(name: string, plan: readonly Antagonist[], backends: readonly TestbedBackend[], epoch0: number): void {
  const acc = new Map<string, { n: number; q: number; u: number; k: number }>();
  backends.forEach((b, i) => {
    for (const x of b.samples) {
      const ms = x.t - SAMPLE_MS / 2 - epoch0;
      if (ms < 0 || ms >= SECONDS * 1000) continue;
      const a = plan.find((p) => ms / 1000 >= p.from && ms / 1000 < p.to);
      const key = `${a?.kind ?? 'calm'} ${a?.backends.includes(i) === true ? 'hit' : 'rest'}`;
      const c = acc.get(key) ?? acc.set(key, { n: 0, q: 0, u: 0, k: 0 }).get(key)!;
      c.n += x.n;
      c.q += x.q;
      c.u += x.u;
      c.k++;
    }
  });
  const cells = [...acc].sort().map(([key, c]) => `${key}: ${((c.n / c.k) * (1000 / SAMPLE_MS)).toFixed(1)}/s q ${(c.q / c.k).toFixed(2)} u ${(c.u / c.k).toFixed(2)}`);
  console.log(`backends ${name}: ${cells.join('; ')}`);
}
const emptyPhases = (): Record<Phase, number[]> => ({ calm: [], halve: [], delay: [] });

function newClient(build: Build, ports: number[], choice: BalancerChoice): { client: ProxylessClient; resolver: StaticResolver } {
  const resolver = new build.core.StaticResolver({ services: { svc: ports.map((port) => ({ address: '127.0.0.1', port })) } });
  const balancer = choice.make();
  const client = build.http.createClient({ service: 'svc', resolver, timeoutMs: DEADLINE_MS, logger: false, ...(balancer !== undefined ? { balancer } : {}) });
  return { client, resolver };
}

/** `CLIENTS` independent clients of one balancer (separate `createClient`s, resolvers and balancer instances). */
function newClients(build: Build, ports: number[], choice: BalancerChoice): { client: ProxylessClient; resolver: StaticResolver }[] {
  return Array.from({ length: CLIENTS }, () => newClient(build, ports, choice));
}

/** Each arrival goes to one client at random: every client sees a Poisson stream of 1/K of the rate, as independent callers would. */
const anyOf = (clients: readonly ProxylessClient[]): ProxylessClient => clients[Math.floor(Math.random() * clients.length)]!;

/** Sends one request; records its time from the scheduled arrival and its outcome. */
async function send(client: ProxylessClient, scheduledAt: number, record?: (latencyMs: number, error: string | undefined) => void, onPick?: (chosen: string, signal: string) => void): Promise<void> {
  let error: string | undefined;
  try {
    const res = await client.request(onPick === undefined ? '/' : { path: '/', explain: true });
    const pick = res.picks?.[0];
    if (pick !== undefined) onPick?.(pick.chosen, pick.signal ?? '?');
    await res.body.dump();
    if (res.statusCode !== 200) error = `HTTP ${res.statusCode}`;
  } catch (e) {
    error = (e as { code?: string }).code ?? (e as Error).name;
  }
  record?.(performance.now() - scheduledAt, error);
}

/** Share of (client, backend) pairs whose reports a balancer may use now (past A58's blackout). */
function usableShare(clients: readonly ProxylessClient[]): number {
  const pairs = clients.flatMap((c) => c.stats().endpoints);
  return pairs.filter((e) => e.loadReport?.usable === true).length / Math.max(1, pairs.length);
}

/**
 * Loads every client together at `rate` in all (unrecorded) for `s` seconds, then on in 1 s steps
 * (at most 2 × `s` more) until 95 % of (client, backend) pairs are past A58's blackout: with many
 * clients each one's first report from a backend comes later, and a balancer must not be judged
 * without the reports it reads.
 */
async function warmTogether(clients: ProxylessClient[], rate: number, s: number): Promise<void> {
  const pending = new Set<Promise<void>>();
  const load = (ms: number): Promise<number> =>
    poissonArrivals(rate, ms, (rate * ms) / 500, (at) => {
      const p = send(anyOf(clients), at);
      pending.add(p);
      void p.finally(() => pending.delete(p));
    });
  await load(s * 1000);
  for (let extra = 0; extra < 2 * s && usableShare(clients) < 0.95; extra++) await load(1_000);
  await settle(pending, DEADLINE_MS + 500);
}

const mean = (xs: number[]): number => (xs.length === 0 ? NaN : xs.reduce((s, x) => s + x, 0) / xs.length);

/**
 * Utilisation per backend per BIN_MS bin from its samples (stamped at their end, `epoch0` the
 * recorded start): the mean of the samples whose middle falls in the bin; NaN for a bin without one.
 * The real rows and the oracle's simulated samples both go through here.
 */
function utilisationBins(samples: readonly (readonly UtilSample[])[], epoch0: number, nBins: number): number[][] {
  return samples.map((backend) => {
    const sums = new Array<number>(nBins).fill(0);
    const counts = new Array<number>(nBins).fill(0);
    for (const s of backend) {
      const bin = Math.floor((s.t - SAMPLE_MS / 2 - epoch0) / BIN_MS);
      if (bin < 0 || bin >= nBins) continue;
      sums[bin]! += s.u;
      counts[bin]!++;
    }
    return sums.map((sum, i) => (counts[i]! > 0 ? sum / counts[i]! : NaN));
  });
}

/**
 * Balance across backends: per bin max/avg and p95/avg (p95 interpolated), averaged over the run
 * (the bench's figure: includes 1 s sampling noise), and over the whole run (each backend's mean
 * over the bins, then max/avg: imbalance that persists, most of the noise averaged out).
 */
function balance(util: readonly (readonly number[])[]): Pick<RunResult, 'utilAvg' | 'maxOverAvg' | 'p95OverAvg' | 'wholeMaxOverAvg'> {
  const maxRatios: number[] = [];
  const p95Ratios: number[] = [];
  const avgs: number[] = [];
  const nBins = Math.max(0, ...util.map((row) => row.length));
  for (let bin = 0; bin < nBins; bin++) {
    const us = util.map((row) => row[bin]!).filter(Number.isFinite);
    if (us.length < util.length) continue;
    const avg = mean(us);
    if (avg <= 0) continue;
    us.sort((a, b) => a - b);
    avgs.push(avg);
    maxRatios.push(us[us.length - 1]! / avg);
    p95Ratios.push(percentileInterpolated(us, 95) / avg);
  }
  const perBackend = util.map((row) => mean(row.filter(Number.isFinite)));
  return { utilAvg: mean(avgs), maxOverAvg: mean(maxRatios), p95OverAvg: mean(p95Ratios), wholeMaxOverAvg: Math.max(...perBackend) / mean(perBackend) };
}

async function runOne(name: string, clients: readonly ProxylessClient[], backends: TestbedBackend[], plan: Antagonist[], rate: number): Promise<RunResult> {
  const pending = new Set<Promise<void>>();
  const track = (p: Promise<void>): void => {
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  // Warm-up at the full rate: connections and estimates settle; not recorded.
  await poissonArrivals(rate, WARM_S * 1000, rate * WARM_S * 2, (at) => track(send(anyOf(clients), at)));
  const reportsUsable = usableShare(clients);
  const latencies: number[] = [];
  const bins: number[][] = Array.from({ length: Math.ceil((SECONDS * 1000) / BIN_MS) }, () => []);
  const errorKinds = new Map<string, number>();
  let errors = 0;
  const t0 = performance.now();
  const epoch0 = epochNow();
  const timers = plan.flatMap((a) => [
    setTimeout(() => {
      for (const i of a.backends) {
        const b = backends[i]!;
        b.set(a.kind === 'halve' ? { slots: Math.max(1, Math.floor(b.spec.slots / 2)) } : { extraMs: ANTAGONIST_EXTRA_MS });
      }
    }, a.from * 1000),
    setTimeout(() => {
      for (const i of a.backends) backends[i]!.set({ slots: backends[i]!.spec.slots, extraMs: 0 });
    }, a.to * 1000),
  ]);
  const failedBins = new Array<number>(bins.length).fill(0);
  const byPhase = emptyPhases();
  const profile: [number, number][] = [];
  const pickTally = new Map<string, number>();
  const lags: number[] = [];
  const cpu0 = process.cpuUsage();
  const offered = await poissonArrivals(rate, SECONDS * 1000, rate * SECONDS * 2, (at) => {
    lags.push(performance.now() - at);
    track(
      send(anyOf(clients), at, (ms, error) => {
        latencies.push(ms);
        byPhase[phaseAt(plan, at - t0)].push(ms);
        if (PROFILE) profile.push([at - t0, ms]);
        const bin = Math.min(bins.length - 1, Math.floor((at - t0) / BIN_MS));
        bins[bin]!.push(ms);
        if (error !== undefined) {
          failedBins[bin]!++;
          errors++;
          errorKinds.set(error, (errorKinds.get(error) ?? 0) + 1);
        }
      }, PROFILE ? (chosen, signal) => {
        const a = plan.find((x) => (at - t0) / 1000 >= x.from && (at - t0) / 1000 < x.to);
        const port = Number(chosen.split(':').pop());
        const hit = a !== undefined && a.backends.some((i) => backends[i]!.spec.port === port);
        const key = `${a?.kind ?? 'calm'} ${hit ? 'hit' : 'rest'} ${signal}`;
        pickTally.set(key, (pickTally.get(key) ?? 0) + 1);
      } : undefined),
    );
  });
  await settle(pending, DEADLINE_MS + 1_000);
  if (PROFILE) {
    printProfile(name, plan, profile);
    printBackendProfile(name, plan, backends, epoch0);
    console.log(`picks ${name}: ${[...pickTally].sort().map(([k, n]) => `${k} ${n}`).join('; ')}`);
  }
  const cpu = process.cpuUsage(cpu0);
  for (const t of timers) clearTimeout(t);
  for (const b of backends) b.set({ slots: b.spec.slots, extraMs: 0 });

  const sorted = Float64Array.from(latencies).sort();
  const p99Bins = bins.map((xs) => percentile(Float64Array.from(xs).sort(), 99));
  const util = utilisationBins(
    backends.map((b) => b.samples),
    epoch0,
    bins.length,
  );
  return {
    name,
    requests: latencies.length,
    errors,
    errorKinds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    p99Bins,
    errorBins: failedBins.map((n, i) => (100 * n) / Math.max(1, bins[i]!.length)),
    util,
    ...balance(util),
    lagP99: percentile(Float64Array.from(lags).sort(), 99),
    cpuUsPerRequest: (cpu.user + cpu.system) / Math.max(1, offered),
    offered,
    reportsUsable,
    phaseP99: phaseP99(byPhase),
  };
}

const ORACLE = 'oracle (simulation: JSQ, perfect knowledge)';
const SPLIT = 'random split (simulation: fair share, no knowledge)';

/**
 * The oracle row: the same backends, schedule and Poisson load, simulated in-process
 * (support/oracle-sim.ts, seeded) and dispatched by join-the-shortest-expected-wait with instant
 * knowledge: what no balancer can beat on this testbed. Measured with the real rows' code.
 */
function runOracle(specs: readonly BackendSpec[], plan: readonly Antagonist[], rate: number, seed: number, dispatch: 'jsq' | 'random' = 'jsq'): RunResult {
  const changes: OracleChange[] = plan.flatMap((a) => [
    a.kind === 'halve'
      ? { at: a.from * 1000, backends: a.backends, slots: a.backends.map((i) => Math.max(1, Math.floor(specs[i]!.slots / 2))) }
      : { at: a.from * 1000, backends: a.backends, extraMs: ANTAGONIST_EXTRA_MS },
    { at: a.to * 1000, backends: a.backends, slots: a.backends.map((i) => specs[i]!.slots), extraMs: 0 },
  ]);
  const sim = simulateOracle({ backends: specs, rate, warmMs: WARM_S * 1000, durationMs: SECONDS * 1000, changes, sampleMs: SAMPLE_MS, deadlineMs: DEADLINE_MS, seed, dispatch });
  // The model must offer what the testbed offers: base work ÷ capacity ≈ LOAD (Poisson and exp noise: a few %).
  console.log(`${dispatch === 'jsq' ? 'oracle' : 'random split'} simulation (seed ${seed}): ${sim.requests.length} requests, offered base work ${(100 * sim.offeredLoad).toFixed(1)} % of capacity`);
  if (sim.requests.length > 1_000 && Math.abs(sim.offeredLoad / LOAD - 1) > 0.05) throw new Error(`oracle simulation offered ${sim.offeredLoad.toFixed(3)} of capacity, expected ≈ ${LOAD}`);
  const nBins = Math.ceil((SECONDS * 1000) / BIN_MS);
  const bins: number[][] = Array.from({ length: nBins }, () => []);
  const failedBins = new Array<number>(nBins).fill(0);
  const errorKinds = new Map<string, number>();
  let errors = 0;
  const byPhase = emptyPhases();
  for (const r of sim.requests) {
    byPhase[phaseAt(plan, r.at)].push(r.latencyMs);
    const bin = Math.min(nBins - 1, Math.floor(r.at / BIN_MS));
    bins[bin]!.push(r.latencyMs);
    if (r.error !== undefined) {
      failedBins[bin]!++;
      errors++;
      errorKinds.set(r.error, (errorKinds.get(r.error) ?? 0) + 1);
    }
  }
  const sorted = Float64Array.from(sim.requests.map((r) => r.latencyMs)).sort();
  const util = utilisationBins(sim.samples, 0, nBins);
  return {
    name: dispatch === 'jsq' ? ORACLE : SPLIT,
    requests: sim.requests.length,
    errors,
    errorKinds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    p99Bins: bins.map((xs) => percentile(Float64Array.from(xs).sort(), 99)),
    errorBins: failedBins.map((n, i) => (100 * n) / Math.max(1, bins[i]!.length)),
    util,
    ...balance(util),
    lagP99: NaN,
    cpuUsPerRequest: NaN,
    offered: sim.requests.length,
    reportsUsable: NaN,
    phaseP99: phaseP99(byPhase),
  };
}

function drawSvg(results: RunResult[], plan: Antagonist[], backends: TestbedBackend[]): string {
  const width = 960;
  const chartH = 300;
  const errorH = 180;
  const mapH = 22 + backends.length * 9;
  const bands: Band[] = plan.map((a) => ({ from: a.from, to: a.to, label: `${a.kind === 'halve' ? '½ slots' : `+${ANTAGONIST_EXTRA_MS} ms`}: b${a.backends.join(',b')}` }));
  const allP99 = results.flatMap((r) => r.p99Bins).filter(Number.isFinite);
  const parts = [
    lineChart({
      x: 0,
      y: 0,
      width,
      height: chartH,
      title: `p99 latency per second (failures count with their time), ${BACKENDS} backends at ${Math.round(LOAD * 100)} % of capacity, ${CLIENTS} client${CLIENTS === 1 ? '' : 's'} per balancer; shaded: antagonist periods`,
      xLabel: 's',
      yLabel: 'p99 ms (log)',
      series: results.map((r, i) => ({ name: r.name, color: PALETTE[i % PALETTE.length]!, points: r.p99Bins.map((y, bin) => [((bin + 0.5) * BIN_MS) / 1000, y] as [number, number]) })),
      bands,
      xMax: SECONDS,
      yMin: 20,
      yMax: Math.max(100, ...allP99) * 1.1,
      logY: true,
    }),
    lineChart({
      x: 0,
      y: chartH,
      width,
      height: errorH,
      title: 'failed requests per second, % (a balancer whose requests fail fast shows a low p99 above)',
      xLabel: 's',
      yLabel: 'failed %',
      series: results.map((r, i) => ({ name: r.name, color: PALETTE[i % PALETTE.length]!, points: r.errorBins.map((y, bin) => [((bin + 0.5) * BIN_MS) / 1000, y] as [number, number]) })),
      bands,
      xMax: SECONDS,
      yMin: 0,
      yMax: Math.max(1, ...results.flatMap((r) => r.errorBins)),
      logY: false,
    }),
    heatKey(56, chartH + errorH + 8, 'per-backend utilisation (busy slots ÷ slots) per second; dashed: antagonised backend'),
  ];
  results.forEach((r, i) => {
    parts.push(
      heatmap({
        x: 0,
        y: chartH + errorH + 32 + i * (mapH + 6),
        width,
        height: mapH,
        title: `${r.name}: max/avg ${r.maxOverAvg.toFixed(2)}, p95/avg ${r.p95OverAvg.toFixed(2)}, p99 ${r.p99.toFixed(0)} ms`,
        rows: backends.map((b, j) => `b${j} (${b.spec.slots})`),
        values: r.util,
        xStep: BIN_MS / 1000,
        xMax: SECONDS,
        outlines: plan.map((a) => ({ from: a.from, to: a.to, rows: a.backends })),
      }),
    );
  });
  return svgDocument(width, chartH + errorH + 40 + results.length * (mapH + 6), parts);
}

export async function run(): Promise<void> {
  if (UTIL !== 'occupancy' && UTIL !== 'busy') throw new Error(`BENCH_UTIL=${UTIL}: 'occupancy' or 'busy'`);
  if (!Number.isInteger(CLIENTS) || CLIENTS < 1) throw new Error(`BENCH_CLIENTS=${process.env['BENCH_CLIENTS']}: a whole number ≥ 1 (clients per balancer)`);
  if (!(BASE_MS >= 0) || !(EXP_MS >= 0) || BASE_MS + EXP_MS <= 0) throw new Error(`BENCH_BASE_MS=${process.env['BENCH_BASE_MS']} BENCH_EXP_MS=${process.env['BENCH_EXP_MS']}: service time base and exponential mean, ms, ≥ 0, not both 0`);
  if (!SLOTS.every((n) => Number.isInteger(n) && n >= 1)) throw new Error(`BENCH_SLOTS=${process.env['BENCH_SLOTS']}: a comma-separated list of whole numbers ≥ 1`);
  const build = await loadBuild(THIS_TREE);
  const plan = schedule();
  console.log('# balancer testbed (npm run bench -- bench/balancer-testbed.bench.ts)');
  console.log(
    `BENCH_ROUNDS=${ROUNDS} BENCH_SECONDS=${SECONDS} BENCH_PERIOD_S=${PERIOD_S} BENCH_LOAD=${LOAD} BENCH_BACKENDS=${BACKENDS} BENCH_WARM_S=${WARM_S} BENCH_BLACKOUT_S=${BLACKOUT_S} BENCH_CLIENTS=${CLIENTS} BENCH_SLOTS=${SLOTS.join(',')} BENCH_UTIL=${UTIL}`,
  );
  console.log(`${describeCheckout(THIS_TREE)}; ${build.versions}; ${cpus()[0]?.model ?? '?'} × ${cpus().length}; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const choices = selectBalancers(build, process.env['BENCH_BALANCERS']);
  const ports = await freePorts(BACKENDS);
  const specs: BackendSpec[] = ports.map((port, i) => ({ port, slots: SLOTS[i % SLOTS.length]!, baseMs: BASE_MS, expMs: EXP_MS, queueMax: 64, sampleMs: SAMPLE_MS, utilization: UTIL }));
  const backends = await startTestbed(specs);
  const capacity = backends.reduce((s, b) => s + b.capacity, 0);
  const rate = LOAD * capacity;
  console.log(
    `${BACKENDS} backends, slots ${specs.map((s) => s.slots).join('/')}, service ${BASE_MS} ms + exp(${EXP_MS} ms), capacity ${capacity.toFixed(0)} req/s; offered ${rate.toFixed(0)} req/s (Poisson) through ${CLIENTS} client(s) per balancer; deadline ${DEADLINE_MS} ms`,
  );
  console.log(`antagonists (s from start): ${plan.map((a) => `${a.from}–${a.to} ${a.kind === 'halve' ? '½ slots' : `+${ANTAGONIST_EXTRA_MS} ms`} on b${a.backends.join(',b')}`).join('; ')}`);
  // Rounds, the order reversed every other round (interleaved, as bench.md asks): a burst of other work on the machine
  // then lands on different balancers in different rounds. Fresh clients each round, warmed together past A58's blackout.
  const rounds: RunResult[][] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? choices : [...choices].reverse();
      const fleets = order.map((c) => ({ choice: c, members: newClients(build, ports, c) }));
      const results: RunResult[] = [];
      try {
        await warmTogether(
          fleets.flatMap((f) => f.members.map((m) => m.client)),
          rate,
          BLACKOUT_S,
        );
        for (const f of fleets) {
          results.push(
            await runOne(
              f.choice.name,
              f.members.map((m) => m.client),
              backends,
              plan,
              rate,
            ),
          );
          await sleep(500); // the backends' queues empty
        }
      } finally {
        for (const m of fleets.flatMap((f) => f.members)) {
          await m.client.destroy();
          await m.resolver.close();
        }
      }
      rounds.push([...choices.map((c) => results.find((r) => r.name === c.name)!), runOracle(specs, plan, rate, round + 1, 'random'), runOracle(specs, plan, rate, round + 1)]);
    }
  } finally {
    await Promise.all(backends.map((b) => b.stop()));
  }
  console.log(`load average at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
  const median = (xs: number[]): number => {
    const v = [...xs].sort((a, b) => a - b);
    return v.length === 0 ? NaN : (v[(v.length - 1) >> 1]! + v[v.length >> 1]!) / 2;
  };
  /** One round: the figure; several: `median [min–max]`. */
  const mm = (xs: number[], digits: number, unit = ''): string =>
    xs.length === 1 ? `${xs[0]!.toFixed(digits)}${unit}` : `${median(xs).toFixed(digits)}${unit} [${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}]`;
  const names = [...choices.map((c) => c.name), SPLIT, ORACLE];
  const rrAt = names.indexOf('round robin');
  const ewmaAt = names.indexOf('peak EWMA');
  const oracleAt = names.length - 1;
  /** p99 (or another figure) ÷ the reference's, round by round (taken in the same round). */
  const ratio = (i: number, ref: number, k: 'p99' | 'maxOverAvg' | 'wholeMaxOverAvg' = 'p99'): string => (ref < 0 ? 'n/a' : mm(rounds.map((rs) => rs[i]![k] / rs[ref]![k]), 2, '×'));
  console.log(`${ROUNDS} round(s)${ROUNDS > 1 ? ', order reversed every other round; median [min–max] over rounds' : ''}; the last two rows are simulations (seeded), not runs\n`);
  console.log(
    '| balancer | requests | p50 ms | p99 ms | p99.9 ms | errors | util avg | util max/avg | util p95/avg | whole-run util max/avg | p99 ÷ RR | p99 ÷ peak EWMA | p99 ÷ oracle | max/avg ÷ oracle | whole-run max/avg ÷ oracle | generator lag p99 ms | client CPU µs/req |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  names.forEach((name, i) => {
    const rs = rounds.map((round) => round[i]!);
    const f = (k: keyof RunResult): number[] => rs.map((r) => r[k] as number);
    const kinds = new Map<string, number>();
    for (const r of rs) for (const [k, n] of r.errorKinds) kinds.set(k, (kinds.get(k) ?? 0) + n);
    const kindText = [...kinds].map(([k, n]) => `${k} ${n}`).join(', ');
    const real = (text: string): string => (i >= oracleAt - 1 ? '—' : text);
    console.log(
      `| ${name} | ${mm(f('requests'), 0)} | ${mm(f('p50'), 1)} | ${mm(f('p99'), 1)} | ${mm(f('p999'), 1)} | ${f('errors').reduce((a, b) => a + b, 0)}${kindText ? ` (${kindText})` : ''} | ${mm(f('utilAvg'), 2)} | ${mm(f('maxOverAvg'), 2)} | ${mm(f('p95OverAvg'), 2)} | ${mm(f('wholeMaxOverAvg'), 3)} | ${ratio(i, rrAt)} | ${ratio(i, ewmaAt)} | ${ratio(i, oracleAt)} | ${ratio(i, oracleAt, 'maxOverAvg')} | ${ratio(i, oracleAt, 'wholeMaxOverAvg')} | ${real(mm(f('lagP99'), 1))} | ${real(mm(f('cpuUsPerRequest'), 0))} |`,
    );
  });
  console.log('\np99 ms by phase (requests scheduled while no antagonist ran, while a quarter had half its slots, while a quarter had +80 ms):\n');
  console.log('| balancer | calm | ½ slots | +80 ms |');
  console.log('|---|---|---|---|');
  names.forEach((name, i) => {
    const rs = rounds.map((round) => round[i]!);
    console.log(`| ${name} | ${PHASES.map((k) => mm(rs.map((r) => r.phaseP99[k]), 1)).join(' | ')} |`);
  });
  console.log(
    `\nreports usable when recording began (client, backend pairs past A58's blackout): ${choices.map((c, i) => `${c.name} ${mm(rounds.map((round) => 100 * round[i]!.reportsUsable), 0, ' %')}`).join('; ')}`,
  );
  const results = rounds[0]!;
  mkdirSync(dirname(SVG_PATH), { recursive: true });
  writeFileSync(SVG_PATH, drawSvg(results, plan, backends));
  console.log(`\nchart: ${relative(process.cwd(), SVG_PATH)}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
