/** Bench helpers: free ports, child backends, a foreground nginx. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const here = dirname(fileURLToPath(import.meta.url));

/** Free loopback TCP ports. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = createServer();
      s.listen(0, '127.0.0.1');
      await once(s, 'listening');
      return s;
    }),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not open`);
    await sleep(20);
  }
}

/** A child process hosting Node backends (one per spec); resolves when they listen. */
export async function startNodeBackends(specs: { port: number; delayMs: number }[], options: { report?: boolean } = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'node-backends.ts'), JSON.stringify(specs), ...(options.report === true ? ['report'] : [])], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`backends exited ${String(code)}`)));
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
  });
  return child;
}

/** Changes one backend's delay (`< 0`: hung) in a child from {@link startNodeBackends}. */
export function setBackendDelay(child: ChildProcess, port: number, delayMs: number): void {
  child.stdin?.write(`${JSON.stringify({ port, delayMs })}\n`);
}

export async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(3_000).then(() => child.kill('SIGKILL'))]);
}

/** nginx's version line, or undefined when not installed. */
export function nginxVersion(): string | undefined {
  const r = spawnSync('nginx', ['-v'], { encoding: 'utf8' });
  if (r.error) return undefined;
  return r.stderr.trim().replace('nginx version: ', '');
}

/**
 * Runs nginx in the foreground from a temp dir: `trivialPorts` answer
 * `return 200 "ok"`; `proxyPort` proxies to `upstreamPorts` with upstream keep-alive.
 * `workers`: 1 (default, the cheapest on a 2-core box) or `auto` (Debian's default config).
 */
export async function startNginx(trivialPorts: number[], proxyPort: number, upstreamPorts: number[], workers: number | 'auto' = 1): Promise<{ child: ChildProcess; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'proxyless-bench-nginx-'));
  const conf = `
worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  upstream backends {
${upstreamPorts.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
    keepalive 128;
    keepalive_requests 1000000;
  }
${trivialPorts.map((p) => `  server { listen 127.0.0.1:${p}; location / { return 200 "ok"; } }`).join('\n')}
  server {
    listen 127.0.0.1:${proxyPort};
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const child = spawn('nginx', ['-c', confPath, '-p', dir, '-g', 'daemon off;'], { stdio: ['ignore', 'inherit', 'inherit'] });
  child.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  for (const p of [...trivialPorts, proxyPort]) await waitForPort(p);
  return { child, dir };
}
