/**
 * Test support: real etcd servers on loopback.
 *
 * Not part of any package's public API. Used by package tests, cross-package
 * integration tests, the demo and the benchmarks.
 *
 * - {@link etcdBinary} provisions the server binary once per process
 *   (scripts/provision-etcd.sh: ETCD_BIN, PATH, cache, Debian's etcd-server, or a Go build).
 * - {@link startEtcd} starts a single-member server on free loopback ports.
 * - {@link startEtcdCluster} starts N members that form one cluster.
 *
 * Servers never outlive the process that started them (see processes.ts).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, trackChild } from './processes.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

let cachedBinary: { path: string; version: string } | undefined;

/**
 * Returns the etcd binary to use, provisioning it on first call.
 * Throws with the provisioning script's reason when none can be had.
 */
export function etcdBinary(): { path: string; version: string } {
  if (cachedBinary) return cachedBinary;
  const fromEnv = process.env['PROXYLESS_ETCD_RESOLVED_BIN'];
  let path: string;
  if (fromEnv) {
    path = fromEnv;
  } else {
    const result = spawnSync('bash', [join(repoRoot, 'scripts', 'provision-etcd.sh')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (result.status !== 0) {
      throw new Error(
        `etcd could not be provisioned (scripts/provision-etcd.sh exited ${String(result.status)}):\n${result.stderr.trim()}`,
      );
    }
    const lines = result.stdout.trim().split('\n');
    path = lines[lines.length - 1] ?? '';
    process.stderr.write(result.stderr.split('\n').filter((l) => l.includes('using ')).join('\n') + '\n');
  }
  const versionRun = spawnSync(path, ['--version'], { encoding: 'utf8' });
  if (versionRun.status !== 0) throw new Error(`${path} --version failed: ${versionRun.stderr}`);
  const version = /etcd Version: ([\w.+-]+)/.exec(versionRun.stdout)?.[1] ?? versionRun.stdout.split('\n')[0] ?? 'unknown';
  // Children (demo services, CLI tests) reuse the answer instead of re-running the script.
  process.env['PROXYLESS_ETCD_RESOLVED_BIN'] = path;
  cachedBinary = { path, version };
  return cachedBinary;
}

/** TLS material for a server (PEM file paths). */
export interface EtcdServerTls {
  certFile: string;
  keyFile: string;
  /** CA that signs client certificates; with it, clients must present one. */
  clientCaFile?: string;
  /** A client certificate the harness's own readiness probe presents (needed with `clientCaFile`). */
  probeCertFile?: string;
  probeKeyFile?: string;
}

/** A running etcd member started by the harness. */
export interface EtcdServer {
  readonly name: string;
  /** e.g. `http://127.0.0.1:23790` (https with TLS) */
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  /** True while the process runs. */
  readonly running: boolean;
  /** The process id while it runs. */
  readonly pid: number | undefined;
  /** Recent server output, for diagnostics. */
  logs(): string;
  /** Gracefully stops the member (SIGTERM, then SIGKILL after 5 s). Idempotent. */
  stop(): Promise<void>;
  /** Kills the member at once (SIGKILL). */
  kill(): Promise<void>;
  /** Starts the member again on the same ports with the same data. */
  start(): Promise<void>;
  /** stop() then start(). */
  restart(): Promise<void>;
  /** Single members only: stops, deletes the data directory, starts an empty server on the same ports. */
  wipe(): Promise<void>;
  /** SIGSTOP: the process holds its sockets but answers nothing (a stuck server). */
  pause(): void;
  /** SIGCONT after {@link EtcdServer.pause}. */
  resume(): void;
}

/** Options for {@link startEtcd}. */
export interface EtcdOptions {
  /** Extra command-line arguments. */
  args?: string[];
  /** Serve clients over TLS. */
  tls?: EtcdServerTls;
  /** Start timeout; default 60 000 ms. */
  startTimeoutMs?: number;
}

interface MemberSpec {
  name: string;
  clientPort: number;
  peerPort: number;
  initialCluster: string;
  clusterToken: string;
  dataDir: string;
  args: string[];
  tls: EtcdServerTls | undefined;
  startTimeoutMs: number;
  /** Wait for /health (needs a leader); cluster members only wait for the port. */
  waitForHealth: boolean;
}

let counter = 0;

function healthFetchOptions(): RequestInit {
  return { signal: AbortSignal.timeout(2000) };
}

async function getHealth(url: string, tls: EtcdServerTls | undefined): Promise<boolean> {
  if (tls) {
    // Global fetch takes no per-call TLS settings; node:https does.
    const { request } = await import('node:https');
    const { readFileSync } = await import('node:fs');
    const cert = tls.probeCertFile ? readFileSync(tls.probeCertFile) : undefined;
    const key = tls.probeKeyFile ? readFileSync(tls.probeKeyFile) : undefined;
    return new Promise((ok) => {
      // The probe only asks "is it serving"; the tests themselves verify the server's certificate.
      const req = request(`${url}/health`, { cert, key, timeout: 2000, rejectUnauthorized: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => ok(res.statusCode === 200 && body.includes('"true"')));
      });
      req.on('error', () => ok(false));
      req.on('timeout', () => req.destroy());
      req.end();
    });
  }
  const r = await fetch(`${url}/health`, healthFetchOptions());
  const body = await r.text();
  return r.ok && body.includes('"true"');
}

function createMember(spec: MemberSpec): EtcdServer {
  let child: ChildProcess | undefined;
  let output: string[] = [];
  const scheme = spec.tls ? 'https' : 'http';
  const clientUrl = `${scheme}://127.0.0.1:${spec.clientPort}`;
  const peerUrl = `http://127.0.0.1:${spec.peerPort}`;
  const logs = (): string => output.join('').slice(-8000);
  const exited = (c: ChildProcess): boolean => c.exitCode !== null || c.signalCode !== null;
  let stateFlag: 'new' | 'existing' = 'new';

  const start = async (): Promise<void> => {
    if (child && !exited(child)) return;
    const { path } = etcdBinary();
    output = [];
    const args = [
      `--name=${spec.name}`,
      `--data-dir=${spec.dataDir}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=${spec.initialCluster}`,
      `--initial-cluster-token=${spec.clusterToken}`,
      `--initial-cluster-state=${stateFlag}`,
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=warn',
      ...(spec.tls
        ? [
            `--cert-file=${spec.tls.certFile}`,
            `--key-file=${spec.tls.keyFile}`,
            ...(spec.tls.clientCaFile ? ['--client-cert-auth', `--trusted-ca-file=${spec.tls.clientCaFile}`] : []),
          ]
        : []),
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
    let lastError = 'no answer yet';
    while (Date.now() < deadline) {
      if (exited(proc)) throw new Error(`etcd ${spec.name} exited (${String(proc.exitCode ?? proc.signalCode)}) before it was ready:\n${logs()}`);
      try {
        if (spec.waitForHealth) {
          if (await getHealth(clientUrl, spec.tls)) return;
          lastError = 'not healthy yet';
        } else {
          // Cluster members: the port answers (even 503) once the member serves.
          const r = await fetch(`${clientUrl}/version`, healthFetchOptions());
          await r.arrayBuffer();
          return;
        }
      } catch (error) {
        lastError = (error as Error).message;
      }
      await sleep(100);
    }
    throw new Error(`etcd ${spec.name} at ${clientUrl} not ready in time (${lastError}):\n${logs()}`);
  };

  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (!proc || exited(proc)) return;
    const gone = once(proc, 'exit');
    proc.kill('SIGCONT');
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
    // Restarts of a member rejoin the cluster it bootstrapped.
    stateFlag = 'existing';
  };

  return {
    name: spec.name,
    clientUrl,
    peerUrl,
    dataDir: spec.dataDir,
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
    wipe: async () => {
      await stopWith('SIGKILL');
      rmSync(spec.dataDir, { recursive: true, force: true });
      stateFlag = 'new';
      await start();
    },
    pause: () => {
      child?.kill('SIGSTOP');
    },
    resume: () => {
      child?.kill('SIGCONT');
    },
  };
}

/**
 * Starts a single-member etcd on free loopback ports and waits until it is healthy.
 * @example
 * const etcd = await startEtcd();
 * try { ... } finally { await etcd.stop(); }
 */
export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdServer & { close(): Promise<void> }> {
  for (let attempt = 1; ; attempt++) {
    const name = `proxyless-etcd-${process.pid}-${++counter}`;
    const peerPort = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'proxyless-etcd-'));
    const member = createMember({
      name,
      clientPort: await freePort(),
      peerPort,
      initialCluster: `${name}=http://127.0.0.1:${peerPort}`,
      clusterToken: name,
      dataDir,
      args: options.args ?? [],
      tls: options.tls,
      startTimeoutMs: options.startTimeoutMs ?? 60_000,
      waitForHealth: true,
    });
    const close = async (): Promise<void> => {
      await member.stop();
      rmSync(dataDir, { recursive: true, force: true });
    };
    try {
      await member.start();
      return Object.assign(member, { close });
    } catch (error) {
      await close();
      // A port taken between allocation and bind: try fresh ports a couple of times.
      if (attempt >= 3 || !/address already in use/i.test(String(error))) throw error;
    }
  }
}

/** A cluster of etcd members on loopback. */
export interface EtcdCluster {
  readonly members: readonly EtcdServer[];
  /** Every member's client URL. */
  readonly endpoints: readonly string[];
  /** The member that currently leads, if any running member knows one. */
  leader(): Promise<EtcdServer | undefined>;
  /** Waits until every running member agrees on one running leader. */
  waitForLeader(timeoutMs?: number): Promise<EtcdServer>;
  stop(): Promise<void>;
}

interface MemberStatus {
  header?: { member_id?: string };
  leader?: string;
}

async function status(member: EtcdServer): Promise<MemberStatus | undefined> {
  try {
    const r = await fetch(`${member.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(2000) });
    if (!r.ok) return undefined;
    return (await r.json()) as MemberStatus;
  } catch {
    return undefined;
  }
}

/** Starts `size` members that form one cluster and waits until they elect a leader. */
export async function startEtcdCluster(size = 3, options: { args?: string[] } = {}): Promise<EtcdCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createCluster(size, options);
    } catch (error) {
      // A port taken between allocation and bind (another suite on this machine): fresh ports, a couple of times.
      if (attempt >= 3 || !/address already in use/i.test(String(error))) throw error;
    }
  }
}

async function createCluster(size: number, options: { args?: string[] }): Promise<EtcdCluster> {
  const token = `proxyless-cluster-${process.pid}-${++counter}`;
  const specs: { name: string; clientPort: number; peerPort: number }[] = [];
  for (let i = 0; i < size; i++) specs.push({ name: `${token}-${i}`, clientPort: await freePort(), peerPort: await freePort() });
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(',');
  const dataDirs: string[] = [];
  const members = specs.map((s) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'proxyless-etcd-'));
    dataDirs.push(dataDir);
    return createMember({
      ...s,
      initialCluster,
      clusterToken: token,
      dataDir,
      args: options.args ?? [],
      tls: undefined,
      startTimeoutMs: 60_000,
      waitForHealth: false,
    });
  });
  const ids = new Map<EtcdServer, string>();
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    async leader() {
      for (const member of members.filter((m) => m.running)) {
        const s = await status(member);
        if (!s?.leader) continue;
        for (const m of members) {
          if (!ids.has(m) && m.running) {
            const id = (await status(m))?.header?.member_id;
            if (id) ids.set(m, id);
          }
        }
        return members.find((m) => ids.get(m) === s.leader);
      }
      return undefined;
    },
    async waitForLeader(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const leaders = new Set<string>();
        for (const member of members.filter((m) => m.running)) {
          const s = await status(member);
          if (s?.header?.member_id) ids.set(member, s.header.member_id);
          leaders.add(s?.leader && s.leader !== '0' ? s.leader : '');
        }
        const [only] = [...leaders];
        if (leaders.size === 1 && only) {
          const leader = members.find((m) => m.running && ids.get(m) === only);
          if (leader && (await getHealth(leader.clientUrl, undefined).catch(() => false))) return leader;
        }
        await sleep(100);
      }
      throw new Error(`etcd cluster did not elect a leader in ${timeoutMs} ms`);
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
