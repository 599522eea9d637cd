/**
 * Prioritised load shedding under a 10× spike of low-priority work (issue 23;
 * Netflix 2024: a 12× prefetch spike, user-initiated availability > 99.4 %).
 *
 * - BACKENDS backend processes (support/priority-backend.ts: node:http with
 *   SLOTS worker slots, SERVICE_MS timers, an unbounded queue), behind
 *   `@proxyless/load-report` with shedding on (`inFlightLimit` = 6 × slots,
 *   event-loop delay at its default) or off. Capacity is known:
 *   BACKENDS × SLOTS × 1000 / SERVICE_MS requests per second.
 * - One Proxyless client (the built packages, default balancer, 1 s deadline,
 *   default retries and budget) drives an open loop: `high` priority steadily
 *   at 40 % of capacity, `low` at 10 %; for the middle half of the run `low`
 *   spikes 10× (to 100 %: 140 % offered in total). Arrivals are scheduled, not
 *   waited for (no coordinated omission), bounded by count and duration; an
 *   arrival that finds MAX_OUTSTANDING requests open is counted as dropped by
 *   the generator.
 * - Both configurations in one run, interleaved (on, off, on, off …; fresh
 *   backends each time). Per priority and phase: success %, shed answers,
 *   other failures (deadline, 5xx), p50/p99 of successful requests.
 *
 * Run (~2.5 min; short: BENCH_SECONDS=8 BENCH_RUNS=1):
 * npm run build && flock -x /tmp/proxyless-heavy.lock node --import tsx bench/priority-shedding.bench.ts
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import { StaticResolver } from '@proxyless/core';
import { createClient, DeadlineExceededError, type RequestPolicy } from '@proxyless/http-client';
import { requireBuilt } from './support/builds.js';
import { freePorts, stop } from './support/processes.js';

const here = dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 20);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const BACKENDS = 3;
const SLOTS = 5;
const SERVICE_MS = 40;
const CAPACITY = (BACKENDS * SLOTS * 1000) / SERVICE_MS; // 375 req/s: low enough that the client and backends are not what a shared 2-core box measures
const HIGH_SHARE = 0.4;
const LOW_SHARE = 0.1;
const SPIKE = 10;
const DEADLINE_MS = 1_000;
const MAX_OUTSTANDING = 6_000;

type Priority = 'high' | 'low';
type Phase = 'before' | 'spike' | 'after';
const phases: Phase[] = ['before', 'spike', 'after'];

interface Cell {
  sent: number;
  ok: number;
  shed: number;
  failed: number;
  dropped: number;
  latencies: number[];
}
const cell = (): Cell => ({ sent: 0, ok: 0, shed: 0, failed: 0, dropped: 0, latencies: [] });

/** The largest event-loop delay (ms) and pressure any backend reported, per run. */
let reported = { delayMs: 0, pressure: 0 };

async function startBackend(port: number, shedding: boolean): Promise<ChildProcess> {
  const spec = { port, slots: SLOTS, serviceMs: SERVICE_MS, shedding: shedding ? { inFlightLimit: 6 * SLOTS } : false };
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'support', 'priority-backend.ts'), JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`backend on ${port} exited (${String(code)})`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === 'ready') return resolve();
      const s = JSON.parse(line) as { eventLoopDelayMs: number; pressure: number };
      reported = { delayMs: Math.max(reported.delayMs, s.eventLoopDelayMs), pressure: Math.max(reported.pressure, s.pressure) };
    });
  });
  return child;
}

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

/** One run: fresh backends, one client, the open loop over the three phases. */
async function runOnce(shedding: boolean): Promise<Map<string, Cell>> {
  const ports = await freePorts(BACKENDS);
  const children: ChildProcess[] = [];
  const cells = new Map<string, Cell>();
  for (const p of ['high', 'low'] as Priority[]) for (const ph of phases) cells.set(`${p}/${ph}`, cell());
  try {
    for (const port of ports) children.push(await startBackend(port, shedding));
    const resolver = new StaticResolver({ services: { svc: ports.map((port) => ({ address: '127.0.0.1', port })) } });
    const client = createClient({ service: 'svc', resolver, timeoutMs: DEADLINE_MS, logger: false });
    const policies: Record<Priority, RequestPolicy> = { high: client.policy({ priority: 'high' }), low: client.policy({ priority: 'low' }) };
    let outstanding = 0;
    const pending = new Set<Promise<void>>();
    const fire = (priority: Priority, phase: Phase, scheduledAt: number): void => {
      const c = cells.get(`${priority}/${phase}`)!;
      c.sent++;
      if (outstanding >= MAX_OUTSTANDING) {
        c.dropped++;
        return;
      }
      outstanding++;
      const done = client
        .request({ path: '/', policy: policies[priority] })
        .then(async (res) => {
          await res.body.dump();
          if (res.statusCode === 200) {
            c.ok++;
            c.latencies.push(performance.now() - scheduledAt);
          } else if (res.headers['x-proxyless-shed'] !== undefined) c.shed++;
          else c.failed++;
        })
        .catch((e: unknown) => {
          c.failed++;
          if (!(e instanceof Error)) throw e;
          if (!(e instanceof DeadlineExceededError) && c.failed === 1) process.stdout.write(`  (first ${priority} failure in ${phase}: ${e.name} ${(e as { code?: string }).code ?? ''})\n`);
        })
        .finally(() => {
          outstanding--;
          pending.delete(done);
        });
      pending.add(done);
    };
    // Warm-up: connections and JIT, at the base rates for a second (not counted).
    await client.text('/');
    // The open loop: every 5 ms, issue what the rates owe since the start of the phase (scheduled times kept).
    const phaseMs = (SECONDS * 1000) / 4;
    const plan: [Phase, number][] = [['before', phaseMs], ['spike', 2 * phaseMs], ['after', phaseMs]];
    for (const [phase, ms] of plan) {
      const start = performance.now();
      const rate: Record<Priority, number> = { high: HIGH_SHARE * CAPACITY, low: LOW_SHARE * CAPACITY * (phase === 'spike' ? SPIKE : 1) };
      const issued: Record<Priority, number> = { high: 0, low: 0 };
      for (;;) {
        const now = performance.now();
        const elapsed = Math.min(now - start, ms);
        for (const p of ['high', 'low'] as Priority[]) {
          const owed = Math.floor((rate[p] * elapsed) / 1000);
          while (issued[p] < owed) {
            fire(p, phase, start + (issued[p] * 1000) / rate[p]);
            issued[p]++;
          }
        }
        if (elapsed >= ms) break;
        await sleep(5);
      }
    }
    await Promise.all(pending);
    await client.close();
    await resolver.close();
  } finally {
    await Promise.all(children.map((c) => stop(c)));
  }
  return cells;
}

export async function run(): Promise<void> {
  requireBuilt();
  const { loadavg } = await import('node:os');
  process.stdout.write(
    `# priority shedding bench\nnode ${process.version}; ${cpus()[0]?.model ?? '?'} × ${cpus().length}; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n` +
      `${BACKENDS} backends × ${SLOTS} slots × ${SERVICE_MS} ms = capacity ${CAPACITY} req/s; high ${HIGH_SHARE * CAPACITY} req/s steady, low ${LOW_SHARE * CAPACITY} req/s, ×${SPIKE} in the spike (offered ${((HIGH_SHARE + LOW_SHARE * SPIKE) * 100).toFixed(0)} % of capacity); ` +
      `${SECONDS} s per run (before ${SECONDS / 4} s, spike ${SECONDS / 2} s, after ${SECONDS / 4} s), deadline ${DEADLINE_MS} ms, default retries; ${RUNS} interleaved runs per configuration\n`,
  );
  const results = new Map<string, Map<string, Cell>[]>([['shedding on', []], ['shedding off', []]]);
  for (let r = 0; r < RUNS; r++) {
    for (const shedding of [true, false]) {
      const name = shedding ? 'shedding on' : 'shedding off';
      const t0 = performance.now();
      reported = { delayMs: 0, pressure: 0 };
      results.get(name)!.push(await runOnce(shedding));
      const seen = shedding ? `; backends' largest event-loop delay ${reported.delayMs.toFixed(1)} ms, pressure ${reported.pressure.toFixed(2)} (1 s samples)` : '';
      process.stdout.write(`  run ${r + 1} ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s${seen}\n`);
    }
  }
  process.stdout.write(`\n| configuration | priority | phase | sent | success % (median [min–max] over runs) | shed | other failures | generator drops | p50 / p99 ms (median run) |\n|---|---|---|---|---|---|---|---|---|\n`);
  for (const [name, runs] of results) {
    for (const p of ['high', 'low'] as Priority[]) {
      for (const ph of phases) {
        const cs = runs.map((m) => m.get(`${p}/${ph}`)!);
        const success = cs.map((c) => (c.sent === 0 ? NaN : (100 * c.ok) / c.sent)).sort((a, b) => a - b);
        const mid = cs[Math.floor(cs.length / 2)]!;
        const medianRun = [...cs].sort((a, b) => a.ok / a.sent - b.ok / b.sent)[Math.floor(cs.length / 2)]!;
        process.stdout.write(
          `| ${name} | ${p} | ${ph} | ${mid.sent} | ${success[Math.floor(success.length / 2)]!.toFixed(2)} [${success[0]!.toFixed(2)}–${success[success.length - 1]!.toFixed(2)}] | ` +
            `${medianRun.shed} | ${medianRun.failed} | ${medianRun.dropped} | ${pct(medianRun.latencies, 50).toFixed(0)} / ${pct(medianRun.latencies, 99).toFixed(0)} |\n`,
        );
      }
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
