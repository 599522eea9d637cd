/**
 * Discovery where production hurts, against real Consul agents on loopback:
 *
 * 1. Burst propagation: BURST register/deregister changes with 0–30 ms gaps,
 *    made on two agents at once (one with `use_streaming_backend = false`);
 *    change acknowledged → subscriber event, for four watches side by side:
 *      - the token-bucket loop on the blocking-query backend (the default loop),
 *      - the same on the streaming backend (plain, and with `cached: true`),
 *      - the loop as it was before: a fixed 100 ms + 0–50 ms sleep after every answer.
 *    ROUNDS rounds; median [min–max] over rounds of each round's p50/p99/max.
 * 2. Recovery: the agent down for 10 s, then back; time from the agent's first
 *    answer to each of 8 watches (8 resolvers, standing for 8 processes)
 *    converging; Consul requests per second while it was down.
 * 3. Soak (HTTPS, so HTTP/2): SOAK_SERVICES watched services with one instance,
 *    plus 100 services × 100 instances (10,000 endpoints): heap per watch and
 *    per instance, CPU at rest, Consul requests per minute at rest and under a
 *    churn of CHURN_PER_MIN instance changes per minute (from a child process),
 *    event-loop delay p99/max under churn.
 *
 * Run: npm run bench -- bench/discovery.bench.ts
 * Knobs: DISCOVERY_ROUNDS (3), DISCOVERY_BURST (200), DISCOVERY_OUTAGE_RUNS (3),
 *   SOAK_SERVICES (1000), SOAK_REST_MS (70000), SOAK_CHURN_MS (60000), CHURN_PER_MIN (10000),
 *   DISCOVERY_PARTS (burst,recovery,soak: run a subset).
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ConsulHttpClient, ConsulResolver, type ConsulRequest, type ConsulResponse, type ServiceWatch } from '@proxyless/core';
import { consulBinary, startConsulAgent, type ConsulAgent } from '../test/support/consul.js';
import { startAndTimeFirstAnswer } from '../test/support/agent-back.js';
import { startTlsConsulAgent } from '../test/support/consul-tls.js';
import { requireBuilt } from './support/builds.js';

const ROUNDS = Number(process.env['DISCOVERY_ROUNDS'] ?? 3);
const BURST = Number(process.env['DISCOVERY_BURST'] ?? 200);
const OUTAGE_RUNS = Number(process.env['DISCOVERY_OUTAGE_RUNS'] ?? 3);
const SOAK_SERVICES = Number(process.env['SOAK_SERVICES'] ?? 1000);
// Longer than one blocking wait (60 s), so every long poll returns once in the window.
const SOAK_REST_MS = Number(process.env['SOAK_REST_MS'] ?? 70_000);
const SOAK_CHURN_MS = Number(process.env['SOAK_CHURN_MS'] ?? 60_000);
const CHURN_PER_MIN = Number(process.env['CHURN_PER_MIN'] ?? 10_000);
// Which parts to run (comma-separated subset of burst,recovery,soak), e.g. to re-measure one part alone.
const PARTS = new Set((process.env['DISCOVERY_PARTS'] ?? 'burst,recovery,soak').split(',').map((p) => p.trim()));
const WIDE_SERVICES = 100;
const WIDE_INSTANCES = 100;

class CountingClient extends ConsulHttpClient {
  requests = 0;
  override async request(req: ConsulRequest): Promise<ConsulResponse> {
    this.requests++;
    return super.request(req);
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** "median [min–max]" of a list of numbers. */
function spread(values: number[], digits = 1): string {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return 'n/a';
  return `${percentile(s, 50).toFixed(digits)} [${s[0]!.toFixed(digits)}–${s.at(-1)!.toFixed(digits)}]`;
}

function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (row: string[]): string => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

async function until(what: string, condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function put(base: string, path: string, body?: unknown): Promise<void> {
  const res = await fetch(`${base}${path}`, { method: 'PUT', body: body === undefined ? null : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`PUT ${path}: ${res.status} ${text}`);
}

function version(pkg: string): string {
  try {
    return (JSON.parse(readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

// ---------------------------------------------------------------- 1. bursts

interface BurstRow {
  name: string;
  p50: number[];
  p99: number[];
  max: number[];
  backend: string;
}

/**
 * Two agents get the same changes: one with `use_streaming_backend = false`
 * (blocking queries are served by the blocking-query backend), one with the
 * default (Consul 1.22 then serves blocking health queries by streaming).
 */
async function burst(plain: ConsulAgent, streaming: ConsulAgent): Promise<BurstRow[]> {
  const configs = [
    { name: 'token bucket (default)', agent: plain, options: {}, query: {} },
    { name: 'token bucket, streaming backend', agent: streaming, options: {}, query: {} },
    { name: 'token bucket, streaming + cached', agent: streaming, options: {}, query: { cached: true } },
    { name: 'before: fixed 100 ms + 0–50 ms sleep', agent: plain, options: { rateLimit: { burst: 1, minIntervalMs: 100, jitterMs: 50 } }, query: {} },
  ];
  const agents = [plain, streaming];
  const rows: BurstRow[] = configs.map((c) => ({ name: c.name, p50: [], p99: [], max: [], backend: '?' }));
  for (let round = 0; round < ROUNDS; round++) {
    const service = `burst-${round}`;
    await Promise.all(agents.map((a) => put(a.httpUrl, '/v1/agent/service/register', { Name: service, ID: `${service}-base`, Address: '127.0.0.1', Port: 9000 })));
    const resolvers = configs.map((c) => new ConsulResolver({ address: c.agent.httpAddr, env: {}, ...c.options }));
    const seen = configs.map(() => new Map<string, number>());
    try {
      const watches: ServiceWatch[] = resolvers.map((r, i) => r.watch(service, configs[i]!.query));
      watches.forEach((w, i) => w.on('update', (_s, change) => {
        const now = performance.now();
        for (const x of change.added) if (!seen[i]!.has(`+${x.id}`)) seen[i]!.set(`+${x.id}`, now);
        for (const x of change.removed) if (!seen[i]!.has(`-${x.id}`)) seen[i]!.set(`-${x.id}`, now);
      }));
      await Promise.all(watches.map((w) => w.ready({ timeoutMs: 20_000 })));
      await new Promise((r) => setTimeout(r, 500));
      const acked = agents.map(() => new Map<string, number>());
      const half = Math.ceil(BURST / 2);
      for (let i = 0; i < BURST; i++) {
        const id = `${service}-${i % half}`;
        const key = `${i < half ? '+' : '-'}${id}`;
        await Promise.all(agents.map(async (a, j) => {
          if (i < half) await put(a.httpUrl, '/v1/agent/service/register', { Name: service, ID: id, Address: '127.0.0.1', Port: 10_000 + i });
          else await put(a.httpUrl, `/v1/agent/service/deregister/${id}`);
          acked[j]!.set(key, performance.now());
        }));
        await new Promise((r) => setTimeout(r, Math.random() * 30));
      }
      const ackOf = (i: number): Map<string, number> => acked[agents.indexOf(configs[i]!.agent)]!;
      await until('every change seen by every watch', () => seen.every((m, i) => [...ackOf(i).keys()].every((k) => m.has(k))));
      seen.forEach((m, i) => {
        const lat = [...ackOf(i)].map(([k, at]) => Math.max(0, m.get(k)! - at)).sort((a, b) => a - b);
        rows[i]!.p50.push(percentile(lat, 50));
        rows[i]!.p99.push(percentile(lat, 99));
        rows[i]!.max.push(lat.at(-1)!);
        rows[i]!.backend = watches[i]!.current?.info?.queryBackend ?? '?';
      });
      process.stderr.write(`burst round ${round + 1}/${ROUNDS}: p99 ${rows.map((r) => r.p99.at(-1)!.toFixed(1)).join(' / ')} ms\n`);
    } finally {
      await Promise.all(resolvers.map((r) => r.close()));
    }
  }
  return rows;
}

// ---------------------------------------------------------------- 2. recovery

interface RecoveryRun {
  slowestMs: number;
  fastestMs: number;
  requestsPerSecondDown: number;
}

async function recovery(agent: ConsulAgent): Promise<RecoveryRun[]> {
  const service = 'recovery';
  const clients = Array.from({ length: 8 }, () => new CountingClient({ address: agent.httpAddr }, {}));
  const resolvers = clients.map((client) => new ConsulResolver({ client, env: {} }));
  const runs: RecoveryRun[] = [];
  try {
    for (let run = 0; run < OUTAGE_RUNS; run++) {
      await put(agent.httpUrl, '/v1/agent/service/register', { Name: service, ID: `${service}-1`, Address: '127.0.0.1', Port: 7001 });
      const watches = resolvers.map((r) => r.watch(service));
      await until('all see the instance', () => watches.every((w) => w.current?.instances.length === 1 && !w.current.stale));
      await agent.stop();
      await until('all stale', () => watches.every((w) => w.current?.stale === true));
      const before = clients.reduce((n, c) => n + c.requests, 0);
      const downAt = performance.now();
      await new Promise((r) => setTimeout(r, 10_000));
      const converged = new Map<ServiceWatch, number>();
      for (const w of watches) {
        w.on('update', (s) => {
          if (!s.stale && s.instances.length === 0 && !converged.has(w)) converged.set(w, performance.now());
        });
      }
      const backAt = await startAndTimeFirstAnswer(agent, `/v1/health/service/${service}?stale`);
      const during = clients.reduce((n, c) => n + c.requests, 0) - before;
      await until('all converged', () => converged.size === watches.length);
      const after = [...converged.values()].map((t) => t - backAt).sort((a, b) => a - b);
      runs.push({ slowestMs: after.at(-1)!, fastestMs: after[0]!, requestsPerSecondDown: during / ((backAt - downAt) / 1000) });
      process.stderr.write(`recovery run ${run + 1}/${OUTAGE_RUNS}: ${after.map((t) => t.toFixed(0)).join(', ')} ms\n`);
      await Promise.all(watches.map((w) => w.close()));
    }
  } finally {
    await Promise.all(resolvers.map((r) => r.close()));
    await Promise.all(clients.map((c) => c.close()));
  }
  return runs;
}

// ---------------------------------------------------------------- 3. soak

const gc = ((): (() => void) => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 100));
  }
  return process.memoryUsage().heapUsed;
}

/** Instances spread over 100 nodes (a node carrying 10,000 services makes every catalog write slow). */
async function registerMany(base: string, items: { node: string; service: string; id: string; port: number }[]): Promise<void> {
  for (let i = 0; i < items.length; i += 32) {
    await Promise.all(items.slice(i, i + 32).map((x) => put(base, '/v1/catalog/register', { Node: x.node, Address: '127.0.0.1', Service: { ID: x.id, Service: x.service, Port: x.port } })));
  }
}

/** Churn from a child process, so its own work does not count in our event-loop delay. */
const churnScript = `
const [base, perMin, durationMs, services, instances] = process.argv.slice(1).map((a, i) => i === 0 ? a : Number(a));
const gapMs = 60000 / perMin;
const end = Date.now() + durationMs;
let n = 0, failed = 0, skipped = 0;
// Every instance starts registered: the first change of each is a deregistration.
const present = new Set();
for (let s = 0; s < services; s++) for (let i = 0; i < instances; i++) present.add('wide-' + s + '-' + i);
async function one(k) {
  const s = k % services, i = Math.floor(k / services) % instances;
  const id = 'wide-' + s + '-' + i, key = id;
  const body = present.has(key)
    ? { Node: 'wide-node-' + i, ServiceID: id }
    : { Node: 'wide-node-' + i, Address: '127.0.0.1', Service: { ID: id, Service: 'wide-' + s, Port: 40000 + i } };
  const path = present.has(key) ? '/v1/catalog/deregister' : '/v1/catalog/register';
  if (present.has(key)) present.delete(key); else present.add(key);
  try {
    const r = await fetch(base + path, { method: 'PUT', body: JSON.stringify(body) });
    const text = await r.text();
    if (!r.ok) { if (failed++ === 0) process.stderr.write('churn: ' + r.status + ' ' + text + '\\n'); }
  } catch (e) { if (failed++ === 0) process.stderr.write('churn: ' + e + '\\n'); }
}
const started = Date.now();
const inflight = new Set();
while (Date.now() < end) {
  const due = started + n * gapMs;
  const wait = due - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  if (inflight.size >= 64) { skipped++; n++; continue; }
  const p = one(n++).finally(() => inflight.delete(p));
  inflight.add(p);
}
await Promise.all(inflight);
const cpu = process.cpuUsage();
process.stdout.write(JSON.stringify({ changes: n - skipped, failed, skipped, cpuMs: (cpu.user + cpu.system) / 1000 }));
`;

interface SoakResult {
  watches: number;
  heapPerWatchKiB: number;
  heapPerInstanceKiB: number;
  restCpuPercent: number;
  restRequestsPerMin: number;
  churnChanges: number;
  churnFailed: number;
  churnSkipped: number;
  churnRequestsPerMin: number;
  churnCpuPercent: number;
  churnElu: number;
  agentCpuPercent: number;
  generatorCpuPercent: number;
  lagP99Ms: number;
  lagMaxMs: number;
  /** Garbage-collection pauses during the churn: count, total and longest (ms). */
  gcPauses: number;
  gcTotalMs: number;
  gcMaxMs: number;
  updates: number;
  errors: number;
  /** Watch errors before the churn (startup: 1,100 first reads at once, and the rest period). */
  errorsBefore: number;
  firstErrorBefore: string;
  firstError: string;
}

/** CPU time (ms) a process has used so far, from /proc (0 when unknown). */
function agentCpu(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) / 100) * 1000; // utime + stime, in clock ticks of 10 ms
  } catch {
    return 0;
  }
}

async function soak(): Promise<SoakResult> {
  const tls = await startTlsConsulAgent();
  const client = new CountingClient({ address: tls.httpsUrl, tls: { ca: tls.ca } }, {});
  const resolver = new ConsulResolver({ client, env: {} });
  let errors = 0;
  let firstError = '';
  let updates = 0;
  const onError = (e: Error): void => {
    if (errors++ === 0) firstError = `${e.message}${e.cause instanceof Error ? ` (${e.cause.message})` : ''}`;
  };
  try {
    const narrow = Array.from({ length: SOAK_SERVICES }, (_, i) => ({ node: `narrow-node-${i % 100}`, service: `soak-${i}`, id: `soak-${i}-0`, port: 20_000 + (i % 20_000) }));
    const wide: { node: string; service: string; id: string; port: number }[] = [];
    for (let s = 0; s < WIDE_SERVICES; s++) for (let i = 0; i < WIDE_INSTANCES; i++) wide.push({ node: `wide-node-${i}`, service: `wide-${s}`, id: `wide-${s}-${i}`, port: 40_000 + i });
    process.stderr.write(`soak: registering ${narrow.length + wide.length} instances\n`);
    await registerMany(tls.agent.httpUrl, [...narrow, ...wide]);

    const heap0 = await settledHeap();
    const narrowWatches = narrow.map((x) => resolver.watch(x.service));
    for (const w of narrowWatches) {
      w.on('error', onError);
      w.on('update', () => updates++);
    }
    await Promise.all(narrowWatches.map((w) => w.ready({ timeoutMs: 60_000 })));
    await new Promise((r) => setTimeout(r, 2000));
    const heap1 = await settledHeap();
    const wideWatches = Array.from({ length: WIDE_SERVICES }, (_, s) => resolver.watch(`wide-${s}`));
    for (const w of wideWatches) {
      w.on('error', onError);
      w.on('update', () => updates++);
    }
    await Promise.all(wideWatches.map((w) => w.ready({ timeoutMs: 60_000 })));
    await until('all wide instances', () => wideWatches.every((w) => w.current?.instances.length === WIDE_INSTANCES), 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    const heap2 = await settledHeap();
    const perWatch = (heap1 - heap0) / narrow.length;
    const perInstance = (heap2 - heap1 - WIDE_SERVICES * perWatch) / (WIDE_SERVICES * WIDE_INSTANCES);

    process.stderr.write(`soak: ${resolver.activeWatches} watches at rest for ${SOAK_REST_MS} ms\n`);
    updates = 0;
    const restReq0 = client.requests;
    const restCpu0 = process.cpuUsage();
    const restT0 = performance.now();
    await new Promise((r) => setTimeout(r, SOAK_REST_MS));
    const restMs = performance.now() - restT0;
    const restCpu = process.cpuUsage(restCpu0);
    const restRequests = client.requests - restReq0;

    process.stderr.write(`soak: churn of ${CHURN_PER_MIN}/min for ${SOAK_CHURN_MS} ms\n`);
    updates = 0;
    const errorsBefore = errors;
    const firstErrorBefore = firstError;
    errors = 0;
    firstError = '';
    // The histogram records whole timer intervals: subtract the resolution to get the delay.
    const lagResolutionMs = 5;
    const lag = monitorEventLoopDelay({ resolution: lagResolutionMs });
    lag.enable();
    // GC pauses stop the event loop too: count them, to tell our own work from the collector's in the tail.
    const gcPauses: number[] = [];
    const gcObserver = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) gcPauses.push(entry.duration);
    });
    gcObserver.observe({ entryTypes: ['gc'] });
    const churnReq0 = client.requests;
    const churnCpu0 = process.cpuUsage();
    const churnT0 = performance.now();
    const agentCpu0 = agentCpu(tls.agent.pid);
    const elu0 = performance.eventLoopUtilization();
    const child = spawn(process.execPath, ['--input-type=module', '-e', churnScript, tls.agent.httpUrl, String(CHURN_PER_MIN), String(SOAK_CHURN_MS), String(WIDE_SERVICES), String(WIDE_INSTANCES)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), SOAK_CHURN_MS + 60_000);
    await once(child, 'exit');
    clearTimeout(killer);
    const churnMs = performance.now() - churnT0;
    lag.disable();
    gcObserver.disconnect();
    const churnCpu = process.cpuUsage(churnCpu0);
    const churn = JSON.parse(out || '{"changes":0,"failed":-1,"skipped":0,"cpuMs":0}') as { changes: number; failed: number; skipped: number; cpuMs: number };
    const agentCpuMs = agentCpu(tls.agent.pid) - agentCpu0;
    const elu = performance.eventLoopUtilization(elu0);
    return {
      watches: resolver.activeWatches,
      heapPerWatchKiB: perWatch / 1024,
      heapPerInstanceKiB: perInstance / 1024,
      restCpuPercent: ((restCpu.user + restCpu.system) / 1000 / restMs) * 100,
      restRequestsPerMin: restRequests / (restMs / 60_000),
      churnChanges: churn.changes,
      churnFailed: churn.failed,
      churnSkipped: churn.skipped,
      churnRequestsPerMin: (client.requests - churnReq0) / (churnMs / 60_000),
      churnCpuPercent: ((churnCpu.user + churnCpu.system) / 1000 / churnMs) * 100,
      churnElu: elu.utilization,
      agentCpuPercent: (agentCpuMs / churnMs) * 100,
      generatorCpuPercent: (churn.cpuMs / churnMs) * 100,
      lagP99Ms: Math.max(0, lag.percentile(99) / 1e6 - lagResolutionMs),
      lagMaxMs: Math.max(0, lag.max / 1e6 - lagResolutionMs),
      gcPauses: gcPauses.length,
      gcTotalMs: gcPauses.reduce((a, b) => a + b, 0),
      gcMaxMs: Math.max(0, ...gcPauses),
      updates,
      errors,
      errorsBefore,
      firstErrorBefore,
      firstError,
    };
  } finally {
    await resolver.close();
    await client.close();
    await tls.stop();
  }
}

/** Parts 1 and 2, on two plain dev agents (one with the streaming backend off). */
async function burstAndRecovery(): Promise<{ bursts?: BurstRow[]; outages?: RecoveryRun[] }> {
  const [agent, streaming] = await Promise.all([
    startConsulAgent({ args: ['-hcl=use_streaming_backend = false'] }),
    startConsulAgent(),
  ]);
  try {
    let bursts: BurstRow[] | undefined;
    if (PARTS.has('burst')) {
      process.stderr.write(`discovery: ${ROUNDS} burst rounds of ${BURST} changes\n`);
      bursts = await burst(agent, streaming);
    }
    await streaming.stop();
    let outages: RecoveryRun[] | undefined;
    if (PARTS.has('recovery')) {
      process.stderr.write(`discovery: ${OUTAGE_RUNS} agent outages of 10 s\n`);
      outages = await recovery(agent);
    }
    return { bursts, outages };
  } finally {
    await Promise.all([agent.stop(), streaming.stop()]);
  }
}

export async function run(): Promise<void> {
  requireBuilt();
  const { bursts, outages } = PARTS.has('burst') || PARTS.has('recovery') ? await burstAndRecovery() : {};
  const soaked = PARTS.has('soak') ? await soak() : undefined;

  const cpu = (() => {
    try {
      return /Model name:\s*(.+)/.exec(execFileSync('lscpu', { encoding: 'utf8' }))?.[1]?.trim() ?? cpus()[0]?.model;
    } catch {
      return cpus()[0]?.model;
    }
  })();
  console.log('\nDiscovery: bursts, outages, many watches');
  console.log(`command: ${process.env['DISCOVERY_PARTS'] ? `DISCOVERY_PARTS=${process.env['DISCOVERY_PARTS']} ` : ''}npm run bench -- bench/discovery.bench.ts`);
  console.log(`load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')} (a shared 2-core machine: event-loop delay includes time the process waited for a CPU)`);
  console.log(`node ${process.version}, Consul ${consulBinary().version} (-dev, loopback), undici ${version('undici')}; machine: ${cpu ?? 'unknown CPU'} × ${cpus().length}`);
  if (bursts !== undefined) {
    console.log(`\n1. Burst of ${BURST} changes with 0–30 ms gaps, change acknowledged → subscriber event (ms), median [min–max] over ${ROUNDS} rounds; all four watches side by side`);
    table(['watch', 'backend', 'p50', 'p99', 'max'], bursts.map((r) => [r.name, r.backend, spread(r.p50), spread(r.p99), spread(r.max)]));
    const base = bursts[3]!;
    console.log(`p99 ratio before / token bucket: ${(percentile([...base.p99].sort((a, b) => a - b), 50) / percentile([...bursts[0]!.p99].sort((a, b) => a - b), 50)).toFixed(1)}×`);
  }
  if (outages !== undefined) {
    console.log(`\n2. Agent down 10 s, then back: time from its first answer until each of 8 watches (8 resolvers) converged, ${OUTAGE_RUNS} runs`);
    table(['', 'median [min–max]'], [
      ['slowest watch (ms)', spread(outages.map((o) => o.slowestMs), 0)],
      ['fastest watch (ms)', spread(outages.map((o) => o.fastestMs), 0)],
      ['spread slowest − fastest (ms)', spread(outages.map((o) => o.slowestMs - o.fastestMs), 0)],
      ['requests/s to the agent while down (8 resolvers)', spread(outages.map((o) => o.requestsPerSecondDown))],
    ]);
  }
  if (soaked !== undefined) {
    console.log(`\n3. Soak over HTTPS (HTTP/2): ${SOAK_SERVICES} services × 1 instance + ${WIDE_SERVICES} services × ${WIDE_INSTANCES} instances = ${soaked.watches} watches, ${SOAK_SERVICES + WIDE_SERVICES * WIDE_INSTANCES} endpoints`);
    table(['measure', 'value'], [
      ['heap per watch (KiB)', soaked.heapPerWatchKiB.toFixed(2)],
      ['heap per instance (KiB)', soaked.heapPerInstanceKiB.toFixed(2)],
      [`CPU at rest (% of one core, ${SOAK_REST_MS / 1000} s)`, soaked.restCpuPercent.toFixed(2)],
      ['Consul requests/min at rest', soaked.restRequestsPerMin.toFixed(0)],
      [`churn: instance changes sent in ${SOAK_CHURN_MS / 1000} s (failed; skipped: agent behind)`, `${soaked.churnChanges} (${soaked.churnFailed}; ${soaked.churnSkipped})`],
      ['churn: Consul requests/min', soaked.churnRequestsPerMin.toFixed(0)],
      ['churn: CPU (% of one core)', soaked.churnCpuPercent.toFixed(1)],
      ['churn: event-loop utilization', soaked.churnElu.toFixed(3)],
      ['churn: CPU of the Consul agent / of the churn generator (% of one core; 2 cores in all)', `${soaked.agentCpuPercent.toFixed(0)} / ${soaked.generatorCpuPercent.toFixed(0)}`],
      ['churn: event-loop delay p99 / max (ms)', `${soaked.lagP99Ms.toFixed(1)} / ${soaked.lagMaxMs.toFixed(1)}`],
      ['churn: GC pauses: count / total / longest (ms)', `${soaked.gcPauses} / ${soaked.gcTotalMs.toFixed(0)} / ${soaked.gcMaxMs.toFixed(1)}`],
      ['churn: update events / watch errors (before the churn: at start and at rest)', `${soaked.updates} / ${soaked.errors} (${soaked.errorsBefore})`],
    ]);
    if (soaked.firstErrorBefore) console.log(`first watch error before the churn: ${soaked.firstErrorBefore}`);
    if (soaked.firstError) console.log(`first watch error during the churn: ${soaked.firstError}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run();
}
