/**
 * Failure scenarios per balancer, with the client's default options (only the
 * deadline set), side by side in one run:
 *
 * - **hung backend**: five backends, one accepts and never answers; 500 ms
 *   deadline; closed loop, 64 in flight, RUN_MS per balancer (interleaved,
 *   RUNS times; a fresh client per run): failures, p99 and p99.9.
 * - **Beyond Round Robin** (Twitter/Finagle's published setup): 11 backends at
 *   ~167 ms, one pinned to 2 s for SLOW_MS, open loop at RATE req/s, 1 s
 *   deadline: success rate per balancer while it is slow, and the slow
 *   backend's share of traffic in the AFTER_MS after it recovers (fair: 1/11);
 *   BRR_RUNS times, interleaved.
 *
 * - **one slow backend of five** (FAILURE_PARTS=slow, not in the default
 *   parts): http-client.bench.ts's "slow backend" setup (five backends, one
 *   +50 ms, 64 in flight) with the hung part's client and runs.
 *
 * FAILURE_REPORTING=1 puts every backend behind `@proxyless/load-report`
 * (support/node-backends.ts): answers carry `endpoint-load-metrics` and probes
 * are answered, so the client default switches from peak EWMA to Prequal
 * probing once every endpoint has reported for A58's 10 s blackout. The
 * hung and slow parts then warm each fresh client for FAILURE_WARM_MS
 * (default 12000) with all five answering (a backend hung from its first
 * request never reports, so the default would never switch) before the first
 * one hangs or slows; Beyond Round Robin's warm-up defaults to 12000 ms.
 * The reporter answers probes without running the app: a hung app still
 * answers probes, with its hung requests as `rif`. The tables print the
 * probes the client had sent when measuring started (> 0: it was probing).
 *
 * Each build runs in a worker process of its own (build-process.ts): this
 * tree's build, and with BENCH_CLIENT_BEFORE=<checkout> (built there) that
 * checkout's too, interleaved run by run (the order alternates), reported
 * side by side with this ÷ BEFORE ratios per run (median [min–max]).
 * Backends run in child processes.
 *
 * Run (after `npm run build`):
 *   npm run bench -- bench/failure-scenarios.bench.ts
 *   BENCH_CLIENT_BEFORE=/work/wt/before npm run bench -- bench/failure-scenarios.bench.ts
 * Defaults: BENCH_RUNS=3 BENCH_RUN_MS=3000 BRR_RUNS=3 BRR_WARM_MS=5000 (12000
 * with FAILURE_REPORTING=1) BRR_SLOW_MS=30000 BRR_AFTER_MS=60000 BRR_RATE=1000;
 * FAILURE_PARTS=hung,brr (one of them alone, or slow); smaller values shorten it. BENCH_BALANCERS: a
 * comma-separated subset of support/balancers.ts's list (default: all of it,
 * the same list as the testbed and fairness benches; each Beyond Round Robin
 * run takes BRR_WARM_MS + BRR_SLOW_MS + BRR_AFTER_MS per balancer), e.g.
 * BENCH_BALANCERS='round robin,peak EWMA,client default'.
 */
import { pathToFileURL } from 'node:url';
import { checkoutsToCompare } from './support/builds.js';
import { startBuildProcesses, type BuildProcess } from './support/build-process.js';
import { balancerNames } from './support/balancers.js';
import type { BrrResult, HungResult, Skipped } from './support/failure-runs.js';
import { freePorts, startNodeBackends, stop } from './support/processes.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const RUN_MS = Number(process.env['BENCH_RUN_MS'] ?? 3_000);
const BRR_RUNS = Number(process.env['BRR_RUNS'] ?? 3);
const REPORTING = process.env['FAILURE_REPORTING'] === '1';
const WARM_MS = Number(process.env['BRR_WARM_MS'] ?? (REPORTING ? 12_000 : 5_000));
const FAILURE_WARM_MS = Number(process.env['FAILURE_WARM_MS'] ?? 12_000);
const SLOW_MS = Number(process.env['BRR_SLOW_MS'] ?? 30_000);
const AFTER_MS = Number(process.env['BRR_AFTER_MS'] ?? 60_000);
const RATE = Number(process.env['BRR_RATE'] ?? 1_000);
const PARTS = (process.env['FAILURE_PARTS'] ?? 'hung,brr').split(',');
const MODULE = './failure-runs.ts';
/** The shared list (support/balancers.ts) the testbed and fairness benches run too; BENCH_BALANCERS picks a subset. */
const BALANCERS = balancerNames(process.env['BENCH_BALANCERS']);

/** Prints why a build skipped a balancer (once per build and balancer); true when it did. */
const skips = new Set<string>();
function skipped(r: object, balancer: string, b: BuildProcess): r is Skipped {
  if (!('skipped' in r)) return false;
  const k = `${b.label}\u0000${balancer}`;
  if (!skips.has(k)) console.log(`- ${balancer} (${b.label}): ${(r as Skipped).skipped}`);
  skips.add(k);
  return true;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};
/** `median [min–max]`. */
const mm = (xs: number[], digits: number, unit = ''): string =>
  xs.length === 0 ? 'n/a' : `${median(xs).toFixed(digits)}${unit} [${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}]`;
/** Ratios of paired runs (run i of `a` ÷ run i of `b`, taken back to back): `median× [min–max]`. */
const ratio = (a: number[], b: number[]): string => {
  const rs = a.map((x, i) => x / b[i]!).filter((r) => Number.isFinite(r));
  return rs.length === 0 ? 'n/a' : `${median(rs).toFixed(2)}× [${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)}]`;
};
const pct = (a: number, b: number): number => (100 * a) / Math.max(1, b);

/** Run r's order of the builds: alternating, so neither always goes first. */
const order = (builds: BuildProcess[], r: number): BuildProcess[] => (r % 2 === 0 ? builds : [...builds].reverse());

/** Probes sent before measuring (`median [min–max]`), or `-` for a balancer that never probes. */
const probesColumn = (xs: (number | undefined)[]): string => {
  const ns = xs.filter((x): x is number => x !== undefined);
  return ns.length === 0 ? '-' : mm(ns, 0);
};

/** The hung part (`delayMs` -1) or the one-slow-of-five part (`delayMs` 50). */
async function hungBackend(builds: BuildProcess[], delayMs = -1): Promise<void> {
  const what = delayMs < 0 ? 'hung backend: 5 backends, one accepts and never answers' : `one slow backend of five: 5 backends, one +${delayMs} ms`;
  const warm = REPORTING ? `; reporting backends, ${FAILURE_WARM_MS} ms warm-up at 16 in flight, all answering, before` : '';
  console.log(`\n## ${what}; 500 ms deadline, defaults; 64 in flight, ${RUNS} × ${RUN_MS} ms interleaved${warm}\n`);
  const ports = await freePorts(5);
  // Reporting: each run starts its own backends (in the worker), warm, then hangs or slows the first.
  const backends = REPORTING ? undefined : await startNodeBackends(ports.map((port, i) => ({ port, delayMs: i === 0 ? delayMs : 0 })));
  const results = new Map<string, HungResult[]>();
  const key = (b: BuildProcess, balancer: string): string => `${b.label}\u0000${balancer}`;
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const balancer of BALANCERS) {
        for (const b of order(builds, run)) {
          const r = await b.call<HungResult | Skipped>(MODULE, 'hung', { ports, balancer, ms: RUN_MS, report: REPORTING, warmMs: FAILURE_WARM_MS, delayMs });
          if (skipped(r, balancer, b)) continue;
          results.set(key(b, balancer), [...(results.get(key(b, balancer)) ?? []), r]);
        }
      }
    }
  } finally {
    await stop(backends);
  }
  console.log('| balancer | build | requests | failures | failure rate % | p99 ms | p99.9 ms | first backend\'s share % | probes sent before / during |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const balancer of BALANCERS) {
    for (const b of builds) {
      const rs = results.get(key(b, balancer)) ?? [];
      console.log(
        `| ${balancer} | ${b.label} | ${mm(rs.map((r) => r.requests), 0)} | ${mm(rs.map((r) => r.failures), 0)} | ${mm(rs.map((r) => pct(r.failures, r.requests)), 3)} | ${mm(rs.map((r) => r.p99), 1)} | ${mm(rs.map((r) => r.p999), 1)} | ${mm(rs.map((r) => r.firstShare), 2)} | ${probesColumn(rs.map((r) => r.probesAtStart))} / ${probesColumn(rs.map((r) => r.probesDuring))} |`,
      );
    }
    if (builds.length === 2) {
      const [a, z] = builds.map((b) => results.get(key(b, balancer)) ?? []) as [HungResult[], HungResult[]];
      const f = (rs: HungResult[], k: 'requests' | 'failures' | 'p99' | 'p999'): number[] => rs.map((r) => r[k]);
      console.log(
        `| ${balancer} | **this ÷ BEFORE** | ${ratio(f(a, 'requests'), f(z, 'requests'))} | ${f(a, 'failures').reduce((s, x) => s + x, 0)} vs ${f(z, 'failures').reduce((s, x) => s + x, 0)} (total) | | ${ratio(f(a, 'p99'), f(z, 'p99'))} | ${ratio(f(a, 'p999'), f(z, 'p999'))} | | |`,
      );
    }
  }
}

/** The slow backend's share (%) of the requests issued in the first `s` seconds after it recovered. */
function firstSeconds(r: BrrResult, s: number): number {
  const secs = r.afterBySecond.slice(0, s);
  return pct(secs.reduce((n, x) => n + x.toSlow, 0), secs.reduce((n, x) => n + x.all, 0));
}

/**
 * Seconds after recovery until the slow backend is back at its fair share:
 * the end of the first whole second in which it answered ≥ 80 % of 1/11 of
 * the requests issued (NaN: never within the measured time).
 */
function backAtFairShare(r: BrrResult): number {
  const i = r.afterBySecond.findIndex((x) => x.all > 0 && x.toSlow / x.all >= 0.8 / 11);
  return i < 0 ? NaN : i + 1;
}

async function beyondRoundRobin(builds: BuildProcess[]): Promise<void> {
  console.log(
    `\n## Beyond Round Robin: 11 backends at ~167 ms${REPORTING ? ' (reporting)' : ''}, ${WARM_MS} ms warm-up, one at 2 s for ${SLOW_MS} ms; open loop ${RATE} req/s; 1 s deadline, defaults; share measured over ${AFTER_MS} ms after recovery (fair ${(100 / 11).toFixed(1)} %); ${BRR_RUNS} run(s) interleaved\n`,
  );
  const results = new Map<string, BrrResult[]>();
  const key = (b: BuildProcess, balancer: string): string => `${b.label}\u0000${balancer}`;
  for (let run = 0; run < BRR_RUNS; run++) {
    for (const balancer of BALANCERS) {
      for (const b of order(builds, run)) {
        const r = await b.call<BrrResult | Skipped>(MODULE, 'beyondRoundRobin', { balancer, slowMs: SLOW_MS, afterMs: AFTER_MS, rate: RATE, warmMs: WARM_MS, report: REPORTING });
        if (skipped(r, balancer, b)) continue;
        results.set(key(b, balancer), [...(results.get(key(b, balancer)) ?? []), r]);
      }
    }
  }
  const metrics: [string, (r: BrrResult) => number][] = [
    ['success while slow %', (r) => pct(r.slow.ok, r.slow.all)],
    ['success after %', (r) => pct(r.after.ok, r.after.all)],
    ['slow backend share after recovery %', (r) => pct(r.after.toSlow, r.after.all)],
    ['share in the last third %', (r) => pct(r.after.lastThirdToSlow, r.after.lastThird)],
    ['share in the first 5 s after %', (r) => firstSeconds(r, 5)],
    ['back at fair share after s', backAtFairShare],
  ];
  console.log(`| balancer | build | ${metrics.map(([m]) => m).join(' | ')} | requests while slow | probes sent before slow |`);
  console.log(`|---|---|${metrics.map(() => '---|').join('')}---|---|`);
  for (const balancer of BALANCERS) {
    for (const b of builds) {
      const rs = results.get(key(b, balancer)) ?? [];
      console.log(`| ${balancer} | ${b.label} | ${metrics.map(([, f]) => mm(rs.map(f), 2)).join(' | ')} | ${mm(rs.map((r) => r.slow.all), 0)} | ${probesColumn(rs.map((r) => r.probesAtStart))} |`);
    }
    if (builds.length === 2) {
      const [a, z] = builds.map((b) => results.get(key(b, balancer)) ?? []) as [BrrResult[], BrrResult[]];
      console.log(`| ${balancer} | **this ÷ BEFORE** | ${metrics.map(([, f]) => ratio(a.map(f), z.map(f))).join(' | ')} | | |`);
    }
  }
}

export async function run(): Promise<void> {
  const checkouts = checkoutsToCompare();
  console.log('# failure scenarios (npm run bench -- bench/failure-scenarios.bench.ts)');
  console.log(
    `BENCH_RUNS=${RUNS} BENCH_RUN_MS=${RUN_MS} BRR_RUNS=${BRR_RUNS} BRR_WARM_MS=${WARM_MS} BRR_SLOW_MS=${SLOW_MS} BRR_AFTER_MS=${AFTER_MS} BRR_RATE=${RATE} FAILURE_PARTS=${PARTS.join(',')} FAILURE_REPORTING=${REPORTING ? 1 : 0}${REPORTING ? ` FAILURE_WARM_MS=${FAILURE_WARM_MS}` : ''}`,
  );
  const builds = await startBuildProcesses(checkouts);
  try {
    console.log(`builds, each in its own process:\n${builds.map((b) => `- ${b.describe()}`).join('\n')}`);
    if (PARTS.includes('hung')) await hungBackend(builds);
    if (PARTS.includes('slow')) await hungBackend(builds, 50);
    if (PARTS.includes('brr')) await beyondRoundRobin(builds);
  } finally {
    for (const b of builds) await b.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
