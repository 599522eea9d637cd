/**
 * @proxyless/gateway against nginx, with wrk (Debian's), over the same three
 * Node backends (one process each, keep-alive to them on every path):
 * the `proxyless-gateway` bin (built, dist/cli.js) with 1 and 2 workers, and
 * nginx with 2 worker processes (keep-alive upstream). 10 s per run,
 * `wrk -t2 -c32 --latency`. Bounded; every process it starts is stopped by
 * its PID at the end (also on failure).
 *
 * Run under the machine's heavy-work lock:
 *   npm run build && flock -x /tmp/proxyless-heavy.lock node --import tsx bench/gateway.bench.ts
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startConsulAgent } from '../test/support/consul.js';
import { freePorts, nginxVersion, startNginx, startNodeBackends, stop } from './support/processes.js';

const durationS = Number(process.env['BENCH_SECONDS'] ?? 10);
const repo = join(import.meta.dirname, '..');

interface Row {
  path: string;
  rps: number;
  p50: string;
  p99: string;
  errors: string;
}

/** One wrk run; parses req/s, the 50% and 99% latency, and socket errors / non-2xx. */
function wrk(url: string): Omit<Row, 'path'> {
  const run = spawnSync('wrk', ['-t2', '-c32', `-d${String(durationS)}s`, '--latency', url], { encoding: 'utf8', timeout: (durationS + 30) * 1000 });
  if (run.status !== 0) throw new Error(`wrk failed: ${run.stderr}`);
  const out = run.stdout;
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

async function startGateway(consulAddr: string, port: number, workers: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(repo, 'packages/gateway/dist/cli.js'), '--workers', String(workers)], {
    env: { ...process.env, CONSUL_HTTP_ADDR: consulAddr, PORT: String(port), REGISTRY: 'consul' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitFor(`http://127.0.0.1:${String(port)}/bench/`);
  return child;
}

async function main(): Promise<void> {
  if (spawnSync('wrk', ['--version']).error) throw new Error('wrk is required (apt-get install -y wrk)');
  if (!nginxVersion()) throw new Error('nginx is required (apt-get install -y nginx)');
  const started: ChildProcess[] = [];
  const agent = await startConsulAgent();
  try {
    const [b1, b2, b3, nginxPort, gw1Port, gw2Port] = await freePorts(6);
    const backendPorts = [b1!, b2!, b3!];
    // Three Node backends, one process each (the same ones every path uses).
    for (const port of backendPorts) started.push(await startNodeBackends([{ port, delayMs: 0 }]));
    for (const [i, port] of backendPorts.entries()) {
      const res = await fetch(`${agent.httpUrl}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Name: 'bench', ID: `bench-${String(i)}`, Address: '127.0.0.1', Port: port }) });
      if (!res.ok) throw new Error(`register: ${String(res.status)}`);
    }
    const rows: Row[] = [];
    const nginx = await startNginx([], nginxPort!, backendPorts, 2);
    started.push(nginx.child);
    await waitFor(`http://127.0.0.1:${String(nginxPort)}/`);
    wrk(`http://127.0.0.1:${String(nginxPort)}/`); // warm-up, not reported
    rows.push({ path: 'nginx, 2 workers (keep-alive upstream)', ...wrk(`http://127.0.0.1:${String(nginxPort)}/`) });
    await stop(nginx.child);
    for (const [workers, port] of [[1, gw1Port!], [2, gw2Port!]] as const) {
      const gw = await startGateway(agent.httpAddr, port, workers);
      started.push(gw);
      const url = `http://127.0.0.1:${String(port)}/bench/`;
      wrk(url); // warm-up: JIT, pools, peak-EWMA settled
      rows.push({ path: `@proxyless/gateway, ${String(workers)} worker${workers === 1 ? '' : 's'}`, ...wrk(url) });
      await stop(gw);
      if (gw.exitCode === null && gw.signalCode === null) await once(gw, 'exit');
    }
    const nginxRps = rows[0]!.rps;
    console.log(`\nwrk -t2 -c32 -d${String(durationS)}s --latency, 3 Node backends (one process each), node ${process.version}, ${nginxVersion() ?? ''}\n`);
    console.log('| path | req/s | vs nginx | p50 | p99 | errors |\n|---|---|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.path} | ${r.rps.toFixed(0)} | ${(r.rps / nginxRps).toFixed(2)}× | ${r.p50} | ${r.p99} | ${r.errors} |`);
  } finally {
    for (const child of started.reverse()) await stop(child);
    await agent.stop();
  }
}

await main();
