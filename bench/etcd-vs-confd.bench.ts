/**
 * The seed platform side by side with Proxyless, in one run, on one etcd:
 *   - confd (v0.16.0, built from its Go module) polling etcd every N s, rendering
 *     haproxy.cfg and reloading Debian's HAProxy (master-worker, SIGUSR2, the
 *     reload of systemd's haproxy.service), for N = 1 and N = 10;
 *   - the Proxyless client (@proxyless/http-client over EtcdResolver's watch).
 * Three instances register through @proxyless/registrar on etcd (a key with a
 * lease, JSON value); confd's template reads the same keys (confd's `json`
 * function) and, like the resolver, leaves out `health: critical` (draining)
 * instances: both paths see the same registrations.
 *
 * An open-loop load (a fixed rate per path, every path in the same tick, each
 * request with a 5 s deadline) runs through every path at once while the three
 * instances are replaced one by one: SIGTERM (the registrar's drain: out of
 * rotation, confirmed, drain delay, deregister, close the server), then a new
 * instance (new port, new ID, as a new container would get) is started; the
 * next waits until every path has served the new one (at most 30 s). Reported
 * per path: requests, failed requests (with what failed), and for each new
 * instance the time from its registration (etcd acknowledged its put) to the
 * first request it served from that path, both taken in the instance's process.
 *
 * Run: npm run bench -- bench/etcd-vs-confd.bench.ts
 * Knobs: CONFD_BENCH_RATE (200 req/s per path), CONFD_BENCH_INTERVALS ("1,10", seconds),
 *        CONFD_BENCH_ROUNDS (2 rolling restarts of all instances), CONFD_BENCH_DRAIN_DELAY_MS (1000).
 * Needs confd and HAProxy: scripts/provision-confd.sh (CONFD_BIN), scripts/provision-haproxy.sh (HAPROXY_BIN).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Pool } from 'undici';
import { EtcdResolver } from '@proxyless/etcd';
import { createClient } from '@proxyless/http-client';
import { etcdBinary, startEtcd } from '../test/support/etcd.js';
import { freePort, trackChild } from '../test/support/processes.js';
import { percentile } from './support/propagation.js';
import { requireBuilt } from './support/builds.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');
const RATE = Number(process.env['CONFD_BENCH_RATE'] ?? 200);
const INTERVALS = (process.env['CONFD_BENCH_INTERVALS'] ?? '1,10').split(',').map(Number);
const ROUNDS = Number(process.env['CONFD_BENCH_ROUNDS'] ?? 2);
const DRAIN_DELAY_MS = Number(process.env['CONFD_BENCH_DRAIN_DELAY_MS'] ?? 1000);
const INSTANCES = 3;
const SERVICE = 'app';
const WARMUP_MS = 3000;
const TAIL_MS = 2000;
const SERVED_LIMIT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 5000;
const MAX_IN_FLIGHT = 256;
/** The load loop's own bound, whatever happens to the rest. */
const LOAD_LIMIT_MS = 10 * 60_000;
const PROXYLESS = 'Proxyless client (EtcdResolver watch)';
const now = (): number => performance.timeOrigin + performance.now();

/** Runs a provisioning script; its binary, or an error carrying the script's reason. */
function provision(script: string): string {
  const run = spawnSync('bash', [join(repoRoot, 'scripts', script)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (run.status !== 0) throw new Error(`scripts/${script} exited ${String(run.status)}:\n${run.stderr.trim()}`);
  return run.stdout.trim().split('\n').pop() ?? '';
}

/** `work`, or `onTimeout()` after `timeoutMs`; the timer never outlives the race. */
async function within<T>(work: Promise<T>, timeoutMs: number, onTimeout: () => T | Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((ok, fail) => {
    timer = setTimeout(() => {
      try {
        ok(onTimeout());
      } catch (error) {
        fail(error instanceof Error ? error : new Error(String(error)));
      }
    }, timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function firstLine(bin: string, arg: string): string {
  const run = spawnSync(bin, [arg], { encoding: 'utf8' });
  return `${run.stdout}${run.stderr}`.trim().split('\n')[0] ?? '?';
}

// ---------- instances ----------

interface Instance {
  readonly child: ChildProcess;
  readonly id: string;
  readonly registeredAt: number;
  /** Path name → when the instance served that path's first request. */
  readonly first: Map<string, number>;
  /** Path name → when the instance served that path's last request (known once it has drained). */
  readonly last: Map<string, number>;
  /** When it received SIGTERM (its own clock). */
  readonly drain: { startedAt?: number };
  readonly exited: Promise<number>;
}

async function startInstance(etcdUrl: string): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'support', 'etcd-instance.ts')], {
    cwd: repoRoot,
    env: { ...process.env, ETCDCTL_ENDPOINTS: etcdUrl, SERVICE_NAME: SERVICE, DRAIN_DELAY_MS: String(DRAIN_DELAY_MS) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const first = new Map<string, number>();
  const last = new Map<string, number>();
  const drain: { startedAt?: number } = {};
  // 'close', not 'exit': the last lines of stdout are read by then.
  const exited = once(child, 'close').then(([code]) => (code as number | null) ?? -1);
  const registered = new Promise<{ id: string; t: number }>((ok, fail) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const e = JSON.parse(line) as { event: string; t: number; id?: string; path?: string; message?: string };
      if (e.event === 'registered') ok({ id: e.id ?? '?', t: e.t });
      else if (e.event === 'first' && e.path !== undefined) first.set(e.path, e.t);
      else if (e.event === 'last' && e.path !== undefined) last.set(e.path, e.t);
      else if (e.event === 'shutdown') drain.startedAt = e.t;
      else if (e.event === 'startFailed') fail(new Error(`instance failed to register: ${e.message ?? ''}`));
    });
    void exited.then((code) => fail(new Error(`instance exited ${code} before registering: ${stderr}`)));
  });
  const { id, t } = await within(registered, 30_000, () => {
    child.kill('SIGKILL');
    throw new Error(`instance not registered after 30 s: ${stderr}`);
  });
  return { child, id, registeredAt: t, first, last, drain, exited };
}

async function stopInstance(instance: Instance): Promise<number> {
  if (instance.child.exitCode === null && instance.child.signalCode === null) instance.child.kill('SIGTERM');
  return within(instance.exited, 15_000, () => (instance.child.kill('SIGKILL'), -9));
}

// ---------- the seed platform: confd + HAProxy ----------

interface SeedPath {
  readonly name: string;
  readonly port: number;
  readonly dir: string;
  readonly processes: ChildProcess[];
  /** Reload times (ms since the epoch), one line per reload confd ran. */
  reloads(): number[];
}

function haproxyTemplate(port: number, dir: string): string {
  // What confd + HAProxy platforms ran: round robin, health checks, retries with redispatch.
  return `global
    maxconn 4096
    stats socket ${dir}/admin.sock mode 600 level admin expose-fd listeners

defaults
    mode http
    timeout connect 5s
    timeout client 50s
    timeout server 50s
    option redispatch
    retries 3

frontend ${SERVICE}
    bind 127.0.0.1:${port}
    default_backend ${SERVICE}

backend ${SERVICE}
    balance roundrobin
{{range gets "/proxyless/services/${SERVICE}/*"}}{{$v := json .Value}}{{if ne (printf "%v" $v.health) "critical"}}    server {{base .Key}} {{$v.address}}:{{printf "%.0f" $v.port}} check
{{end}}{{end}}`;
}

async function waitForPort(port: number, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 1 });
    try {
      const res = await pool.request({ path: '/', method: 'GET', headersTimeout: 1000 });
      await res.body.dump();
      return;
    } catch {
      await sleep(50);
    } finally {
      await pool.destroy();
    }
  }
  throw new Error(`${what} did not answer on port ${port} within ${timeoutMs} ms`);
}

async function startSeedPath(intervalS: number, etcdUrl: string, confdBin: string, haproxyBin: string): Promise<SeedPath> {
  const dir = mkdtempSync(join(tmpdir(), `proxyless-confd-${intervalS}s-`));
  const port = await freePort();
  mkdirSync(join(dir, 'conf.d'));
  mkdirSync(join(dir, 'templates'));
  const cfg = join(dir, 'haproxy.cfg');
  const pid = join(dir, 'haproxy.pid');
  const reloadsFile = join(dir, 'reloads');
  writeFileSync(reloadsFile, '');
  writeFileSync(join(dir, 'templates', 'haproxy.cfg.tmpl'), haproxyTemplate(port, dir));
  // check_cmd validates the staged file; reload_cmd signals HAProxy's master (none yet during the first render).
  writeFileSync(
    join(dir, 'conf.d', 'haproxy.toml'),
    `[template]
src = "haproxy.cfg.tmpl"
dest = "${cfg}"
keys = ["/proxyless/services/${SERVICE}"]
check_cmd = "${haproxyBin} -c -q -f {{.src}}"
reload_cmd = "test ! -s ${pid} || { kill -USR2 $(cat ${pid}) && date +%s%3N >> ${reloadsFile}; }"
`,
  );
  const confdArgs = ['-backend', 'etcdv3', '-node', etcdUrl, '-confdir', dir, '-config-file', join(dir, 'confd.toml'), '-log-level', 'warning'];
  const onetime = spawnSync(confdBin, [...confdArgs, '-onetime'], { encoding: 'utf8', timeout: 20_000 });
  if (onetime.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`confd -onetime failed (${String(onetime.status)}): ${onetime.stderr}`);
  }
  const processes: ChildProcess[] = [];
  const haproxy = spawn(haproxyBin, ['-W', '-f', cfg, '-p', pid], { stdio: ['ignore', 'ignore', 'pipe'] });
  trackChild(haproxy);
  processes.push(haproxy);
  let haproxyErr = '';
  haproxy.stderr?.on('data', (d: Buffer) => (haproxyErr = (haproxyErr + d.toString()).slice(-4000)));
  try {
    await waitForPort(port, 'HAProxy');
  } catch (error) {
    haproxy.kill('SIGKILL');
    throw new Error(`${(error as Error).message}: ${haproxyErr}`, { cause: error });
  }
  const confd = spawn(confdBin, [...confdArgs, '-interval', String(intervalS)], { stdio: ['ignore', 'ignore', 'pipe'] });
  trackChild(confd);
  processes.push(confd);
  confd.stderr?.on('data', (d: Buffer) => process.stderr.write(`[confd ${intervalS}s] ${d.toString()}`));
  return {
    name: `confd -interval ${intervalS} + HAProxy`,
    port,
    dir,
    processes,
    reloads: () => readFileSync(reloadsFile, 'utf8').trim().split('\n').filter(Boolean).map(Number),
  };
}

async function stopSeedPath(seed: SeedPath): Promise<void> {
  for (const child of [...seed.processes].reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = once(child, 'exit').then(() => undefined);
    child.kill('SIGTERM');
    await within(exited, 5000, () => void child.kill('SIGKILL'));
  }
  rmSync(seed.dir, { recursive: true, force: true });
}

// ---------- load ----------

interface PathLoad {
  readonly name: string;
  sent: number;
  ok: number;
  inFlight: number;
  readonly failures: Map<string, number>;
  send(): Promise<void>;
}

function countFailure(path: PathLoad, kind: string): void {
  path.failures.set(kind, (path.failures.get(kind) ?? 0) + 1);
}

function failureKind(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: string }).code;
  return code ?? error.name;
}

/** Every `1000 / RATE` ms, one request on every path (same tick, so the paths share the same moments). */
function runLoad(paths: PathLoad[]): { stop(): Promise<void> } {
  let stopped = false;
  const pending = new Set<Promise<void>>();
  const loop = (async () => {
    const period = 1000 / RATE;
    const start = performance.now();
    for (let tick = 0; !stopped && performance.now() - start < LOAD_LIMIT_MS; tick++) {
      for (const path of paths) {
        if (path.inFlight >= MAX_IN_FLIGHT) {
          countFailure(path, `not sent: ${MAX_IN_FLIGHT} in flight`);
          continue;
        }
        path.sent++;
        path.inFlight++;
        const p = path
          .send()
          .then(
            () => {
              path.ok++;
            },
            (error: unknown) => countFailure(path, failureKind(error)),
          )
          .finally(() => {
            path.inFlight--;
            pending.delete(p);
          });
        pending.add(p);
      }
      const wait = start + (tick + 1) * period - performance.now();
      if (wait > 0) await sleep(wait);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      await Promise.all(pending);
    },
  };
}

/** A plain undici pool to HAProxy: what an app calling its local HAProxy used. */
function haproxyLoad(name: string, port: number, pool: Pool): PathLoad {
  return {
    name,
    sent: 0,
    ok: 0,
    inFlight: 0,
    failures: new Map(),
    async send() {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
      try {
        const res = await pool.request({ path: '/', method: 'GET', headers: { 'x-bench-path': name }, signal: abort.signal });
        await res.body.dump();
        if (res.statusCode !== 200) throw Object.assign(new Error(`HTTP ${res.statusCode}`), { code: `HTTP ${res.statusCode}` });
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

// ---------- the run ----------

function ms(values: number[]): string {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return 'n/a';
  return `${percentile(s, 50).toFixed(1)} [${(s[0] ?? 0).toFixed(1)}–${(s[s.length - 1] ?? 0).toFixed(1)}]`;
}

export async function run(): Promise<void> {
  requireBuilt();
  const confdBin = provision('provision-confd.sh');
  const haproxyBin = provision('provision-haproxy.sh');
  const etcd = await startEtcd();
  const seeds: SeedPath[] = [];
  const instances: Instance[] = [];
  const replaced: Instance[] = [];
  const stopped: Instance[] = [];
  const pools: Pool[] = [];
  const resolver = new EtcdResolver({ endpoints: etcd.clientUrl });
  const client = createClient({ service: SERVICE, resolver, timeoutMs: REQUEST_TIMEOUT_MS });
  let load: { stop(): Promise<void> } | undefined;
  const stopTimes: number[] = [];
  // When the resolver (the client's, the same shared watch) first listed each instance.
  const listedAt = new Map<string, number>();
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  const watch = resolver.watch(SERVICE);
  watch.on('update', (snapshot) => {
    const t = now();
    for (const i of snapshot.instances) if (!listedAt.has(i.id)) listedAt.set(i.id, t);
  });
  try {
    for (let i = 0; i < INSTANCES; i++) instances.push(await startInstance(etcd.clientUrl));
    for (const s of INTERVALS) seeds.push(await startSeedPath(s, etcd.clientUrl, confdBin, haproxyBin));
    const paths: PathLoad[] = [
      {
        name: PROXYLESS,
        sent: 0,
        ok: 0,
        inFlight: 0,
        failures: new Map(),
        async send() {
          const res = await client.request({ path: '/', headers: { 'x-bench-path': PROXYLESS } });
          await res.body.dump();
          if (res.statusCode !== 200) throw Object.assign(new Error(`HTTP ${res.statusCode}`), { code: `HTTP ${res.statusCode}` });
        },
      },
      ...seeds.map((seed) => {
        const pool = new Pool(`http://127.0.0.1:${seed.port}`, { connections: 64, keepAliveTimeout: 30_000 });
        pools.push(pool);
        return haproxyLoad(seed.name, seed.port, pool);
      }),
    ];
    const firstReload = seeds.map((s) => s.reloads().length);
    process.stderr.write(`etcd vs confd: ${RATE} req/s per path on ${paths.length} paths; warm-up ${WARMUP_MS} ms\n`);
    // A stall of this process delays what it measures on the Proxyless path (its client lives here): reported.
    loopDelay.enable();
    load = runLoad(paths);
    await sleep(WARMUP_MS);
    for (const p of paths) if (p.ok === 0) throw new Error(`${p.name} served nothing during the warm-up: ${JSON.stringify([...p.failures])}`);

    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < INSTANCES; i++) {
        const old = instances.shift();
        if (!old) break;
        process.stderr.write(`  round ${round + 1}: replacing ${old.id}\n`);
        const t = performance.now();
        const code = await stopInstance(old);
        stopTimes.push(performance.now() - t);
        stopped.push(old);
        if (code !== 0) process.stderr.write(`  ${old.id} exited with ${code}\n`);
        const fresh = await startInstance(etcd.clientUrl);
        instances.push(fresh);
        replaced.push(fresh);
        const deadline = Date.now() + SERVED_LIMIT_MS;
        while (paths.some((p) => !fresh.first.has(p.name)) && Date.now() < deadline) await sleep(20);
        const listed = listedAt.get(fresh.id);
        process.stderr.write(
          `    ${fresh.id}: registered → listed by the resolver ${listed === undefined ? '-' : (listed - fresh.registeredAt).toFixed(1)} ms; → first request: ` +
            paths.map((p) => `${p.name} ${((fresh.first.get(p.name) ?? Number.NaN) - fresh.registeredAt).toFixed(1)} ms`).join(', ') +
            '\n',
        );
      }
    }
    await sleep(TAIL_MS);
    await load.stop();
    load = undefined;

    console.log('\netcd + confd + HAProxy vs Proxyless, side by side in one run: a rolling restart of 3 instances under load');
    console.log('command: npm run bench -- bench/etcd-vs-confd.bench.ts');
    console.log(
      `node ${process.version}, etcd ${etcdBinary().version} (single member, loopback), ${firstLine(confdBin, '-version')}, ${firstLine(haproxyBin, '-v')}; ` +
        `machine: ${cpus()[0]?.model ?? '?'} × ${cpus().length}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    );
    console.log(
      `load: open loop, ${RATE} req/s per path, every path in the same tick, ${REQUEST_TIMEOUT_MS} ms deadline; ${ROUNDS} rolling restart(s) of ${INSTANCES} instances ` +
        `(SIGTERM → the registrar's drain with a ${DRAIN_DELAY_MS} ms drain delay → exit: ${ms(stopTimes)} ms; then a new instance on a new port)`,
    );
    const header = ['path', 'requests', 'failed', 'what failed', 'registration → first request served, ms: median [min–max]', 'not served', 'SIGTERM → last request served, ms'];
    const rows = paths.map((p) => {
      const served = replaced.filter((r) => r.first.has(p.name));
      const failed = [...p.failures.values()].reduce((a, b) => a + b, 0);
      return [
        p.name,
        String(p.sent),
        String(failed),
        [...p.failures].map(([k, n]) => `${k} ×${n}`).join(', ') || '-',
        ms(served.map((r) => (r.first.get(p.name) ?? 0) - r.registeredAt)),
        `${replaced.length - served.length} of ${replaced.length}`,
        ms(stopped.filter((o) => o.drain.startedAt !== undefined && o.last.has(p.name)).map((o) => (o.last.get(p.name) ?? 0) - (o.drain.startedAt ?? 0))),
      ];
    });
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const line = (row: string[]): string => row.map((c, i) => (i === 0 || i === 3 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
    console.log(line(header));
    for (const row of rows) console.log(line(row));
    seeds.forEach((seed, i) => {
      const reloads = seed.reloads();
      const toReload = replaced
        .map((r) => reloads.find((t) => t >= r.registeredAt))
        .map((t, j) => (t === undefined ? undefined : t - (replaced[j]?.registeredAt ?? 0)))
        .filter((d): d is number => d !== undefined);
      console.log(`${seed.name}: ${reloads.length - (firstReload[i] ?? 0)} reloads during the run; registration → the reload that took it in: ${ms(toReload)} ms (date +%s%3N after kill -USR2, ms resolution)`);
    });
    const listed = replaced.filter((r) => listedAt.has(r.id)).map((r) => (listedAt.get(r.id) ?? 0) - r.registeredAt);
    console.log(
      `${PROXYLESS}: registration → the resolver's update: ${ms(listed)} ms; ` +
        `event-loop delay of the bench process (load generator and client): p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms, max ${(loopDelay.max / 1e6).toFixed(1)} ms`,
    );
    const ours = paths[0];
    const ourDelays = replaced.map((r) => (r.first.get(PROXYLESS) ?? Number.POSITIVE_INFINITY) - r.registeredAt);
    const ourFailed = ours ? [...ours.failures.values()].reduce((a, b) => a + b, 0) : -1;
    console.log(
      `Proxyless targets: zero failures: ${ourFailed === 0 ? 'met' : `MISSED (${ourFailed})`}; ` +
        `new instances served within 50 ms: ${Math.max(...ourDelays) <= 50 ? 'met' : 'MISSED'} (max ${Math.max(...ourDelays).toFixed(1)} ms)`,
    );
  } finally {
    await load?.stop();
    loopDelay.disable();
    await watch.close();
    await client.close();
    await resolver.close();
    for (const pool of pools) await pool.close();
    await Promise.all(instances.map((i) => stopInstance(i)));
    for (const seed of seeds) await stopSeedPath(seed);
    await etcd.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run();
}
