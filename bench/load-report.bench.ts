/**
 * What the load reporter costs a server per request, and what reading a
 * report costs a client.
 *
 * 1. A hello-world node:http server in a child process, without the reporter
 *    (`plain`) and with it (`text`: every response carries a TEXT report;
 *    `json`: JSON), loaded in turn by the same keep-alive undici pool
 *    (interleaved rounds, a fixed number of requests each). The figure is the
 *    server's own CPU time (user + system, `process.cpuUsage()`) per request,
 *    so load on the rest of the machine changes it little; median [min–max]
 *    over the rounds, and the ratio to `plain`.
 * 2. In process: `parseLoadReport()` of a reporter's TEXT and JSON headers,
 *    and `LoadReporter.headerValue()`, in ns per call.
 *
 * Run (under a minute; on the built packages, so build first):
 * npm run build && flock -x /tmp/proxyless-heavy.lock node --import tsx bench/load-report.bench.ts
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Pool } from 'undici';
import { parseLoadReport } from '@proxyless/core';
import { LoadReporter } from '@proxyless/load-report';
import { requireBuilt } from './support/builds.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 8);
const REQUESTS = Number(process.env['BENCH_REQUESTS'] ?? 4_000);
const CONCURRENCY = 16;
const variants = ['plain', 'text', 'json', 'shedding', 'shed'] as const;
type Variant = (typeof variants)[number];

interface Stats {
  cpuUs: number;
  served: number;
}

function ask(child: ChildProcess): Promise<Stats> {
  const answer = once(child, 'message') as Promise<[Stats]>;
  child.send('stats');
  return answer.then(([s]) => s);
}

async function startServer(variant: Variant): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(fileURLToPath(new URL('./support/load-report-server.ts', import.meta.url)), [variant], {
    // The built package (dist), as a service runs it; tsx only for the server script itself.
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const [message] = (await once(child, 'message')) as [{ port: number }];
  return { child, port: message.port };
}

/** Sends `count` GETs over `CONCURRENCY` keep-alive connections; returns the wall time in ms. */
async function load(pool: Pool, count: number, expect = 200): Promise<number> {
  let left = count;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (left-- > 0) {
        const { body, statusCode } = await pool.request({ path: '/', method: 'GET' });
        await body.dump();
        if (statusCode !== expect) throw new Error(`status ${String(statusCode)}`);
      }
    }),
  );
  return performance.now() - t0;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

function nsPerCall(fn: () => unknown, calls: number): number {
  for (let i = 0; i < calls / 10; i++) fn(); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) fn();
  return Number(process.hrtime.bigint() - t0) / calls;
}

export async function run(): Promise<void> {
  requireBuilt();
  process.stdout.write(
    `# load report bench\nnode ${process.version}; ${ROUNDS} interleaved rounds × ${REQUESTS} requests per variant, ${CONCURRENCY} keep-alive connections; server CPU µs per request, min and median over the rounds, × and + against plain\n`,
  );
  const servers = new Map<Variant, { child: ChildProcess; port: number; pool: Pool }>();
  for (const v of variants) {
    const s = await startServer(v);
    servers.set(v, { ...s, pool: new Pool(`http://127.0.0.1:${String(s.port)}`, { connections: CONCURRENCY }) });
  }
  const perRequest = new Map<Variant, number[]>(variants.map((v) => [v, []]));
  const rps = new Map<Variant, number[]>(variants.map((v) => [v, []]));
  try {
    for (const [v, s] of servers) await load(s.pool, 2_000, v === 'shed' ? 503 : 200); // warm-up: JIT, connections
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of variants) {
        const s = servers.get(v)!;
        const before = await ask(s.child);
        const ms = await load(s.pool, REQUESTS, v === 'shed' ? 503 : 200);
        const after = await ask(s.child);
        const served = after.served - before.served;
        perRequest.get(v)!.push((after.cpuUs - before.cpuUs) / served);
        rps.get(v)!.push((served / ms) * 1000);
      }
    }
  } finally {
    for (const s of servers.values()) {
      await s.pool.close();
      s.child.disconnect();
    }
  }
  // Other work on the machine only adds CPU time to a round, so the minimum is the closest to the true cost; the median is shown too.
  const baseMin = Math.min(...perRequest.get('plain')!);
  const baseMedian = median(perRequest.get('plain')!);
  for (const v of variants) {
    const xs = perRequest.get(v)!;
    const min = Math.min(...xs);
    const m = median(xs);
    process.stdout.write(
      `${v.padEnd(8)} min ${min.toFixed(2)} µs/request (×${(min / baseMin).toFixed(3)}, +${(min - baseMin).toFixed(2)} µs)` +
        `  median ${m.toFixed(2)} (×${(m / baseMedian).toFixed(3)}) [max ${Math.max(...xs).toFixed(2)}]  ${Math.round(median(rps.get(v)!))} req/s\n`,
    );
  }

  const reporter = new LoadReporter();
  reporter.setNamedMetric('queue_depth', 3);
  reporter.begin().end(200);
  // As a client gets them: flat strings decoded from bytes (a template literal's result is a rope).
  const text = Buffer.from(reporter.headerValue('TEXT')).toString();
  const json = Buffer.from(reporter.headerValue('JSON')).toString();
  const jsonBody = json.slice(5);
  const calls = 200_000;
  process.stdout.write(
    `headerValue('TEXT') ${nsPerCall(() => reporter.headerValue('TEXT', true), calls).toFixed(0)} ns/call; ` +
      `parseLoadReport TEXT ${nsPerCall(() => parseLoadReport(text), calls).toFixed(0)} ns/call (${text.length} chars), ` +
      `JSON ${nsPerCall(() => parseLoadReport(json), calls).toFixed(0)} ns/call (${json.length} chars); ` +
      `for scale, JSON.parse of the same JSON ${nsPerCall(() => JSON.parse(jsonBody), calls).toFixed(0)} ns/call\n`,
  );
  await reporter.close();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
