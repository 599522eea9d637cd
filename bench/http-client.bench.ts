/**
 * @proxyless/http-client vs a raw undici Pool, undici BalancedPool and nginx
 * as the central proxy — side by side in one run, same backends, 64 in flight.
 *
 * Closed loop (64 workers, each awaiting its previous request): this
 * understates tail latency (coordinated omission); treat p99.9 as relative.
 * Every configuration runs RUNS times, interleaved, after a warm-up; each run
 * is bounded by request count and by duration. Backends run in child
 * processes so this process's CPU time (process.cpuUsage) is the client's own.
 *
 * Run: npm run build && npm run bench -- bench/http-client.bench.ts
 * (the built packages: tsx's keepNames wrappers add ~3.5 µs per request to
 * the sources; the bench stops when dist/ is missing or older than src/).
 * BENCH_PARTS=overhead runs the overhead comparison alone (a short hold of
 * the heavy-work lock). BENCH_CLIENT_BEFORE=<checkout> (built there) adds
 * three rows to the overhead comparison, interleaved with the rest: a raw
 * undici Pool, this build's client ×3 and that checkout's client ×3, each in
 * a worker process of its own (one build per process: two copies of undici in
 * one process distort both), and a before/after line with the ratios.
 */
import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Pool, BalancedPool } from 'undici';
import { StaticResolver, roundRobin, leastRequest, peakEwma, type Balancer } from '@proxyless/core';
import { createClient, type ProxylessClient } from '@proxyless/http-client';
import { freePorts, nginxVersion, startNginx, startNodeBackends, stop } from './support/processes.js';
import { closedLoop, type Call, type LoadResult } from './support/closed-loop.js';
import { checkoutsToCompare, requireBuilt } from './support/builds.js';
import { BuildProcess } from './support/build-process.js';

export const CONCURRENCY = 64;
export const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
export const RUN_MS = Number(process.env['BENCH_RUN_MS'] ?? 2_000);
export const MAX_REQUESTS = 200_000;
const PARTS = (process.env['BENCH_PARTS'] ?? 'overhead,realistic,slow').split(',');

type Result = LoadResult;
export type { Call };

function load(call: Call, ms: number, max: number): Promise<Result> {
  return closedLoop(call, ms, max, CONCURRENCY);
}

interface Config {
  name: string;
  call: Call;
  /** Runs the load in a worker process instead (`call` is then unused). */
  remote?: (ms: number, max: number) => Promise<Result>;
}

const runConfig = (c: Config, ms: number, max: number): Promise<Result> => (c.remote ? c.remote(ms, max) : load(c.call, ms, max));

function poolCall(pool: Pool | BalancedPool): Call {
  return async () => {
    const { body } = await pool.request({ path: '/', method: 'GET' });
    await body.dump();
  };
}

function clientCall(client: ProxylessClient): Call {
  return async () => {
    const { body } = await client.request({ path: '/', method: 'GET' });
    await body.dump();
  };
}

function makeClient(ports: number[], balancer?: Balancer): { client: ProxylessClient; resolver: StaticResolver } {
  const resolver = new StaticResolver({ services: { svc: ports.map((port) => ({ address: '127.0.0.1', port })) } });
  // Breakers, outlier detection and retries all on (defaults).
  const client = createClient({ service: 'svc', resolver, ...(balancer ? { balancer } : {}) });
  return { client, resolver };
}

/**
 * A configuration run by a build worker (its own process): `kind` over
 * `ports`; the closed loop and its CPU figure are the worker's.
 */
async function workerConfig(name: string, label: string, dir: string, kind: 'client' | 'raw', ports: number[], workers: BuildProcess[]): Promise<Config> {
  const worker = await BuildProcess.start(label, dir);
  workers.push(worker);
  await worker.call('./client-load.ts', 'open', { kind, ports });
  return { name, call: async () => undefined, remote: (ms, max) => worker.call<Result>('./client-load.ts', 'load', { ms, max, concurrency: CONCURRENCY }) };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

export async function compare(title: string, configs: Config[], baseline: string | undefined): Promise<Map<string, Result[]>> {
  process.stdout.write(`\n### ${title}\n(warm-up…)\n`);
  for (const c of configs) await runConfig(c, 400, MAX_REQUESTS);
  const results = new Map<string, Result[]>(configs.map((c) => [c.name, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const c of configs) results.get(c.name)!.push(await runConfig(c, RUN_MS, MAX_REQUESTS));
  }
  const fmt = (xs: number[], digits: number): string =>
    `${median(xs).toFixed(digits)} [${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}]`;
  const base = baseline ? results.get(baseline)! : undefined;
  const rows = [['config', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'CPU µs/req', 'req/s ×base', 'CPU ×base', 'errors']];
  for (const [name, rs] of results) {
    rows.push([
      name,
      fmt(rs.map((r) => r.rps), 0),
      fmt(rs.map((r) => r.p50), 2),
      fmt(rs.map((r) => r.p99), 2),
      fmt(rs.map((r) => r.p999), 2),
      fmt(rs.map((r) => r.cpuUsPerReq), 1),
      base ? (median(rs.map((r) => r.rps)) / median(base.map((r) => r.rps))).toFixed(2) : '',
      base ? (median(rs.map((r) => r.cpuUsPerReq)) / median(base.map((r) => r.cpuUsPerReq))).toFixed(2) : '',
      String(rs.reduce((a, r) => a + r.errors, 0)),
    ]);
  }
  process.stdout.write(`${rows.map((r) => `| ${r.join(' | ')} |`).join('\n').replace(/\n/, `\n|${rows[0]!.map(() => '---').join('|')}|\n`)}\n`);
  return results;
}

export const med = (rs: Result[] | undefined, key: keyof Result): number => median((rs ?? []).map((r) => r[key]));

function verdict(label: string, ok: boolean, detail: string): string {
  return `- ${ok ? 'MET   ' : 'MISSED'} ${label}: ${detail}`;
}

export type Metric = 'rps' | 'p50' | 'p99' | 'p999' | 'cpuUsPerReq';
const FIGURE: Record<Metric, [unit: string, digits: number]> = { rps: ['req/s', 0], p50: ['ms', 2], p99: ['ms', 2], p999: ['ms', 2], cpuUsPerReq: ['µs', 1] };

/**
 * A target on one metric of two configs: met when config `a`'s figure is `op` the bound made from config
 * `b`'s (e.g. `(x) => 1.1 * x`); the line shows both figures and, unless `ratioDigits` is null, a/b.
 */
export function targetVerdict(label: string, figure: (name: string, metric: Metric) => number, a: string, b: string, metric: Metric, op: '≤' | '≥', bound: (b: number) => number, ratioDigits: number | null = 2): string {
  const [av, bv] = [figure(a, metric), figure(b, metric)];
  const limit = bound(bv);
  const [unit, digits] = FIGURE[metric];
  const ratio = ratioDigits === null ? '' : ` (${(av / bv).toFixed(ratioDigits)}×)`;
  return verdict(label, op === '≤' ? av <= limit : av >= limit, `${av.toFixed(digits)} vs ${bv.toFixed(digits)} ${unit}${ratio}`);
}

const OWN_RAW = 'own process: raw undici Pool → 1 backend';
const OWN_THIS = 'own process: proxyless client ×3, this build';
const OWN_BEFORE = 'own process: proxyless client ×3, BEFORE';

/** This build vs BEFORE (each in its own process, interleaved), each also against a raw Pool in its own process. */
function beforeAfter(overhead: Map<string, Result[]>): string[] {
  const rs = (n: string): Result[] => overhead.get(n) ?? [];
  // Runs are interleaved, so run i of each row shares its conditions: ratios per run, then median [min–max].
  const paired = (a: string, b: string, key: keyof Result): string => {
    const ra = rs(a);
    const rb = rs(b);
    const ratios = ra.map((r, i) => r[key] / rb[i]![key]);
    return `${median(ratios).toFixed(2)}× [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}]`;
  };
  const line = (label: string, a: string, b: string): string =>
    `- ${label}: req/s ${paired(a, b, 'rps')}, CPU µs/req ${paired(a, b, 'cpuUsPerReq')}, p99 ${paired(a, b, 'p99')}, p99.9 ${paired(a, b, 'p999')}`;
  return [
    '',
    'Before/after (own-process rows; ratio per interleaved run, median [min–max]):',
    line('this build ÷ BEFORE', OWN_THIS, OWN_BEFORE),
    line('this build ÷ raw Pool', OWN_THIS, OWN_RAW),
    line('BEFORE ÷ raw Pool', OWN_BEFORE, OWN_RAW),
    `- p99.9 ms: this build ${med(rs(OWN_THIS), 'p999').toFixed(2)}, BEFORE ${med(rs(OWN_BEFORE), 'p999').toFixed(2)}, raw Pool ${med(rs(OWN_RAW), 'p999').toFixed(2)} (targets: ≥ 0.95× raw throughput, ≤ 1.05× raw CPU, p99.9 ≤ raw + 1 ms; no regression: this ÷ BEFORE ≥ 1 on req/s, ≤ 1 on CPU)`,
  ];
}

export async function run(): Promise<void> {
  requireBuilt();
  const checkouts = checkoutsToCompare();
  const before = checkouts[1];
  const version = (p: string): string =>
    (JSON.parse(readFileSync(new URL(`../node_modules/${p}/package.json`, import.meta.url), 'utf8')) as { version: string }).version;
  let model = 'unknown';
  try {
    model = execSync("lscpu | grep -E 'Model name|^CPU\\(s\\)'", { encoding: 'utf8' }).replace(/\s+/g, ' ').trim();
  } catch { /* no lscpu */ }
  process.stdout.write(
    `# http-client bench\ncommand: ${process.argv.map((a) => a.replace(/^.*node_modules\//, '')).join(' ')}\n` +
      `node ${process.version}, undici ${version('undici')}, nginx ${nginxVersion() ?? 'absent'}\n` +
      `machine: ${model}\nconcurrency ${CONCURRENCY}, ${RUNS} interleaved runs × ${RUN_MS} ms (≤ ${MAX_REQUESTS} requests) per config; median [min–max]\n`,
  );
  if (!nginxVersion()) throw new Error('nginx is required (apt-get install -y nginx)');

  const [t1, t2, t3, proxyPort, n1, n2, n3, s1, s2, s3, s4, s5, h5] = (await freePorts(13)) as [number, number, number, number, number, number, number, number, number, number, number, number, number];
  const [proxyPort1, m1, m2, m3, proxyPortAuto] = (await freePorts(5)) as [number, number, number, number, number];
  const trivial = [t1, t2, t3];
  const nodePorts = [n1, n2, n3];
  const slowPorts = [s1, s2, s3, s4, s5];
  const nginx = await startNginx(trivial, proxyPort, nodePorts);
  // Second nginx: the central proxy in front of the same three backends hosted by a single Node process.
  const sharedPorts = [m1, m2, m3];
  const nginx1 = await startNginx([], proxyPort1, sharedPorts);
  const nginxAuto = await startNginx([], proxyPortAuto, sharedPorts, 'auto');
  const sharedBackends = await startNodeBackends(sharedPorts.map((port) => ({ port, delayMs: 0 })));
  // One process per Node backend, as in a real deployment (a single process would be the bottleneck of every path).
  const nodeBackends = await Promise.all(nodePorts.map((port) => startNodeBackends([{ port, delayMs: 0 }])));
  const healthy5 = await startNodeBackends([...slowPorts.slice(0, 4), h5].map((port) => ({ port, delayMs: 0 })));
  const slowOne = await startNodeBackends([{ port: s5, delayMs: 50 }]);
  const closers: (() => Promise<void>)[] = [];
  try {
    // 1. Overhead: trivial nginx backends.
    const raw = new Pool(`http://127.0.0.1:${t1}`);
    const balanced = new BalancedPool(trivial.map((p) => `http://127.0.0.1:${p}`));
    const { client: px } = makeClient(trivial);
    const { client: px1 } = makeClient([t1]);
    // Issue 23's controls all on: a hedge at the set's p95, Vegas concurrency limits, SRE admission control.
    // minLimit 32 per endpoint (96 > 64 in flight): the row measures what the controls cost, not local
    // rejections (at the default floor, Vegas reads this process's own CPU queueing as the backends').
    const pxAll = createClient({
      service: 'svc',
      resolver: new StaticResolver({ services: { svc: trivial.map((port) => ({ address: '127.0.0.1', port })) } }),
      concurrencyLimit: { initialLimit: 64, minLimit: 32 },
      admissionControl: true,
    });
    const hedgedCall: Call = async () => {
      const { body } = await pxAll.request({ path: '/', method: 'GET', hedge: { percentile: 95 } });
      await body.dump();
    };
    const rrPools = trivial.map((p) => new Pool(`http://127.0.0.1:${p}`));
    let next = 0;
    const rrCall: Call = async () => {
      const pool = rrPools[next]!;
      next = next === rrPools.length - 1 ? 0 : next + 1;
      const { body } = await pool.request({ path: '/', method: 'GET' });
      await body.dump();
    };
    closers.push(() => raw.close(), () => balanced.close(), () => px.close(), () => px1.close(), () => pxAll.close(), ...rrPools.map((p) => () => p.close()));
    const overheadConfigs: Config[] = [
      { name: 'raw undici Pool → 1 backend', call: poolCall(raw) },
      { name: 'proxyless client → 1 backend', call: clientCall(px1) },
      { name: 'undici BalancedPool ×3', call: poolCall(balanced) },
      { name: 'round-robin over 3 raw undici Pools', call: rrCall },
      { name: 'proxyless client ×3 (peak EWMA, breakers, ejection, retries)', call: clientCall(px) },
      { name: 'proxyless client ×3, + hedge at p95, concurrency limit, admission control', call: hedgedCall },
    ];
    const workers: BuildProcess[] = [];
    closers.push(async () => {
      for (const w of workers) await w.stop();
    });
    if (before !== undefined && PARTS.includes('overhead')) {
      overheadConfigs.push(
        await workerConfig(OWN_RAW, 'raw Pool', checkouts[0]!.dir, 'raw', [t1], workers),
        await workerConfig(OWN_THIS, 'this build', checkouts[0]!.dir, 'client', trivial, workers),
        await workerConfig(OWN_BEFORE, 'BEFORE', before.dir, 'client', trivial, workers),
      );
      process.stdout.write(`own-process rows:\n${workers.map((w) => `- ${w.describe()}`).join('\n')}\n`);
    }
    const overhead = PARTS.includes('overhead')
      ? await compare('Overhead — trivial nginx backends (return 200 "ok")', overheadConfigs, 'raw undici Pool → 1 backend')
      : new Map<string, Result[]>();

    // 2. Realistic: Node backends, direct vs via nginx as the central proxy.
    const rawNode = new Pool(`http://127.0.0.1:${n1}`);
    const viaNginx = new Pool(`http://127.0.0.1:${proxyPort}`);
    const { client: pxNode } = makeClient(nodePorts);
    closers.push(() => rawNode.close(), () => viaNginx.close(), () => pxNode.close());
    const realistic = !PARTS.includes('realistic') ? new Map<string, Result[]>() : await compare(
      'Realistic — 3 Node backends: direct vs nginx central proxy',
      [
        { name: 'raw undici Pool → 1 Node backend', call: poolCall(rawNode) },
        { name: 'proxyless client ×3 Node backends', call: clientCall(pxNode) },
        { name: 'undici Pool → nginx proxy → 3 Node backends', call: poolCall(viaNginx) },
      ],
      'undici Pool → nginx proxy → 3 Node backends',
    );

    // 2b. Same comparison, the three backends served by one Node process
    // (on a 2-core box, three backend processes plus the client mostly measure
    // scheduler contention; one process is the other honest extreme).
    const viaNginx1 = new Pool(`http://127.0.0.1:${proxyPort1}`);
    const viaNginxAuto = new Pool(`http://127.0.0.1:${proxyPortAuto}`);
    closers.push(() => viaNginxAuto.close());
    const { client: pxShared } = makeClient(sharedPorts);
    closers.push(() => viaNginx1.close(), () => pxShared.close());
    const realistic1 = !PARTS.includes('realistic') ? new Map<string, Result[]>() : await compare(
      'Realistic (b) — 3 Node backends in one process: direct vs nginx central proxy',
      [
        { name: 'proxyless client ×3 Node backends (1 process)', call: clientCall(pxShared) },
        { name: 'undici Pool → nginx proxy → 3 Node backends (1 process)', call: poolCall(viaNginx1) },
        { name: 'same, nginx worker_processes auto (Debian default)', call: poolCall(viaNginxAuto) },
      ],
      'undici Pool → nginx proxy → 3 Node backends (1 process)',
    );

    // 3. Slow backend: 5 Node backends, one +50 ms.
    const healthyClient = makeClient([...slowPorts.slice(0, 4), h5]).client; // the same four plus a healthy fifth
    const rr = makeClient(slowPorts, roundRobin()).client;
    const lr = makeClient(slowPorts, leastRequest()).client;
    const pe = makeClient(slowPorts, peakEwma()).client;
    closers.push(() => healthyClient.close(), () => rr.close(), () => lr.close(), () => pe.close());
    const slow = !PARTS.includes('slow') ? new Map<string, Result[]>() : await compare(
      'Slow backend — 5 Node backends, one +50 ms (closed loop, 64 in flight)',
      [
        { name: 'peak EWMA, all 5 healthy (reference)', call: clientCall(healthyClient) },
        { name: 'round-robin, one slow', call: clientCall(rr) },
        { name: 'least-request (P2C), one slow', call: clientCall(lr) },
        { name: 'peak EWMA, one slow', call: clientCall(pe) },
      ],
      undefined,
    );

    const o = (n: string, k: keyof Result): number => med(overhead.get(n), k);
    const rawName = 'raw undici Pool → 1 backend';
    const pxName = 'proxyless client ×3 (peak EWMA, breakers, ejection, retries)';
    const r = (n: string, k: keyof Result): number => med(realistic.get(n), k);
    const nginxName = 'undici Pool → nginx proxy → 3 Node backends';
    const pxNodeName = 'proxyless client ×3 Node backends';
    const sl = (n: string, k: keyof Result): number => med(slow.get(n), k);
    const px1Name = 'proxyless client → 1 backend';
    const rrName = 'round-robin over 3 raw undici Pools';
    const lines: string[] = [];
    if (PARTS.includes('overhead')) {
      lines.push(
        targetVerdict('[same backend] client CPU/req ≤ 1.1× raw Pool', o, px1Name, rawName, 'cpuUsPerReq', '≤', (x) => 1.1 * x),
        targetVerdict('[same backend] throughput ≥ 0.9× raw Pool', o, px1Name, rawName, 'rps', '≥', (x) => 0.9 * x),
        targetVerdict('[same backend] p99.9 ≤ raw Pool + 1 ms', o, px1Name, rawName, 'p999', '≤', (x) => x + 1, null),
        targetVerdict('[×3 backends] client CPU/req ≤ 1.1× round-robin over 3 raw Pools', o, pxName, rrName, 'cpuUsPerReq', '≤', (x) => 1.1 * x),
        targetVerdict('[×3 backends] client CPU/req ≤ 1.05× raw Pool', o, pxName, rawName, 'cpuUsPerReq', '≤', (x) => 1.05 * x),
        targetVerdict('[×3 backends] throughput ≥ 0.95× raw Pool', o, pxName, rawName, 'rps', '≥', (x) => 0.95 * x),
        targetVerdict('[×3 backends] p99.9 ≤ raw Pool + 1 ms', o, pxName, rawName, 'p999', '≤', (x) => x + 1, null),
      );
      if (before !== undefined) lines.push(...beforeAfter(overhead));
    }
    if (PARTS.includes('realistic')) {
      const r1 = (n: string, k: Metric): number => med(realistic1.get(n), k);
      const px1Process = 'proxyless client ×3 Node backends (1 process)';
      const nginx1Process = 'undici Pool → nginx proxy → 3 Node backends (1 process)';
      const nginxAuto = 'same, nginx worker_processes auto (Debian default)';
      lines.push(
        targetVerdict('(b, 1 backend process) ≥ 1.8× nginx-proxy throughput', r1, px1Process, nginx1Process, 'rps', '≥', (x) => 1.8 * x, null),
        targetVerdict('(b, 1 backend process) ≤ 0.6× nginx-proxy p50', r1, px1Process, nginx1Process, 'p50', '≤', (x) => 0.6 * x, null),
        targetVerdict('(b) vs nginx worker_processes auto: ≥ 1.8× throughput', r1, px1Process, nginxAuto, 'rps', '≥', (x) => 1.8 * x, null),
        targetVerdict('(b) vs nginx worker_processes auto: ≤ 0.6× p50', r1, px1Process, nginxAuto, 'p50', '≤', (x) => 0.6 * x, null),
        targetVerdict('(a, 3 backend processes) ≥ 1.8× nginx-proxy throughput', r, pxNodeName, nginxName, 'rps', '≥', (x) => 1.8 * x),
        targetVerdict('(a, 3 backend processes) ≤ 0.6× nginx-proxy p50', r, pxNodeName, nginxName, 'p50', '≤', (x) => 0.6 * x),
      );
    }
    if (PARTS.includes('slow')) {
      lines.push(
        targetVerdict('peak-EWMA p99 (one slow of five) ≤ 1.5× all-healthy p99', sl, 'peak EWMA, one slow', 'peak EWMA, all 5 healthy (reference)', 'p99', '≤', (x) => 1.5 * x, null),
      );
    }
    process.stdout.write(`\n### Targets\n${lines.join('\n')}\n`);
  } finally {
    for (const c of closers) await c().catch(() => undefined);
    for (const b of nodeBackends) await stop(b);
    await stop(healthy5);
    await stop(slowOne);
    await stop(nginx.child);
    await stop(nginx1.child);
    await stop(nginxAuto.child);
    await stop(sharedBackends);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
