/**
 * Overload: the adaptive concurrency limit + admission control against
 * neither, in one run, on backends of known capacity.
 *
 * Server model (bench/support/testbed-backend.ts, one child process each):
 * `SLOTS` worker slots with a fixed service time (a timer, so capacity is
 * known and no CPU is burnt), and an unbounded FIFO queue in front, as a
 * plain node:http server has: it accepts every request, and a queued request
 * whose client went away is skipped when its turn comes (Node sees the closed
 * socket), but one already started runs to its end. Capacity =
 * backends × slots × 1000 / serviceMs.
 *
 * Load: an open loop (Poisson arrivals at a fixed rate; latency from each
 * request's scheduled time, so no coordinated omission) in phases of
 * `BENCH_SECONDS`: 0.5× capacity (the unloaded p99), 1×, 2×, 3×, then 0.5×
 * again (recovery). Every configuration gets fresh backends. The client:
 * default peak EWMA, 1 s deadline, default retries (2, budget 20 %).
 * Configurations: `none` (neither), `vegas` and `gradient2` (that limit +
 * admission control with its defaults).
 *
 * Per phase: goodput (successful requests per second), the p99 of the
 * successful (admitted) requests, requests rejected locally (by the limit,
 * by admission control) and failed otherwise. Recovery: from the drop to 0.5×, the time
 * until every later 250 ms bucket (by scheduled time) has ≥ 95 % successes
 * and a p99 ≤ 3× the unloaded p99.
 *
 * Run (built packages; about 3 × (5 × BENCH_SECONDS + 5) s, ~2.5 min at the default 8 s):
 * npm run build && flock -x /tmp/proxyless-heavy.lock node --import tsx bench/overload.bench.ts
 * Short: BENCH_SECONDS=3. One configuration set: OVERLOAD_CONFIGS=none,vegas.
 */
import { cpus, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { StaticResolver } from '@proxyless/core';
import { AdmissionRejectedError, ConcurrencyLimitError, createClient, type ClientOptions, type ProxylessClient } from '@proxyless/http-client';
import { requireBuilt } from './support/builds.js';
import { freePorts } from './support/processes.js';
import { percentile, poissonArrivals, startTestbed, type TestbedBackend } from './support/testbed.js';

const PHASE_S = Number(process.env['BENCH_SECONDS'] ?? 8);
const BACKENDS = 3;
const SLOTS = 4;
const SERVICE_MS = 20;
const CAPACITY = (BACKENDS * SLOTS * 1000) / SERVICE_MS; // 600 req/s
const PHASES = [0.5, 1, 2, 3, 0.5] as const;
const BUCKET_MS = 250;
const TIMEOUT_MS = 1_000;

type Config = 'none' | 'vegas' | 'gradient2';
const CONFIGS = (process.env['OVERLOAD_CONFIGS'] ?? 'none,vegas,gradient2').split(',') as Config[];

interface Sample {
  /** Scheduled time (performance.now()). */
  at: number;
  ms: number;
  outcome: 'ok' | 'limit' | 'admission' | 'failed';
}

interface PhaseResult {
  multiple: number;
  offered: number;
  goodput: number;
  p99: number;
  p50: number;
  limit: number;
  admission: number;
  failed: number;
}

interface ConfigResult {
  config: Config;
  phases: PhaseResult[];
  recoveryMs: number;
  limits: string;
}

function options(config: Config, ports: number[]): ClientOptions {
  const resolver = new StaticResolver({ services: { svc: ports.map((port) => ({ address: '127.0.0.1', port })) } });
  const base: ClientOptions = { service: 'svc', resolver, timeoutMs: TIMEOUT_MS, logger: false };
  if (config === 'none') return base;
  return { ...base, concurrencyLimit: { algorithm: config }, admissionControl: true };
}

async function runConfig(config: Config): Promise<ConfigResult> {
  const ports = await freePorts(BACKENDS);
  const backends: TestbedBackend[] = await startTestbed(ports.map((port) => ({ port, slots: SLOTS, baseMs: SERVICE_MS, expMs: 0, queueMax: 1e9, sampleMs: 1_000 })));
  let client: ProxylessClient | undefined;
  try {
    client = createClient(options(config, ports));
    const c = client;
    // Warm-up: connections and a first latency estimate (not measured).
    await poissonArrivals(CAPACITY / 4, 1_000, 1_000, () => void c.request('/').then((r) => r.body.dump(), () => undefined));
    await sleep(300);
    const samples: Sample[] = [];
    const pending = new Set<Promise<void>>();
    const fire = (at: number): void => {
      const p = c.request('/').then(
        async (res) => {
          await res.body.dump();
          samples.push({ at, ms: performance.now() - at, outcome: res.statusCode === 200 ? 'ok' : 'failed' });
        },
        (error: unknown) => {
          const outcome = error instanceof ConcurrencyLimitError ? 'limit' : error instanceof AdmissionRejectedError ? 'admission' : 'failed';
          samples.push({ at, ms: performance.now() - at, outcome });
        },
      );
      pending.add(p);
      void p.finally(() => pending.delete(p));
    };
    const starts: number[] = [];
    for (const multiple of PHASES) {
      starts.push(performance.now());
      const rate = CAPACITY * multiple;
      await poissonArrivals(rate, PHASE_S * 1000, Math.ceil(rate * PHASE_S * 2), fire);
    }
    const end = performance.now();
    // Every request ends within its deadline (+ slack for a loaded machine).
    const deadline = performance.now() + TIMEOUT_MS + 2_000;
    while (pending.size > 0 && performance.now() < deadline) await sleep(50);
    const phases = PHASES.map((multiple, i): PhaseResult => {
      const from = starts[i]!;
      const to = starts[i + 1] ?? end;
      const inPhase = samples.filter((s) => s.at >= from && s.at < to);
      const ok = inPhase.filter((s) => s.outcome === 'ok').map((s) => s.ms).sort((a, b) => a - b);
      const seconds = (to - from) / 1000;
      return {
        multiple,
        offered: inPhase.length / seconds,
        goodput: ok.length / seconds,
        p50: percentile(ok, 50),
        p99: percentile(ok, 99),
        limit: inPhase.filter((s) => s.outcome === 'limit').length,
        admission: inPhase.filter((s) => s.outcome === 'admission').length,
        failed: inPhase.filter((s) => s.outcome === 'failed').length,
      };
    });
    // Recovery: from the drop to 0.5×, until every later bucket is healthy.
    const unloadedP99 = phases[0]!.p99;
    const drop = starts[PHASES.length - 1]!;
    const buckets: Sample[][] = [];
    for (const s of samples) if (s.at >= drop) (buckets[Math.floor((s.at - drop) / BUCKET_MS)] ??= []).push(s);
    let recoveredAt = 0;
    for (let b = 0; b < buckets.length; b++) {
      const bucket = buckets[b] ?? [];
      const ok = bucket.filter((s) => s.outcome === 'ok').map((s) => s.ms).sort((x, y) => x - y);
      const healthy = bucket.length === 0 || (ok.length >= 0.95 * bucket.length && percentile(ok, 99) <= 3 * unloadedP99);
      if (!healthy) recoveredAt = (b + 1) * BUCKET_MS;
    }
    const recoveryMs = recoveredAt >= PHASE_S * 1000 ? Infinity : recoveredAt;
    const limits = c
      .stats()
      .endpoints.map((e) => (e.concurrencyLimit === undefined ? '-' : `${e.concurrencyLimit.limit} (noLoad ${e.concurrencyLimit.rttNoLoadMs.toFixed(0)} ms)`))
      .join(', ');
    return { config, phases, recoveryMs, limits };
  } finally {
    await client?.destroy();
    await Promise.all(backends.map((b) => b.stop()));
  }
}

const f0 = (n: number): string => (Number.isFinite(n) ? n.toFixed(0) : '—');

export async function run(): Promise<void> {
  requireBuilt();
  console.log(`\n## Overload: adaptive concurrency limit + admission control vs neither`);
  console.log(`node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`${BACKENDS} backends × ${SLOTS} slots × ${SERVICE_MS} ms (unbounded FIFO queue) = capacity ${CAPACITY} req/s; open loop, phases of ${PHASE_S} s: ${PHASES.join('×, ')}×; deadline ${TIMEOUT_MS} ms, default retries`);
  const results: ConfigResult[] = [];
  for (const config of CONFIGS) results.push(await runConfig(config));
  console.log('\n| config | load | offered req/s | goodput req/s (% of capacity) | admitted p50 / p99 ms | rejected locally: limit / admission | failed |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of results) {
    for (const p of r.phases) {
      console.log(`| ${r.config} | ${p.multiple}× | ${f0(p.offered)} | ${f0(p.goodput)} (${f0((100 * p.goodput) / CAPACITY)} %) | ${f0(p.p50)} / ${f0(p.p99)} | ${p.limit} / ${p.admission} | ${p.failed} |`);
    }
  }
  console.log('\n| config | goodput at 3× (target ≥ 90 % of capacity) | p99 at 3× ÷ unloaded p99 (target ≤ 3) | recovery after the drop (target ≤ 5 s) | final limits |');
  console.log('|---|---|---|---|---|');
  for (const r of results) {
    const three = r.phases[3]!;
    const unloaded = r.phases[0]!.p99;
    console.log(`| ${r.config} | ${f0((100 * three.goodput) / CAPACITY)} % | ${(three.p99 / unloaded).toFixed(1)} | ${Number.isFinite(r.recoveryMs) ? `${(r.recoveryMs / 1000).toFixed(2)} s` : `not within ${PHASE_S} s`} | ${r.limits} |`);
  }
  console.log(`\nload average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
