/**
 * Test support shared by the registry harnesses (Consul, etcd): free loopback
 * ports, and child processes that never outlive the process that started them
 * (killed on exit and on SIGINT/SIGTERM/SIGHUP; a detached watchdog kills them
 * if this process itself is SIGKILLed).
 *
 * Not part of any package's public API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Finds a port free for both TCP and UDP on 127.0.0.1 (DNS and Serf use both).
 *
 * Taken below the kernel's ephemeral range (ip_local_port_range, 32768–60999 here): a port from
 * inside it can be handed to any outgoing connection on the machine as soon as it is free, so an
 * agent stopped for an outage test and started again on its ports found one taken ("bind: address
 * already in use") when other suites ran alongside. Below the range only an explicit bind can take it.
 */
export async function freePort(): Promise<number> {
  const [low, high] = belowEphemeral();
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = high > low ? low + Math.floor(Math.random() * (high - low)) : 0; // 0: let the kernel choose
    if (reservedPorts.has(candidate)) continue;
    const server = createServer();
    const bound = await new Promise<boolean>((ok) => {
      server.once('error', () => ok(false));
      server.listen(candidate, '127.0.0.1', () => ok(true));
    });
    if (!bound) continue;
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const udp = createSocket('udp4');
    const udpOk = await new Promise<boolean>((ok) => {
      udp.once('error', () => ok(false));
      udp.bind(port, '127.0.0.1', () => ok(true));
    });
    udp.close();
    server.close();
    await once(server, 'close');
    if (udpOk && !reservedPorts.has(port)) {
      reservedPorts.add(port);
      return port;
    }
  }
  throw new Error('no free loopback port found');
}

/** [10000, start of the ephemeral range), or [0, 0) when that leaves too few ports to pick from at random. */
function belowEphemeral(): [number, number] {
  let start = 32768;
  try {
    start = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || start;
  } catch {
    // not Linux: assume the usual range
  }
  return start - 10_000 >= 2_000 ? [10_000, start] : [0, 0];
}
// Ports handed out in this process: two servers starting at once never get the same one.
const reservedPorts = new Set<number>();

const liveProcesses = new Set<ChildProcess>();
let watchdogPidFile: string | undefined;

function ensureWatchdog(): string {
  if (watchdogPidFile) return watchdogPidFile;
  const dir = mkdtempSync(join(tmpdir(), 'proxyless-children-'));
  watchdogPidFile = join(dir, 'pids');
  writeFileSync(watchdogPidFile, '');
  // A detached shell that outlives us only long enough to kill our children if
  // this process dies without running its exit handlers (SIGKILL, OOM).
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ` +
    `for p in $(cat "${watchdogPidFile}" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done; rm -rf "${dir}"`;
  const dog = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  dog.unref();
  process.once('exit', () => {
    for (const child of liveProcesses) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const child of liveProcesses) child.kill('SIGKILL');
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
  return watchdogPidFile;
}

/** Registers a child so that it is killed with this process, however this process ends. */
export function trackChild(child: ChildProcess): void {
  const pidFile = ensureWatchdog();
  liveProcesses.add(child);
  if (child.pid) appendFileSync(pidFile, `${child.pid}\n`);
  child.once('exit', () => liveProcesses.delete(child));
}

/** Result of one finished command. */
export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to its end, collecting its output; SIGKILLed after `timeoutMs`, and with this
 * process (tracked). `env` is the child's whole environment (default: this process's).
 */
export function run(file: string, args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Ran> {
  return new Promise((ok, fail) => {
    const child = spawn(file, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      fail(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      ok({ code, signal, stdout, stderr });
    });
  });
}

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Runs a script as a user would, the workspace sources through tsx, from the repository root; `env` is added to this process's. */
export function runSource(args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Ran> {
  return run(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', ...args], { cwd: repoRoot, env: { ...process.env, ...env }, timeoutMs });
}
