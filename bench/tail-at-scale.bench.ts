/**
 * The Tail at Scale (Dean & Barroso, CACM 2013), on this client: 20 backends
 * (one child process) where 1.5 % of requests stall for 100–200 ms (a
 * GC-pause-like stall, injected), the rest answer in [0, 2) ms. Side by side
 * in one run, interleaved, a fresh client per run:
 *
 * - **no hedging**, **hedge at the set's p95** (`hedge: { percentile: 95 }`,
 *   the default 5 ms floor) and the same with no floor (`minDelayMs: 0`);
 * - a **closed loop** (CONCURRENCY in flight) and an **open loop** (a fixed
 *   arrival rate, latency from each request's scheduled start, so a stall of
 *   the client itself is not hidden: no coordinated omission);
 * - p50/p99/p99.9 and the **extra requests** sent (attempts beyond one per
 *   request: hedges, and retries if any), from the responses' `attempts`.
 *
 * Then an **overload** phase with the hedged client (breakers and outlier
 * detection off, so only the budget decides), open loop: the backends get one
 * slot each, a 40 ms mean service time (capacity ≈ 500 req/s) and a queue of
 * 10 (beyond it, 503 at once) while OVERLOAD_RATE arrives (2× by default):
 * every request is late, so without the budget every one would be hedged;
 * retries and hedges spend the retry budget and hedges fall to ~0. Hedges
 * per second before, during and after.
 *
 * Run (after `npm run build`, under the heavy-work lock):
 *   flock -x /tmp/proxyless-heavy.lock npm run bench -- bench/tail-at-scale.bench.ts
 * Defaults: TAIL_SECONDS=6 (per measured run) TAIL_RUNS=3 TAIL_RATE=600
 * TAIL_CONCURRENCY=16 TAIL_OVERLOAD_SECONDS=6 TAIL_OVERLOAD_RATE=1000 (~3.5 min).
 * Short mode: TAIL_SECONDS=1.5 TAIL_RUNS=1 TAIL_OVERLOAD_SECONDS=2 (~30 s);
 * TAIL_PARTS=tail or =overload runs one part.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import * as hdr from 'hdr-histogram-js';
import { StaticResolver } from '@proxyless/core';
import { createClient, type HedgeOptions, type ProxylessClient, type RequestPolicy } from '@proxyless/http-client';
import { freePorts, stop } from './support/processes.js';

const here = dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env['TAIL_SECONDS'] ?? 6);
const RUNS = Number(process.env['TAIL_RUNS'] ?? 3);
const RATE = Number(process.env['TAIL_RATE'] ?? 600);
const CONCURRENCY = Number(process.env['TAIL_CONCURRENCY'] ?? 16);
const OVERLOAD_SECONDS = Number(process.env['TAIL_OVERLOAD_SECONDS'] ?? 6);
const OVERLOAD_RATE = Number(process.env['TAIL_OVERLOAD_RATE'] ?? 1_000);
const PARTS = (process.env['TAIL_PARTS'] ?? 'tail,overload').split(',');
const BACKENDS = 20;
/** Warm-up per run (connections, the latency window's first 100 samples), not measured. */
const WARM_MS = 700;
/** Each load loop is bounded by count as well as time. */
const MAX_REQUESTS = 200_000;

interface Config {
  name: string;
  hedge: HedgeOptions | false;
}
const CONFIGS: Config[] = [
  { name: 'no hedging', hedge: false },
  { name: 'hedge at p95 (floor 5 ms)', hedge: { percentile: 95 } },
  { name: 'hedge at p95, no floor', hedge: { percentile: 95, minDelayMs: 0 } },
];

interface Result {
  requests: number;
  errors: number;
  p50: number;
  p99: number;
  p999: number;
  /** Attempts beyond one per request, % of requests. */
  extraPct: number;
  hedges: number;
  refused: number;
  /** Median delay after which hedges went out, ms. */
  hedgeAfterMs: number;
  /** The client process's own event-loop delay (a stall delays every request in flight): max, ms. */
  loopMaxMs: number;
}

class Backends {
  readonly #child: ChildProcess;
  readonly #answers: ((line: string) => void)[] = [];

  constructor(child: ChildProcess) {
    this.#child = child;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('{')) this.#answers.shift()?.(line);
    });
  }

  static async start(ports: number[]): Promise<Backends> {
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'support/stall-backends.ts'), JSON.stringify(ports)], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`backends exited ${String(code)}`)));
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
    });
    return new Backends(child);
  }

  set(settings: Record<string, number>): void {
    this.#child.stdin?.write(`${JSON.stringify(settings)}\n`);
  }

  count(): Promise<{ count: number; rejected: number }> {
    return new Promise((resolve) => {
      this.#answers.push((line) => resolve(JSON.parse(line) as { count: number; rejected: number }));
      this.#child.stdin?.write('{"count":true}\n');
    });
  }

  stop(): Promise<void> {
    return stop(this.#child);
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};
const mm = (xs: number[], digits: number): string =>
  xs.length === 0 || xs.every((x) => Number.isNaN(x)) ? 'n/a' : xs.length === 1 ? xs[0]!.toFixed(digits) : `${median(xs).toFixed(digits)} [${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}]`;

/** One request; resolves with its attempts (0 when it failed). */
async function one(client: ProxylessClient, policy: RequestPolicy): Promise<number> {
  const res = await client.request({ path: '/', policy });
  await res.body.dump();
  return res.statusCode === 200 ? res.attempts : -res.attempts;
}

/** Closed loop: `concurrency` in flight for `ms`. */
async function closedLoop(client: ProxylessClient, policy: RequestPolicy, ms: number, h: hdr.Histogram | undefined): Promise<{ requests: number; errors: number; attempts: number }> {
  let requests = 0;
  let errors = 0;
  let attempts = 0;
  const stopAt = performance.now() + ms;
  const worker = async (): Promise<void> => {
    while (requests + errors < MAX_REQUESTS && performance.now() < stopAt) {
      const s = performance.now();
      const n = await one(client, policy).catch(() => 0);
      if (n > 0) {
        requests++;
        attempts += n;
        h?.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)));
      } else {
        errors++;
        attempts += -n;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { requests, errors, attempts };
}

/** Open loop: `rate` arrivals per second for `ms`; latency from each request's scheduled start. */
async function openLoop(client: ProxylessClient, policy: RequestPolicy, ms: number, rate: number, h: hdr.Histogram | undefined): Promise<{ requests: number; errors: number; attempts: number }> {
  let requests = 0;
  let errors = 0;
  let attempts = 0;
  let launched = 0;
  const total = Math.min(MAX_REQUESTS, Math.floor((ms / 1000) * rate));
  const pending = new Set<Promise<void>>();
  const t0 = performance.now();
  while (launched < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
    for (; launched < due; launched++) {
      const scheduled = t0 + (launched * 1000) / rate;
      const p: Promise<void> = one(client, policy)
        .catch(() => 0)
        .then((n) => {
          if (n > 0) {
            requests++;
            attempts += n;
            h?.recordValue(Math.max(1, Math.round((performance.now() - scheduled) * 1000)));
          } else {
            errors++;
            attempts += -n;
          }
          pending.delete(p);
        });
      pending.add(p);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  return { requests, errors, attempts };
}

async function measure(resolver: StaticResolver, config: Config, loop: 'closed' | 'open'): Promise<Result> {
  const client = createClient({ service: 'tail', resolver, timeoutMs: 2_000, logger: false });
  const policy = client.policy({ hedge: config.hedge });
  const afters: number[] = [];
  try {
    await closedLoop(client, policy, WARM_MS, undefined);
    client.on('hedge', (_ep, _copy, afterMs) => afters.push(afterMs));
    const before = client.stats().hedges;
    const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
    const loopDelay = monitorEventLoopDelay({ resolution: 1 });
    loopDelay.enable();
    const r = loop === 'closed' ? await closedLoop(client, policy, SECONDS * 1000, h) : await openLoop(client, policy, SECONDS * 1000, RATE, h);
    loopDelay.disable();
    const after = client.stats().hedges;
    const result: Result = {
      requests: r.requests,
      errors: r.errors,
      p50: h.getValueAtPercentile(50) / 1000,
      p99: h.getValueAtPercentile(99) / 1000,
      p999: h.getValueAtPercentile(99.9) / 1000,
      extraPct: (100 * (r.attempts - r.requests - r.errors)) / Math.max(1, r.requests + r.errors),
      hedges: after.sent - before.sent,
      refused: after.refused - before.refused,
      hedgeAfterMs: median(afters),
      loopMaxMs: loopDelay.max / 1e6,
    };
    h.destroy();
    return result;
  } finally {
    await client.close();
  }
}

async function overload(resolver: StaticResolver, backends: Backends, label: string, budget: { ratio: number; minRetriesPerSecond?: number } | undefined, rows: string[]): Promise<void> {
  // Breakers and ejection off: they would take the overloaded endpoints out of the picks, and hide what the budget does.
  const client = createClient({ service: 'tail', resolver, timeoutMs: 2_000, logger: false, breaker: false, outlierDetection: false, ...(budget === undefined ? {} : { retry: { budget } }) });
  const policy = client.policy({ hedge: { percentile: 95 } });
  try {
    await closedLoop(client, policy, WARM_MS, undefined);
    const phase = async (name: string, rate: number): Promise<void> => {
      const s0 = client.stats().hedges;
      const b0 = await backends.count();
      const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
      // Hedges sent per second of the phase: the budget runs out within the overload, and hedging with it.
      const perSecond: number[] = [];
      let last = s0.sent;
      const tick = setInterval(() => {
        const now = client.stats().hedges.sent;
        perSecond.push(now - last);
        last = now;
      }, 1_000);
      const r = await openLoop(client, policy, OVERLOAD_SECONDS * 1000, rate, h).finally(() => clearInterval(tick));
      const s1 = client.stats().hedges;
      const b1 = await backends.count();
      const offered = r.requests + r.errors;
      rows.push(
        `| ${label} | ${name} | ${rate} | ${offered} | ${((100 * r.requests) / Math.max(1, offered)).toFixed(1)} % | ${(h.getValueAtPercentile(99) / 1000).toFixed(1)} | ` +
          `${s1.sent - s0.sent} (${((100 * (s1.sent - s0.sent)) / Math.max(1, offered)).toFixed(2)} %) | ${perSecond.join(', ')} | ${s1.refused - s0.refused} | ${b1.count - b0.count} | ${b1.rejected - b0.rejected} |`,
      );
      h.destroy();
    };
    await phase('before (normal backends)', RATE);
    // One slot per backend, 40 ms mean service: capacity ≈ 20 / 0.04 s = 500 req/s.
    backends.set({ slots: 1, queue: 10, baseMs: 80 });
    await phase(`overload (${(OVERLOAD_RATE / 500).toFixed(1)}× capacity)`, OVERLOAD_RATE);
    backends.set({ slots: 0, queue: 0, baseMs: 2 });
    await phase('after (normal again)', RATE);
  } finally {
    backends.set({ slots: 0, queue: 0, baseMs: 2 });
    await client.close();
  }
}

function machine(): string {
  let model = cpus()[0]?.model ?? '?';
  try {
    model = /Model name:\s*(.+)/.exec(execFileSync('lscpu', { encoding: 'utf8' }))?.[1]?.trim() ?? model;
  } catch {
    // lscpu missing: the Node model string stays.
  }
  return `${model} × ${cpus().length}`;
}

export async function run(): Promise<void> {
  const ports = await freePorts(BACKENDS);
  const backends = await Backends.start(ports);
  const resolver = new StaticResolver({ services: { tail: ports.map((port) => ({ address: '127.0.0.1', port })) } });
  const undiciVersion = (await import('undici/package.json', { with: { type: 'json' } }).catch(() => ({ default: { version: '?' } }))).default.version;
  console.log('## Tail at Scale: hedged requests');
  console.log(`command: TAIL_SECONDS=${SECONDS} TAIL_RUNS=${RUNS} TAIL_RATE=${RATE} TAIL_CONCURRENCY=${CONCURRENCY} TAIL_OVERLOAD_SECONDS=${OVERLOAD_SECONDS} TAIL_OVERLOAD_RATE=${OVERLOAD_RATE} flock -x /tmp/proxyless-heavy.lock npm run bench -- bench/tail-at-scale.bench.ts`);
  console.log(`node ${process.version}, undici ${undiciVersion}, ${machine()}, load average at start ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`${BACKENDS} backends in one child process; 1.5 % of requests stall 100–200 ms, others [0, 2) ms; ${RUNS} interleaved runs × ${SECONDS} s per config and loop, medians [min–max]`);
  try {
    for (const loop of PARTS.includes('tail') ? (['closed', 'open'] as const) : []) {
      const results = new Map<string, Result[]>(CONFIGS.map((c) => [c.name, []]));
      for (let r = 0; r < RUNS; r++) {
        const order = r % 2 === 0 ? CONFIGS : [...CONFIGS].reverse();
        for (const config of order) results.get(config.name)!.push(await measure(resolver, config, loop));
      }
      console.log(`\n### ${loop === 'closed' ? `Closed loop, ${CONCURRENCY} in flight` : `Open loop, ${RATE} req/s (latency from the scheduled start)`}\n`);
      console.log('| config | requests/run | errors | p50 ms | p99 ms | p99.9 ms | extra requests | hedges refused | hedge sent after (ms, median) | client event-loop delay, max ms |');
      console.log('|---|---|---|---|---|---|---|---|---|---|');
      for (const c of CONFIGS) {
        const rs = results.get(c.name)!;
        console.log(`| ${c.name} | ${mm(rs.map((x) => x.requests), 0)} | ${rs.reduce((n, x) => n + x.errors, 0)} | ${mm(rs.map((x) => x.p50), 2)} | ${mm(rs.map((x) => x.p99), 1)} | ${mm(rs.map((x) => x.p999), 1)} | ${mm(rs.map((x) => x.extraPct), 2)} % | ${rs.reduce((n, x) => n + x.refused, 0)} | ${c.hedge === false ? '—' : mm(rs.map((x) => x.hedgeAfterMs), 1)} | ${mm(rs.map((x) => x.loopMaxMs), 0)} |`);
      }
      const none = results.get(CONFIGS[0]!.name)!;
      for (const c of CONFIGS.slice(1)) {
        const rs = results.get(c.name)!;
        const ratios = rs.map((x, i) => none[i]!.p999 / x.p999);
        console.log(`p99.9 no hedging ÷ ${c.name}: ${mm(ratios, 1)}× (run by run)`);
      }
    }
    if (PARTS.includes('overload')) {
      const rows: string[] = [];
      await overload(resolver, backends, 'default budget (20 % + 10/s over 10 s)', undefined, rows);
      // The same without the cap: what hedging at a percentile does to an overloaded service when nothing stops it.
      await overload(resolver, backends, 'no cap (budget ratio 1000)', { ratio: 1000 }, rows);
      console.log('\n### Overload: hedges are paid from the retry budget (hedge at p95, open loop; breakers and ejection off)\n');
      console.log('| client | phase | offered req/s | requests | 200 OK | p99 ms (OK) | hedges sent | hedges per second | hedges refused by the budget | backend requests | backend 503s |');
      console.log('|---|---|---|---|---|---|---|---|---|---|---|');
      for (const row of rows) console.log(row);
    }
  } finally {
    await resolver.close();
    await backends.stop();
  }
  console.log(`\nload average at the end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
