/**
 * Test support: real Consul agents on loopback.
 *
 * Not part of any package's public API. Used by package tests, cross-package
 * integration tests, the demo and the benchmarks.
 *
 * - {@link consulBinary} provisions the agent binary once per process
 *   (scripts/provision-consul.sh: CONSUL_BIN, PATH, cache, or a Go build).
 * - {@link startConsulAgent} starts a dev agent on free loopback ports and
 *   waits until it has a leader and answers a catalog read.
 * - {@link startConsulCluster} starts N servers that form one cluster.
 *
 * Agents never outlive the process that started them: every agent is killed
 * on process exit, and a detached watchdog kills them if the process itself
 * is killed with SIGKILL.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, trackChild } from './processes.js';

export { freePort };

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

let cachedBinary: { path: string; version: string } | undefined;

/**
 * Returns the Consul binary to use, provisioning it on first call.
 * Throws with the provisioning script's reason when none can be had.
 */
export function consulBinary(): { path: string; version: string } {
  if (cachedBinary) return cachedBinary;
  const fromEnv = process.env['PROXYLESS_CONSUL_RESOLVED_BIN'];
  let path: string;
  if (fromEnv) {
    path = fromEnv;
  } else {
    const result = spawnSync('bash', [join(repoRoot, 'scripts', 'provision-consul.sh')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (result.status !== 0) {
      throw new Error(
        `Consul could not be provisioned (scripts/provision-consul.sh exited ${String(result.status)}):\n${result.stderr.trim()}`,
      );
    }
    const lines = result.stdout.trim().split('\n');
    path = lines[lines.length - 1] ?? '';
    process.stderr.write(result.stderr.split('\n').filter((l) => l.includes('using ')).join('\n') + '\n');
  }
  const versionRun = spawnSync(path, ['version'], { encoding: 'utf8' });
  if (versionRun.status !== 0) throw new Error(`${path} version failed: ${versionRun.stderr}`);
  const version = /Consul (v[\w.+-]+)/.exec(versionRun.stdout)?.[1] ?? versionRun.stdout.split('\n')[0] ?? 'unknown';
  // Children (demo services, CLI tests) reuse the answer instead of re-running the script.
  process.env['PROXYLESS_CONSUL_RESOLVED_BIN'] = path;
  cachedBinary = { path, version };
  return cachedBinary;
}

/** The loopback ports of one agent. */
export interface AgentPorts {
  http: number;
  dns: number;
  server: number;
  serfLan: number;
  serfWan: number;
}

async function allocatePorts(): Promise<AgentPorts> {
  return {
    http: await freePort(),
    dns: await freePort(),
    server: await freePort(),
    serfLan: await freePort(),
    serfWan: await freePort(),
  };
}

/** Options for {@link startConsulAgent}. */
export interface ConsulAgentOptions {
  /** Node name; defaults to a unique one. */
  node?: string;
  /** Extra command-line arguments. */
  args?: string[];
  /** Start timeout; default 60 000 ms (a cold agent on a loaded 2-core box can be slow). */
  startTimeoutMs?: number;
}

/** A running Consul agent started by the harness. */
export interface ConsulAgent {
  readonly node: string;
  readonly ports: AgentPorts;
  /** e.g. `127.0.0.1:8500` */
  readonly httpAddr: string;
  /** e.g. `http://127.0.0.1:8500` */
  readonly httpUrl: string;
  /** DNS interface on loopback (UDP and TCP). */
  readonly dns: { host: string; port: number };
  /** True while the process runs. */
  readonly running: boolean;
  /** The agent's process id while it runs. */
  readonly pid: number | undefined;
  /** Recent agent output, for diagnostics. */
  logs(): string;
  /** Gracefully stops the agent (SIGTERM, then SIGKILL after 5 s). Idempotent. */
  stop(): Promise<void>;
  /** Kills the agent at once (SIGKILL). */
  kill(): Promise<void>;
  /** Starts the agent again on the same ports. A dev agent comes back empty. */
  start(): Promise<void>;
  /** stop() then start(). */
  restart(): Promise<void>;
}

let nodeCounter = 0;

async function waitReady(httpUrl: string, child: ChildProcess, deadline: number, logs: () => string): Promise<void> {
  let lastError = 'no answer yet';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`consul exited (${String(child.exitCode ?? child.signalCode)}) before it was ready:\n${logs()}`);
    }
    try {
      const leader = await fetch(`${httpUrl}/v1/status/leader`, { signal: AbortSignal.timeout(2000) });
      const body = (await leader.json());
      if (leader.ok && typeof body === 'string' && body.length > 0) {
        const catalog = await fetch(`${httpUrl}/v1/catalog/services`, { signal: AbortSignal.timeout(2000) });
        await catalog.arrayBuffer();
        if (catalog.ok) return;
        lastError = `catalog read answered ${catalog.status}`;
      } else {
        lastError = 'no leader yet';
      }
    } catch (error) {
      lastError = (error as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`consul at ${httpUrl} not ready in time (${lastError}):\n${logs()}`);
}

interface AgentSpec {
  node: string;
  ports: AgentPorts;
  args: string[];
  startTimeoutMs: number;
  /** Readiness: whole cluster members wait for a leader too. */
  waitForLeader: boolean;
}

function createAgent(spec: AgentSpec): ConsulAgent {
  let child: ChildProcess | undefined;
  let output: string[] = [];
  const httpUrl = `http://127.0.0.1:${spec.ports.http}`;
  const logs = (): string => output.join('').slice(-8000);
  const exited = (c: ChildProcess): boolean => c.exitCode !== null || c.signalCode !== null;

  const start = async (): Promise<void> => {
    if (child && !exited(child)) return;
    const { path } = consulBinary();
    output = [];
    const args = [
      'agent',
      `-node=${spec.node}`,
      '-bind=127.0.0.1',
      '-client=127.0.0.1',
      `-http-port=${spec.ports.http}`,
      `-dns-port=${spec.ports.dns}`,
      `-server-port=${spec.ports.server}`,
      `-serf-lan-port=${spec.ports.serfLan}`,
      `-serf-wan-port=${spec.ports.serfWan}`,
      '-grpc-port=-1',
      '-grpc-tls-port=-1',
      '-log-level=warn',
      ...spec.args,
    ];
    const proc = spawn(path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    trackChild(proc);
    const collect = (chunk: Buffer): void => {
      output.push(chunk.toString());
      if (output.length > 400) output = output.slice(-200);
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    const deadline = Date.now() + spec.startTimeoutMs;
    if (spec.waitForLeader) {
      await waitReady(httpUrl, proc, deadline, logs);
    } else {
      // Cluster members: the HTTP API answers before a leader exists.
      while (Date.now() < deadline) {
        if (exited(proc)) throw new Error(`consul exited before its API answered:\n${logs()}`);
        try {
          const r = await fetch(`${httpUrl}/v1/agent/self`, { signal: AbortSignal.timeout(2000) });
          await r.arrayBuffer();
          if (r.ok) return;
        } catch {
          // not up yet
        }
        await sleep(100);
      }
      throw new Error(`consul at ${httpUrl} did not answer in time:\n${logs()}`);
    }
  };

  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (!proc || exited(proc)) return;
    const gone = once(proc, 'exit');
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  };

  return {
    node: spec.node,
    ports: spec.ports,
    httpAddr: `127.0.0.1:${spec.ports.http}`,
    httpUrl,
    dns: { host: '127.0.0.1', port: spec.ports.dns },
    get running() {
      return child !== undefined && !exited(child);
    },
    get pid() {
      return child && !exited(child) ? child.pid : undefined;
    },
    logs,
    start,
    stop: () => stopWith('SIGTERM'),
    kill: () => stopWith('SIGKILL'),
    restart: async () => {
      await stopWith('SIGTERM');
      await start();
    },
  };
}

/**
 * Starts a dev agent (`consul agent -dev`) on free loopback ports and waits
 * until it has a leader and answers a catalog read.
 * @example
 * const agent = await startConsulAgent();
 * try { ... } finally { await agent.stop(); }
 */
export async function startConsulAgent(options: ConsulAgentOptions = {}): Promise<ConsulAgent> {
  const node = options.node ?? `proxyless-dev-${process.pid}-${++nodeCounter}`;
  for (let attempt = 1; ; attempt++) {
    const agent = createAgent({
      node,
      ports: await allocatePorts(),
      args: ['-dev', ...(options.args ?? [])],
      startTimeoutMs: options.startTimeoutMs ?? 60_000,
      waitForLeader: true,
    });
    try {
      await agent.start();
      return agent;
    } catch (error) {
      await agent.kill();
      // A port taken between allocation and bind: try fresh ports a couple of times.
      if (attempt >= 3 || !/address already in use/i.test(String(error))) throw error;
    }
  }
}

/** A cluster of Consul servers on loopback. */
export interface ConsulCluster {
  readonly members: readonly ConsulAgent[];
  /** The member whose node currently leads, if any. */
  leader(): Promise<ConsulAgent | undefined>;
  /** Waits until every running member agrees on one leader that is itself running. */
  waitForLeader(timeoutMs?: number): Promise<ConsulAgent>;
  stop(): Promise<void>;
}

/**
 * Starts `size` servers (`-server -bootstrap-expect=<size>`) that join each
 * other over loopback and waits until they elect a leader.
 */
export async function startConsulCluster(size = 3): Promise<ConsulCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createCluster(size);
    } catch (error) {
      // A port taken between allocation and bind (another suite on this machine): fresh ports, a couple of times.
      if (attempt >= 3 || !/address already in use/i.test(String(error))) throw error;
    }
  }
}

async function createCluster(size: number): Promise<ConsulCluster> {
  const base = `proxyless-srv-${process.pid}-${++nodeCounter}`;
  const portSets: AgentPorts[] = [];
  for (let i = 0; i < size; i++) portSets.push(await allocatePorts());
  const dataDirs: string[] = [];
  const members = portSets.map((ports, i) => {
    const dataDir = mkdtempSync(join(tmpdir(), `proxyless-consul-${i}-`));
    dataDirs.push(dataDir);
    const joins = portSets.filter((_, j) => j !== i).map((p) => `-retry-join=127.0.0.1:${p.serfLan}`);
    return createAgent({
      node: `${base}-${i}`,
      ports,
      args: [
        '-server',
        `-bootstrap-expect=${size}`,
        `-data-dir=${dataDir}`,
        '-disable-host-node-id',
        '-retry-interval=1s',
        // Fast failure detection and elections on loopback.
        '-hcl=performance { raft_multiplier = 1 }',
        ...joins,
      ],
      startTimeoutMs: 60_000,
      waitForLeader: false,
    });
  });
  const cluster: ConsulCluster = {
    members,
    async leader() {
      for (const member of members) {
        if (!member.running) continue;
        try {
          const r = await fetch(`${member.httpUrl}/v1/status/leader`, { signal: AbortSignal.timeout(2000) });
          const addr = (await r.json()) as string;
          if (!addr) continue;
          return members.find((m) => addr === `127.0.0.1:${m.ports.server}`);
        } catch {
          // try the next member
        }
      }
      return undefined;
    },
    async waitForLeader(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const leaders = new Set<string>();
        let answered = 0;
        for (const member of members.filter((m) => m.running)) {
          try {
            const r = await fetch(`${member.httpUrl}/v1/status/leader`, { signal: AbortSignal.timeout(2000) });
            leaders.add((await r.json()) as string);
            answered++;
          } catch {
            leaders.add('');
          }
        }
        const [only] = [...leaders];
        if (answered > 0 && leaders.size === 1 && only) {
          // A stopped member may still be named leader until the others notice.
          const leader = members.find((m) => m.running && only === `127.0.0.1:${m.ports.server}`);
          if (leader) return leader;
        }
        await sleep(200);
      }
      throw new Error(`cluster did not elect a leader in ${timeoutMs} ms`);
    },
    async stop() {
      await Promise.all(members.map((m) => m.stop()));
      for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all(members.map((m) => m.start()));
    await cluster.waitForLeader();
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}
