/**
 * `npm run demo`: Proxyless end to end, on nothing but this machine.
 *
 * Starts a Consul dev agent, three instances of examples/service (each
 * registers itself with @proxyless/registrar), and drives a
 * @proxyless/http-client client at them through a Consul blocking-query
 * watch, step by step: balanced traffic; SIGTERM (drain + deregister);
 * SIGKILL (breaker/ejection + retries); new instances; a slow instance
 * (peak EWMA). Prints a summary and stops everything, also on Ctrl-C.
 *
 * `npm run demo -- --registry etcd` tells the same story on etcd: the
 * instances register a key with a lease, the client watches etcd.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConsulResolver, peakEwma, type Resolver } from '@proxyless/core';
import { EtcdClient, EtcdResolver } from '@proxyless/etcd';
import { createClient, type ProxylessClient } from '@proxyless/http-client';
import { startConsulAgent, type ConsulAgent } from '../../test/support/consul.js';
import { startEtcd, type EtcdServer } from '../../test/support/etcd.js';

const here = dirname(fileURLToPath(import.meta.url));
const SERVICE = 'hello';
const CONCURRENCY = 8;
const tty = process.stdout.isTTY;
const bold = (s: string): string => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const green = (s: string): string => (tty ? `\x1b[32m${s}\x1b[0m` : s);
const red = (s: string): string => (tty ? `\x1b[31m${s}\x1b[0m` : s);

// Every moment below is Date.now(): the one clock the demo and its instances share, so both ends
// of a latency (an instance's "registering began" and this process's "first answer") are on it.
interface Instance {
  name: string;
  proc: ChildProcess;
  port?: number;
  /** When the instance began registering (stamped by the instance itself). */
  registeringAt?: number;
  firstServedAt?: number;
  exit?: Promise<number | null>;
}

const registryArg = process.argv.indexOf('--registry');
const registry = registryArg >= 0 ? process.argv[registryArg + 1] : 'consul';
if (registry !== 'consul' && registry !== 'etcd') {
  process.stderr.write(`--registry must be consul or etcd, not ${String(registry)}\n`);
  process.exit(2);
}
const registryName = registry === 'etcd' ? 'etcd' : 'Consul';

const instances = new Map<string, Instance>();
let agent: ConsulAgent | undefined;
let etcd: (EtcdServer & { close(): Promise<void> }) | undefined;
let etcdAdmin: EtcdClient | undefined;
let client: ProxylessClient | undefined;
let resolver: Resolver | undefined;

function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

/** A figure in ms, or what happened instead (a latency is never printed as a negative number). */
function after(from: number | undefined, to: number | undefined): string {
  if (from === undefined || to === undefined || from === 0 || to === 0) return 'never (not seen)';
  return `${String(Math.max(0, to - from))} ms`;
}

// Lines the instances write to stderr are told in the narrative: while a live table is being
// redrawn they wait, so they never land between the table's lines.
/** When the client's watch first reported an instance, by port. */
const seenAt = new Map<number, number>();

let tableLive = false;
const heldLines: string[] = [];
function childSays(name: string, line: string): void {
  const text = `   [${name}] ${line}`;
  if (tableLive) heldLines.push(text);
  else log(text);
}

async function startInstance(name: string): Promise<Instance> {
  const proc = spawn(
    process.execPath,
    ['--conditions=proxyless-source', '--import', 'tsx', join(here, '..', 'service', 'server.ts')],
    {
      env: {
        ...process.env,
        SERVICE_NAME: SERVICE,
        INSTANCE: name,
        ...(etcd ? { REGISTRY: 'etcd', ETCDCTL_ENDPOINTS: etcd.clientUrl } : { CONSUL_HTTP_ADDR: agent!.httpAddr }),
        TTL_MS: '3000',
        DRAIN_DELAY_MS: '300',
        EXIT_WITH_PARENT: '1',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  const inst: Instance = { name, proc };
  inst.exit = once(proc, 'exit').then(([code]) => code as number | null);
  instances.set(name, inst);
  createInterface({ input: proc.stderr }).on('line', (line) => childSays(name, line));
  const lines = createInterface({ input: proc.stdout });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not register in 30 s`)), 30_000);
    lines.on('line', (line) => {
      const m = /^READY (\S+) (\d+) (\d+)/.exec(line);
      if (m && inst.port === undefined) {
        inst.port = Number(m[2]);
        inst.registeringAt = Number(m[3]);
        clearTimeout(timer);
        resolve();
      }
    });
    void inst.exit!.then((code) => reject(new Error(`${name} exited (${String(code)}) before registering`)));
  });
  await ready;
  return inst;
}

// ---- load and accounting -------------------------------------------------
interface StepStats {
  /** Requests answered (a status below 500). */
  answered: number;
  /** Requests that failed: an error, or a 5xx after the client's retries. */
  failed: number;
  /** Answered requests whose answer came after one or more retries. */
  answeredAfterRetry: number;
  /** Attempts that failed, in answered and failed requests alike (there are no hedges: every attempt after a request's first follows a failed one). */
  failedAttempts: number;
  perInstance: Map<string, number>;
  errors: Map<string, number>;
}
const newStats = (): StepStats => ({ answered: 0, failed: 0, answeredAfterRetry: 0, failedAttempts: 0, perInstance: new Map(), errors: new Map() });
/** Requests that complete between steps (and after the last): in no step's table, counted in the summary. */
const between = newStats();
let current = between;
let running = true;

async function worker(): Promise<void> {
  while (running) {
    try {
      const res = await client!.request({ path: '/', timeoutMs: 3000 });
      const answeredAt = Date.now();
      const who = String(res.headers['x-instance'] ?? res.endpoint.label);
      await res.body.dump();
      const stats = current;
      if (res.statusCode >= 500) {
        stats.failed++;
        stats.failedAttempts += res.attempts;
        stats.errors.set(`HTTP ${String(res.statusCode)}`, (stats.errors.get(`HTTP ${String(res.statusCode)}`) ?? 0) + 1);
        continue;
      }
      stats.answered++;
      stats.failedAttempts += res.attempts - 1;
      if (res.attempts > 1) stats.answeredAfterRetry++;
      stats.perInstance.set(who, (stats.perInstance.get(who) ?? 0) + 1);
      const inst = instances.get(who);
      if (inst && !inst.firstServedAt) inst.firstServedAt = answeredAt;
    } catch (error) {
      const stats = current;
      stats.failed++;
      stats.failedAttempts += (error as { attempts?: number }).attempts ?? 1;
      const code = (error as { code?: string }).code ?? (error as Error).name;
      stats.errors.set(code, (stats.errors.get(code) ?? 0) + 1);
      await sleep(5);
    }
  }
}

function table(stats: StepStats, elapsedMs: number): string {
  const total = stats.answered || 1;
  const rows = [...instances.keys()].map((name) => {
    const n = stats.perInstance.get(name) ?? 0;
    const share = ((100 * n) / total).toFixed(1).padStart(5);
    const bar = '#'.repeat(Math.round((30 * n) / total));
    return `    ${name.padEnd(8)} ${String(n).padStart(7)}  ${share}%  ${bar}`;
  });
  const rate = Math.round((stats.answered * 1000) / Math.max(elapsedMs, 1));
  const failures = stats.failed === 0 ? green('0 failed') : red(`${String(stats.failed)} failed`);
  return [
    `    ${String(stats.answered)} answered, ${failures}, ${String(stats.answeredAfterRetry)} answered after a retry, ${String(stats.failedAttempts)} failed attempts, ~${String(rate)} answers/s`,
    ...rows,
  ].join('\n');
}

/** Runs `ms` of traffic, redrawing the live table, and returns the step's counters. */
async function phase(ms: number, during?: () => Promise<void>): Promise<StepStats> {
  const stats = newStats();
  current = stats;
  const start = Date.now();
  let lines = 0;
  const draw = (): void => {
    const text = table(stats, Date.now() - start);
    if (tty && lines > 0) process.stdout.write(`\x1b[${String(lines)}A\x1b[J`);
    process.stdout.write(`${text}\n`);
    lines = text.split('\n').length;
  };
  tableLive = tty;
  const timer = tty ? setInterval(draw, 250) : undefined;
  if (during) await during();
  await sleep(Math.max(0, ms - (Date.now() - start)));
  if (timer) clearInterval(timer);
  current = between; // the table printed now is the step's final count: what completes later is not in it
  if (tty) draw();
  else log(table(stats, Date.now() - start));
  tableLive = false;
  for (const line of heldLines.splice(0)) log(line);
  return stats;
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(20);
  }
  return false;
}

async function passingIds(): Promise<string[]> {
  if (etcdAdmin) {
    const { kvs } = await etcdAdmin.range(`/proxyless/services/${SERVICE}/`, { prefix: true });
    return kvs.filter((kv) => (JSON.parse(kv.value.toString()) as { health?: string }).health !== 'critical').map((kv) => kv.key.toString().split('/').pop() ?? '');
  }
  const r = await fetch(`${agent!.httpUrl}/v1/health/service/${SERVICE}?passing`);
  const body = (await r.json()) as { Service: { ID: string } }[];
  return body.map((e) => e.Service.ID);
}

// ---- the story -------------------------------------------------------------
async function main(): Promise<void> {
  const started = Date.now();
  log(bold(`Proxyless demo: client-side load balancing with ${registryName}, no proxy in the path\n`));
  if (registry === 'etcd') {
    log('1. Starting etcd (provisioned by scripts/provision-etcd.sh)…');
    etcd = await startEtcd();
    etcdAdmin = new EtcdClient({ endpoints: etcd.clientUrl }, {});
    log(`   etcd at ${etcd.clientUrl}; instances register /proxyless/services/${SERVICE}/<id> with a lease`);
  } else {
    log('1. Starting a Consul dev agent (provisioned by scripts/provision-consul.sh)…');
    agent = await startConsulAgent();
    log(`   Consul at ${agent.httpUrl}, DNS on ${agent.dns.host}:${String(agent.dns.port)}`);
  }

  log(`2. Starting three instances of "${SERVICE}"; each registers itself with @proxyless/registrar…`);
  await Promise.all(['a', 'b', 'c'].map((n) => startInstance(n)));
  for (const inst of instances.values()) log(`   ${inst.name} on 127.0.0.1:${String(inst.port)}: registered, passing`);

  resolver = etcd ? new EtcdResolver({ endpoints: etcd.clientUrl, env: {} }) : new ConsulResolver({ address: agent!.httpAddr });
  client = createClient({ service: SERVICE, resolver, balancer: peakEwma(), timeoutMs: 3000 });
  // By port: the watch can add an instance before its READY line (and so its port) reaches us.
  client.on('endpointAdded', (ep) => {
    if (!seenAt.has(ep.port)) seenAt.set(ep.port, Date.now());
  });
  await waitFor(() => client!.stats().ready === 3, 10_000);

  log(bold(`\n3. Balanced traffic: ${String(CONCURRENCY)} concurrent callers, peak-EWMA picks an instance per request`));
  const workers = Array.from({ length: CONCURRENCY }, () => worker());
  const balanced = await phase(3000);

  log(bold('\n4. SIGTERM to instance a: it leaves the passing set, drains in-flight requests, deregisters, exits'));
  const a = instances.get('a')!;
  let sigtermAt = 0;
  let deregisteredAt: number | undefined;
  let exitedAt: number | undefined;
  const graceful = await phase(4000, async () => {
    sigtermAt = Date.now();
    a.proc.kill('SIGTERM');
    void waitFor(async () => !(await passingIds()).includes('a'), 10_000).then(() => {
      deregisteredAt = Date.now();
    });
    void a.exit!.then(() => {
      exitedAt = Date.now();
    });
  });
  log(`   a left the passing set ${after(sigtermAt, deregisteredAt)} after SIGTERM and exited after ${after(sigtermAt, exitedAt)} (code ${String(await a.exit)})`);

  log(bold('\n5. SIGKILL to instance b: no drain, connections reset; retries go to another instance, outlier detection ejects b'));
  const b = instances.get('b')!;
  let outAt: number | undefined;
  let killAt = 0;
  const onEject = (ep: { port: number }): void => {
    if (outAt === undefined && ep.port === b.port) outAt = Date.now();
  };
  client.on('eject', onEject);
  client.on('breakerOpen', onEject);
  client.on('endpointRemoved', onEject);
  const failover = await phase(5000, async () => {
    killAt = Date.now();
    b.proc.kill('SIGKILL');
  });
  const hitB = failover.perInstance.get('b') ?? 0;
  log(`   attempts that failed in this step (b's connections reset or refused): ${String(failover.failedAttempts)};`);
  log(`   requests answered after a retry on another instance: ${String(failover.answeredAfterRetry)}; requests failed: ${String(failover.failed)}`);
  log(`   peak EWMA's failure penalty steered traffic off b at once; b left the pick set ${after(killAt, outAt)} after the kill`);
  log(`   (ejection, open breaker or its ${registry === 'etcd' ? 'lease expiring' : 'TTL check going critical'}, whichever came first)${hitB > 0 ? `; b answered ${String(hitB)} requests in this step, sent before the kill` : ''}`);

  log(bold('\n6. Two new instances, d and e, start and register: the watch pushes them to the client at once'));
  const scaleUp = await phase(3000, async () => {
    await Promise.all(['d', 'e'].map((n) => startInstance(n)));
  });
  const fresh = ['d', 'e'].map((n) => instances.get(n)!);
  for (const inst of fresh) {
    log(`   ${inst.name}: began registering → seen by the client's watch ${after(inst.registeringAt, seenAt.get(inst.port ?? 0))} → first answer ${after(inst.registeringAt, inst.firstServedAt)}`);
  }
  const firstTraffic = fresh.map((inst) => after(inst.registeringAt, inst.firstServedAt));

  log(bold('\n7. Instance c becomes slow (+50 ms per request): peak EWMA moves traffic away from it'));
  await fetch(`http://127.0.0.1:${String(instances.get('c')!.port)}/admin/delay?ms=50`, { method: 'PUT' });
  const slow = await phase(4000);
  const slowShare = (100 * (slow.perInstance.get('c') ?? 0)) / Math.max(slow.answered, 1);

  running = false;
  await Promise.all(workers);

  const all = [balanced, graceful, failover, scaleUp, slow];
  const requests = all.reduce((n, s) => n + s.answered + s.failed, 0);
  const failures = all.reduce((n, s) => n + s.failed, 0);
  log(bold('\nSummary'));
  const errors = new Map<string, number>();
  for (const [code, n] of [...all, between].flatMap((s) => [...s.errors])) errors.set(code, (errors.get(code) ?? 0) + n);
  log(`   requests: ${String(requests)}, failed: ${String(failures)} (the five tables above); between steps and after the last: ${String(between.answered + between.failed)} requests, ${String(between.failed)} failed`);
  log(`   errors, by code: ${JSON.stringify(Object.fromEntries(errors))}`);
  log(`   graceful step (SIGTERM):  ${graceful.failed === 0 ? green('0 failed') : red(`${String(graceful.failed)} failed`)}; out of the passing set after ${after(sigtermAt, deregisteredAt)}, exited after ${after(sigtermAt, exitedAt)}`);
  log(`   failover step (SIGKILL):  ${failover.failed === 0 ? green('0 failed') : red(`${String(failover.failed)} failed`)}; ${String(failover.failedAttempts)} failed attempts, ${String(failover.answeredAfterRetry)} requests answered after a retry; b out after ${after(killAt, outAt)}`);
  log(`   scale-up: first answer from d / e ${firstTraffic.join(' / ')} after they began registering`);
  log(`   slow instance c: ${slowShare.toFixed(1)}% of traffic (a fair share is 33.3%)`);
  const shares = [...balanced.perInstance].map(([n, c]) => `${n} ${((100 * c) / Math.max(balanced.answered, 1)).toFixed(1)}%`);
  log(`   balanced step shares: ${shares.join(', ')}`);
  log(`   total time ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exitCode = graceful.failed === 0 && failover.failed === 0 ? 0 : 1;
}

async function cleanup(): Promise<void> {
  running = false;
  await client?.close();
  await resolver?.close();
  await Promise.all(
    [...instances.values()].map(async (inst) => {
      if (inst.proc.exitCode === null && inst.proc.signalCode === null) {
        inst.proc.kill('SIGTERM');
        const timer = setTimeout(() => inst.proc.kill('SIGKILL'), 5000);
        await inst.exit;
        clearTimeout(timer);
      }
    }),
  );
  await agent?.stop();
  await etcdAdmin?.close();
  await etcd?.close();
}

process.once('SIGINT', () => {
  log('\nInterrupted: stopping everything…');
  for (const inst of instances.values()) inst.proc.kill('SIGKILL');
  // The Consul harness kills its agent on exit.
  process.exit(130);
});

try {
  await main();
} catch (error) {
  process.exitCode = 1;
  process.stderr.write(`demo failed: ${(error as Error).stack ?? String(error)}\n`);
} finally {
  await cleanup();
  log('Stopped every process the demo started.');
}
