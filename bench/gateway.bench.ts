/**
 * @proxyless/gateway side by side with its peers, with wrk (Debian's), over
 * the same three Node backends (one process each, keep-alive to them on every
 * path), in one run: nginx with 2 worker processes (keep-alive upstream), the
 * minimal Node proxy (support/minimal-proxy.mjs: node:http + undici Pools +
 * round robin + piped bodies; 1 and 2 processes), the `proxyless-gateway` bin
 * (built, dist/cli.js) with 1 and 2 workers, and Fastify + @fastify/reply-from
 * over the Proxyless dispatcher (support/fastify-proxy.mjs). Per path: a
 * warm-up, then `wrk -t2 -c32 --latency` for BENCH_SECONDS (default 10),
 * req/s, p50/p99, errors, and the path's processes' CPU per request from
 * /proc. GATEWAY_BEFORE=<checkout or its dist/cli.js> adds that build's
 * gateway beside this one; GATEWAY_PATHS=nginx,minimal,gateway,before,fastify
 * picks paths; GATEWAY_ROUNDS=3 runs them interleaved three times (median
 * [min–max]); GATEWAY_WORKERS=1 measures the gateway and the minimal proxy with 1 process only (default 1,2);
 * GATEWAY_NODE_ARGS adds node flags to the gateway and the Node peers (a `--cpu-prof` run);
 * GATEWAY_ALT_ARGS="<node flags>[;<node flags>…]" adds the gateway run with each set of flags (path kind `alt`).
 *
 * GATEWAY_PARTS=ratelimit (not in the default parts): an unlimited route's
 * p50/p99 alone and beside a flood on a rate-limited route (see rateLimitIsolation).
 *
 * Then faults under wrk (GATEWAY_PARTS=throughput,faults picks parts;
 * FAULT_SECONDS, default 10, per scenario) through the gateway with 2
 * workers: a rolling restart of the backends, a SIGHUP rolling restart of the
 * gateway's workers, a backend SIGKILL; failed = non-2xx + socket errors.
 * Bounded; every process it starts is stopped by its PID at the end (also on failure).
 *
 * Run under the machine's heavy-work lock:
 *   npm run build && flock -x /tmp/proxyless-heavy.lock node --import tsx bench/gateway.bench.ts
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startConsulAgent, type ConsulAgent } from '../test/support/consul.js';
import { freePorts, nginxVersion, startNginx, startNodeBackends, stop } from './support/processes.js';

const durationS = Number(process.env['BENCH_SECONDS'] ?? 10);
/** GATEWAY_ALT_ARGS: node flags for more gateway paths beside the plain one (`;` between variants, e.g. `--max-semi-space-size=16;--max-semi-space-size=64`), kind `alt`. */
const altArgs = (process.env['GATEWAY_ALT_ARGS'] ?? '').split(';').map((v) => v.split(' ').filter(Boolean)).filter((v) => v.length > 0);
/** GATEWAY_WORKERS=1 (or 1,2, the default): the gateway's worker counts measured. */
const gatewayWorkers = (process.env['GATEWAY_WORKERS'] ?? '1,2').split(',').map(Number).filter((n) => n >= 1);
const repo = join(import.meta.dirname, '..');

interface Row {
  path: string;
  rps: number;
  /** The path's processes' CPU (user + system) per request, µs; NaN when not measured. */
  cpuUs?: number;
  /** Its user-space part (the system part is mostly the loopback socket writes, the same for every Node path). */
  userUs?: number;
  p50: string;
  p99: string;
  errors: string;
}

/** One wrk run; parses req/s, the 50% and 99% latency, and socket errors / non-2xx. */
function wrk(url: string): Omit<Row, 'path'> {
  const run = spawnSync('wrk', ['-t2', '-c32', `-d${String(durationS)}s`, '--latency', url], { encoding: 'utf8', timeout: (durationS + 30) * 1000 });
  if (run.status !== 0) throw new Error(`wrk failed: ${run.stderr}`);
  return parseWrk(run.stdout);
}

/** wrk in the background for `seconds`, while faults are injected; resolves with its report and its request count. */
async function wrkDuring(url: string, seconds: number): Promise<Omit<Row, 'path'> & { requests: number }> {
  const child = spawn('wrk', ['-t2', '-c32', `-d${String(seconds)}s`, '--latency', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  if (code !== 0) throw new Error(`wrk failed (${String(code)}): ${out}`);
  return { ...parseWrk(out), requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN) };
}

function parseWrk(out: string): Omit<Row, 'path'> {
  const pick = (re: RegExp): string => re.exec(out)?.[1] ?? '?';
  const socketErrors = pick(/Socket errors: ([^\n]+)/);
  const non2xx = pick(/Non-2xx or 3xx responses: (\d+)/);
  return {
    rps: Number(pick(/Requests\/sec:\s+([\d.]+)/)),
    p50: pick(/\s50%\s+(\S+)/),
    p99: pick(/\s99%\s+(\S+)/),
    errors: [socketErrors === '?' ? '' : `socket ${socketErrors}`, non2xx === '?' ? '' : `non-2xx ${non2xx}`].filter(Boolean).join('; ') || '0',
  };
}

async function waitFor(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${String(timeoutMs)} ms`);
    await sleep(100);
  }
}

/** GATEWAY_BEFORE: another build's gateway bin (a checkout, or its dist/cli.js), run beside this tree's. */
const beforeBin = process.env['GATEWAY_BEFORE'] ? (process.env['GATEWAY_BEFORE'].endsWith('.js') ? process.env['GATEWAY_BEFORE'] : join(process.env['GATEWAY_BEFORE'], 'packages/gateway/dist/cli.js')) : undefined;

async function startGateway(consulAddr: string, port: number, workers: number, bin = join(repo, 'packages/gateway/dist/cli.js'), env: NodeJS.ProcessEnv = {}, extraArgs: readonly string[] = []): Promise<ChildProcess> {
  // GATEWAY_NODE_ARGS: extra node flags (cluster workers inherit them), e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
  const nodeArgs = [...(process.env['GATEWAY_NODE_ARGS']?.split(' ').filter(Boolean) ?? []), ...extraArgs];
  const child = spawn(process.execPath, [...nodeArgs, bin, '--workers', String(workers)], {
    env: { ...process.env, CONSUL_HTTP_ADDR: consulAddr, PORT: String(port), REGISTRY: 'consul', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitFor(`http://127.0.0.1:${String(port)}/bench/`);
  return child;
}

/** A plain-JavaScript peer from bench/support (no tsx transform): resolves once it prints "ready". */
async function startPeer(file: string, args: object, env: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  const nodeArgs = process.env['GATEWAY_NODE_ARGS']?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, join(import.meta.dirname, 'support', file), JSON.stringify(args)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${file} exited ${String(code)}`)));
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
  });
  return child;
}

/** One path of the comparison: how to start it, where to send wrk, its process count. */
interface Path {
  name: string;
  processes: number;
  kind: 'nginx' | 'minimal' | 'gateway' | 'before' | 'alt' | 'fastify';
  start(port: number): Promise<ChildProcess>;
  path: string;
}

async function main(): Promise<void> {
  if (spawnSync('wrk', ['--version']).error) throw new Error('wrk is required (apt-get install -y wrk)');
  if (!nginxVersion()) throw new Error('nginx is required (apt-get install -y nginx)');
  const parts = (process.env['GATEWAY_PARTS'] ?? 'throughput,faults').split(',');
  const started: ChildProcess[] = [];
  const agent = await startConsulAgent();
  try {
    const [b1, b2, b3] = await freePorts(3);
    const backendPorts = [b1!, b2!, b3!];
    // Three Node backends, one process each (the same ones every path uses).
    for (const port of backendPorts) started.push(await startNodeBackends([{ port, delayMs: 0 }]));
    for (const [i, port] of backendPorts.entries()) await registerBackend(agent.httpUrl, i, port);
    if (parts.includes('throughput')) await throughput(agent.httpAddr, backendPorts);
    if (parts.includes('faults')) await faults(agent, backendPorts, started);
    if (parts.includes('ratelimit')) await rateLimitIsolation(agent.httpAddr, started);
  } finally {
    for (const child of started.reverse()) await stop(child);
    await agent.stop();
  }
}

async function registerBackend(consulUrl: string, id: number | string, port: number): Promise<void> {
  const res = await fetch(`${consulUrl}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Name: 'bench', ID: typeof id === 'number' ? `bench-${String(id)}` : id, Address: '127.0.0.1', Port: port }) });
  if (!res.ok) throw new Error(`register: ${String(res.status)}`);
}

/** Side by side in one run: nginx, the minimal Node proxy, the gateway, Fastify + reply-from over the Proxyless dispatcher. */
async function throughput(consulAddr: string, backendPorts: number[]): Promise<void> {
  const paths: Path[] = [
    { name: 'nginx, 2 workers (keep-alive upstream)', processes: 2, kind: 'nginx', path: '/', start: async (port) => (await startNginx([], port, backendPorts, 2)).child },
    ...gatewayWorkers.map((n): Path => ({ name: `minimal Node proxy, ${String(n)} process${n === 1 ? '' : 'es'}`, processes: n, kind: 'minimal', path: '/bench/', start: (port) => startPeer('minimal-proxy.mjs', { port, backends: backendPorts, workers: n }) })),
    ...gatewayWorkers.flatMap((n): Path[] => [
      ...(beforeBin ? [{ name: `@proxyless/gateway BEFORE, ${String(n)} worker${n === 1 ? '' : 's'}`, processes: n, kind: 'before' as const, path: '/bench/', start: (port: number) => startGateway(consulAddr, port, n, beforeBin) }] : []),
      { name: `@proxyless/gateway, ${String(n)} worker${n === 1 ? '' : 's'}`, processes: n, kind: 'gateway', path: '/bench/', start: (port) => startGateway(consulAddr, port, n) },
      ...altArgs.map((args) => ({ name: `@proxyless/gateway, ${String(n)} worker${n === 1 ? '' : 's'}, node ${args.join(' ')}`, processes: n, kind: 'alt' as const, path: '/bench/', start: (port: number) => startGateway(consulAddr, port, n, undefined, {}, args) })),
    ]),
    { name: 'Fastify + @fastify/reply-from + Proxyless dispatcher, 1 process', processes: 1, kind: 'fastify', path: '/bench/', start: (port) => startPeer('fastify-proxy.mjs', { port }, { CONSUL_HTTP_ADDR: consulAddr }) },
  ];
  const only = process.env['GATEWAY_PATHS']?.split(',');
  // GATEWAY_ROUNDS: the paths run interleaved (A B C A B C …), each round a side-by-side of its own.
  const rounds = Math.max(1, Number(process.env['GATEWAY_ROUNDS'] ?? 1));
  const chosen = paths.filter((x) => !only || only.includes(x.kind));
  const runs: (Row & Path & { round: number })[] = [];
  const load = uptime();
  for (let round = 0; round < rounds; round++) {
    for (const p of chosen) {
      const [port] = await freePorts(1);
      const child = await p.start(port!);
      try {
        const url = `http://127.0.0.1:${String(port)}${p.path}`;
        await waitFor(url);
        wrk(url); // warm-up: JIT, pools, peak-EWMA settled
        const pids = processTree(child.pid!);
        const before = cpuTicks(pids);
        const result = wrk(url);
        const requests = result.rps * durationS;
        const after = cpuTicks(pids);
        const perRequest = (ticks: number): number => (ticks * 1e6) / ticksPerSecond / requests;
        runs.push({ ...p, ...result, round, cpuUs: perRequest(after.user + after.system - before.user - before.system), userUs: perRequest(after.user - before.user) });
      } finally {
        await stop(child);
      }
    }
  }
  const inRound = (round: number, pick: (r: Path) => boolean): number => runs.find((r) => r.round === round && pick(r))?.rps ?? NaN;
  const spread = (values: number[], digits: number): string => {
    const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
    if (sorted.length === 0) return 'NaN';
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
    return sorted.length === 1 ? median.toFixed(digits) : `${median.toFixed(digits)} [${sorted[0]!.toFixed(digits)}–${sorted.at(-1)!.toFixed(digits)}]`;
  };
  console.log(`\nwrk -t2 -c32 -d${String(durationS)}s --latency, 3 Node backends (one process each), node ${process.version}, ${nginxVersion() ?? ''}; ${String(rounds)} round(s) interleaved${rounds > 1 ? ', median [min–max]' : ''}; load before: ${load}, after: ${uptime()}\n`);
  console.log('| path | req/s | vs nginx | vs minimal Node proxy, same processes | proxy CPU µs/req | of which user | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|---|---|---|');
  for (const p of chosen) {
    const mine = runs.filter((r) => r.name === p.name);
    const vsNginx = mine.map((r) => r.rps / inRound(r.round, (x) => x.kind === 'nginx'));
    const vsMinimal = mine.map((r) => r.rps / inRound(r.round, (x) => x.kind === 'minimal' && x.processes === r.processes));
    const errors = mine.map((r) => r.errors).filter((e) => e !== '0');
    console.log(
      `| ${p.name} | ${spread(mine.map((r) => r.rps), 0)} | ${spread(vsNginx, 2)}× | ${spread(vsMinimal, 2)}× | ${spread(mine.map((r) => r.cpuUs ?? NaN), 0)} | ${spread(mine.map((r) => r.userUs ?? NaN), 0)} | ${spread(mine.map((r) => ms(r.p50)), 2)} | ${spread(mine.map((r) => ms(r.p99)), 2)} | ${errors.length === 0 ? '0' : errors.join(', ')} |`,
    );
  }
}

/** wrk's latency (`950.00us`, `3.38ms`, `1.02s`) in ms. */
function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (!m) return NaN;
  const value = Number(m[1]);
  return m[2] === 'us' ? value / 1000 : m[2] === 's' ? value * 1000 : value;
}

/**
 * Faults under wrk (the gateway with 2 workers, wrk -t2 -c32 for
 * FAULT_SECONDS): a rolling restart of the backends (a new instance
 * registered, the old one deregistered, then SIGTERM), a rolling restart of
 * the gateway's workers (SIGHUP), and a backend SIGKILL (left registered:
 * the client's retries and breaker take it out). Failed requests: wrk's
 * non-2xx plus socket errors; the target is 0 (idempotent GETs).
 */
async function faults(agent: ConsulAgent, backendPorts: number[], started: ChildProcess[]): Promise<void> {
  const seconds = Number(process.env['FAULT_SECONDS'] ?? 10);
  const [port] = await freePorts(1);
  const gateway = await startGateway(agent.httpAddr, port!, 2);
  started.push(gateway);
  const url = `http://127.0.0.1:${String(port)}/bench/`;
  wrk(url); // warm-up
  const live = backendPorts.map((p, i) => ({ port: p, id: `bench-${String(i)}`, child: started[i]! }));
  const rows: { scenario: string; result: Awaited<ReturnType<typeof wrkDuring>> }[] = [];
  const load = uptime();

  // 1. Rolling restart of the backends: each replaced by a new instance on a new port.
  {
    const run = wrkDuring(url, seconds);
    await sleep(1_000);
    for (const [i, old] of [...live].entries()) {
      const [newPort] = await freePorts(1);
      const child = await startNodeBackends([{ port: newPort!, delayMs: 0 }]);
      started.push(child);
      const id = `bench-r${String(i)}`;
      await registerBackend(agent.httpUrl, id, newPort!);
      await sleep(500);
      await fetch(`${agent.httpUrl}/v1/agent/service/deregister/${old.id}`, { method: 'PUT' });
      await sleep(1_000); // the watch sees it; requests on the old instance finish
      await stop(old.child);
      live[i] = { port: newPort!, id, child };
    }
    rows.push({ scenario: 'rolling restart of the 3 backends (register new, deregister old, SIGTERM old)', result: await run });
  }
  // 2. Rolling restart of the gateway's own workers.
  {
    const run = wrkDuring(url, seconds);
    await sleep(1_000);
    gateway.kill('SIGHUP');
    rows.push({ scenario: "rolling restart of the gateway's 2 workers (SIGHUP)", result: await run });
  }
  // 3. A backend SIGKILLed, still registered.
  {
    const run = wrkDuring(url, seconds);
    await sleep(1_000);
    live[0]!.child.kill('SIGKILL');
    rows.push({ scenario: 'one backend SIGKILLed (still registered)', result: await run });
  }
  console.log(`\nFaults under wrk -t2 -c32 -d${String(seconds)}s through @proxyless/gateway (2 workers), node ${process.version}; load before: ${load}, after: ${uptime()}\n`);
  console.log('| scenario | requests | req/s | p99 | failed (non-2xx + socket errors) |\n|---|---|---|---|---|');
  for (const { scenario, result } of rows) console.log(`| ${scenario} | ${String(result.requests)} | ${result.rps.toFixed(0)} | ${result.p99} | ${result.errors} |`);
}

/**
 * Rate limiting leaves the rest unaffected (issue 24): wrk -t2 -c32 on a
 * route without a limit (`/open/`), alone and then while one client key
 * (`x-api-key: flooder`) floods a route limited to 100/s per key
 * (`/limited/`, nearly every answer a 429): at a fixed FLOOD_RPS (default
 * 2000, bench/support/flood.mjs), the same fixed rate on a route without a
 * limit (every request forwarded: what the limit saves), and wrk -t1 -c8 as
 * fast as it can (the CPU a flood of 429s costs on a shared machine). The gateway
 * runs 1 worker (the limit is per worker). The three scenarios run
 * interleaved GATEWAY_ROUNDS times (default 3), BENCH_SECONDS each; the
 * table gives the open route's median p50/p99 and their ratio to "alone" in
 * the same round.
 */
async function rateLimitIsolation(consulAddr: string, started: ChildProcess[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-bench-'));
  const config = join(dir, 'gateway.json');
  writeFileSync(
    config,
    JSON.stringify({
      routes: [
        { path: '/limited/**', service: 'bench', rateLimit: { ratePerSecond: 100, burst: 100, key: 'header:x-api-key' } },
        { path: '/open/**', service: 'bench' },
        { path: '/open2/**', service: 'bench' },
      ],
    }),
  );
  const [port] = await freePorts(1);
  const gateway = await startGateway(consulAddr, port!, 1, undefined, { GATEWAY_CONFIG: config });
  started.push(gateway);
  const base = `http://127.0.0.1:${String(port)}`;
  const flood = ['-t1', '-c8', '-H', 'x-api-key: flooder'];
  await wrkRun([], `${base}/open/`, 3); // warm-up
  await wrkRun(flood, `${base}/limited/`, 2);
  const rounds = Math.max(1, Number(process.env['GATEWAY_ROUNDS'] ?? 3));
  const floodRps = Number(process.env['FLOOD_RPS'] ?? 2000);
  const scenarios = [
    { name: 'open route alone', flood: undefined },
    { name: `+ ${String(floodRps)} req/s from one key on a route limited to 100/s (429s)`, flood: { path: '/limited/', rate: true } },
    { name: `+ the same ${String(floodRps)} req/s on an unlimited route (forwarded)`, flood: { path: '/open2/', rate: true } },
    { name: '+ wrk flooding the limited route as fast as it can (429s)', flood: { path: '/limited/', rate: false } },
  ] as const;
  const runs: { scenario: string; round: number; p50: number; p99: number; rps: number; errors: string; floodRps: number; flood429: number; floodOther: number }[] = [];
  const load = uptime();
  for (let round = 0; round < rounds; round++) {
    for (const scenario of scenarios) {
      const f = scenario.flood;
      const flooding = !f ? undefined : f.rate ? floodAt(`${base}${f.path}`, floodRps, durationS + 2) : wrkRun(flood, `${base}${f.path}`, durationS + 2).then((r) => ({ rps: r.rps, rejected: r.non2xx, other: r.requests - r.non2xx }));
      if (flooding) await sleep(1_000); // the flood is on before the measured run starts, and outlasts it
      const open = await wrkRun([], `${base}/open/`, durationS);
      const floodResult = await flooding;
      runs.push({
        scenario: scenario.name,
        round,
        p50: ms(open.p50),
        p99: ms(open.p99),
        rps: open.rps,
        errors: open.errors,
        floodRps: floodResult?.rps ?? NaN,
        flood429: floodResult?.rejected ?? NaN,
        floodOther: floodResult?.other ?? NaN,
      });
    }
  }
  await stop(gateway);
  rmSync(dir, { recursive: true, force: true });
  const median = (values: number[]): number => {
    const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
    return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;
  };
  const range = (values: number[], digits: number): string => {
    const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
    if (sorted.length === 0) return '—';
    const m = median(sorted).toFixed(digits);
    return sorted.length === 1 ? m : `${m} [${sorted[0]!.toFixed(digits)}–${sorted.at(-1)!.toFixed(digits)}]`;
  };
  const alone = (round: number): (typeof runs)[number] | undefined => runs.find((r) => r.round === round && r.scenario === scenarios[0].name);
  console.log(
    `\nRate limiting leaves the rest unaffected: wrk -t2 -c32 -d${String(durationS)}s on /open/ through @proxyless/gateway (1 worker); floods from one x-api-key: bench/support/flood.mjs at a fixed rate, or wrk -t1 -c8; ${String(rounds)} round(s) interleaved, median [min–max]; node ${process.version}; load before: ${load}, after: ${uptime()}\n`,
  );
  console.log('| scenario | open req/s | open p50 ms | open p99 ms | p50 / alone | p99 / alone | open errors | flood req/s | flood 429s / other |\n|---|---|---|---|---|---|---|---|---|');
  for (const scenario of scenarios) {
    const mine = runs.filter((r) => r.scenario === scenario.name);
    const p50Ratio = mine.map((r) => r.p50 / (alone(r.round)?.p50 ?? NaN));
    const p99Ratio = mine.map((r) => r.p99 / (alone(r.round)?.p99 ?? NaN));
    const errors = mine.map((r) => r.errors).filter((e) => e !== '0');
    console.log(
      `| ${scenario.name} | ${range(mine.map((r) => r.rps), 0)} | ${range(mine.map((r) => r.p50), 2)} | ${range(mine.map((r) => r.p99), 2)} | ${range(p50Ratio, 2)}× | ${range(p99Ratio, 2)}× | ${errors.length === 0 ? '0' : errors.join(', ')} | ${range(mine.map((r) => r.floodRps), 0)} | ${scenario.flood ? `${String(median(mine.map((r) => r.flood429)))} / ${String(median(mine.map((r) => r.floodOther)))}` : '—'} |`,
    );
  }
}

/** bench/support/flood.mjs: `rps` requests per second (from one `x-api-key`) for `seconds`; its rate, 429s and the rest. */
async function floodAt(url: string, rps: number, seconds: number): Promise<{ rps: number; rejected: number; other: number }> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'support', 'flood.mjs'), JSON.stringify({ url, rps, seconds, headers: { 'x-api-key': 'flooder' } })], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
  await once(child, 'exit');
  clearTimeout(timer);
  const report = JSON.parse(out) as { sent: number; statuses: Record<string, number> };
  const rejected = report.statuses['429'] ?? 0;
  return { rps: report.sent / seconds, rejected, other: report.sent - rejected };
}

/** wrk with extra arguments, in the background; its report with the request and non-2xx counts. */
async function wrkRun(args: readonly string[], url: string, seconds: number): Promise<Omit<Row, 'path'> & { requests: number; non2xx: number }> {
  // The measured client's shape unless args give their own threads and connections.
  const shape = args.some((a) => a.startsWith('-t')) ? [] : ['-t2', '-c32'];
  const child = spawn('wrk', [...shape, ...args, `-d${String(seconds)}s`, '--latency', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  if (code !== 0) throw new Error(`wrk failed (${String(code)}): ${out}`);
  return { ...parseWrk(out), requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN), non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) };
}

/** Clock ticks per second of /proc's CPU times (USER_HZ). */
const ticksPerSecond = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** `pid` and its descendants (cluster workers, nginx workers). */
function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const kids = spawnSync('ps', ['-o', 'pid=', '--ppid', String(out[i])], { encoding: 'utf8' }).stdout.split('\n').map((l) => Number(l.trim())).filter((n) => n > 0);
    out.push(...kids);
  }
  return out;
}

/** User and system CPU of `pids` from /proc, in clock ticks (a process that left counts 0). */
function cpuTicks(pids: readonly number[]): { user: number; system: number } {
  const sum = { user: 0, system: 0 };
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      sum.user += Number(fields[11]); // utime, stime: fields 14 and 15 of stat(5)
      sum.system += Number(fields[12]);
    } catch {
      // gone
    }
  }
  return sum;
}

function uptime(): string {
  return /load average: (.*)/.exec(spawnSync('uptime', { encoding: 'utf8' }).stdout)?.[1]?.trim() ?? '?';
}

await main();
