/**
 * Failure scenarios per balancer, with the client's default options (only the
 * deadline set), side by side in one run:
 *
 * - **hung backend**: five backends, one accepts and never answers; 500 ms
 *   deadline; closed loop, 64 in flight, RUN_MS per balancer (interleaved,
 *   RUNS times): failures, p99 and p99.9.
 * - **Beyond Round Robin** (Twitter/Finagle's published setup): 11 backends at
 *   ~167 ms, one pinned to 2 s for SLOW_MS, open loop at RATE req/s, 1 s
 *   deadline: success rate per balancer while it is slow, and the slow
 *   backend's share of traffic in the AFTER_MS after it recovers (fair: 1/11).
 *
 * Backends run in a child process. Run:
 *   npm run bench -- bench/failure-scenarios.bench.ts
 * (BRR_SLOW_MS=30000 BRR_AFTER_MS=60000 BRR_RATE=1000 by default; smaller values shorten it.)
 */
import { pathToFileURL } from 'node:url';
import * as hdr from 'hdr-histogram-js';
import { StaticResolver, leastRequest, peakEwma, roundRobin, type Balancer } from '@proxyless/core';
import { createClient, type ProxylessClient } from '@proxyless/http-client';
import { freePorts, setBackendDelay, startNodeBackends, stop } from './support/processes.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const RUN_MS = Number(process.env['BENCH_RUN_MS'] ?? 3_000);
const SLOW_MS = Number(process.env['BRR_SLOW_MS'] ?? 30_000);
const AFTER_MS = Number(process.env['BRR_AFTER_MS'] ?? 60_000);
const RATE = Number(process.env['BRR_RATE'] ?? 1_000);

const balancers: [string, () => Balancer][] = [
  ['round-robin', () => roundRobin()],
  ['least-request (P2C)', () => leastRequest()],
  ['peak EWMA (default)', () => peakEwma()],
];

function clientFor(ports: number[], balancer: Balancer, timeoutMs: number): { client: ProxylessClient; resolver: StaticResolver } {
  const resolver = new StaticResolver({ services: { svc: ports.map((port) => ({ address: '127.0.0.1', port })) } });
  return { client: createClient({ service: 'svc', resolver, balancer, timeoutMs }), resolver };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};
const spread = (xs: number[], digits = 2): string => `[${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}]`;

interface HungResult {
  requests: number;
  failures: number;
  p99: number;
  p999: number;
}

async function closedLoop(client: ProxylessClient, ms: number): Promise<HungResult> {
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let requests = 0;
  let failures = 0;
  const stopAt = performance.now() + ms;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (performance.now() < stopAt && requests < 500_000) {
        const s = performance.now();
        requests++;
        try {
          const res = await client.request('/');
          await res.body.dump();
          if (res.statusCode !== 200) failures++;
        } catch {
          failures++;
        }
        histogram.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)));
      }
    }),
  );
  const r = { requests, failures, p99: histogram.getValueAtPercentile(99) / 1000, p999: histogram.getValueAtPercentile(99.9) / 1000 };
  histogram.destroy();
  return r;
}

async function hungBackend(): Promise<void> {
  console.log(`\n## hung backend: 5 backends, one accepts and never answers; 500 ms deadline, defaults; 64 in flight, ${RUNS} × ${RUN_MS} ms interleaved\n`);
  const ports = await freePorts(5);
  const backends = await startNodeBackends(ports.map((port, i) => ({ port, delayMs: i === 0 ? -1 : 0 })));
  const results = new Map<string, HungResult[]>(balancers.map(([name]) => [name, []]));
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const [name, make] of balancers) {
        // A fresh client per run: the hung endpoint is cold every time (the worst case).
        const { client, resolver } = clientFor(ports, make(), 500);
        results.get(name)!.push(await closedLoop(client, RUN_MS));
        await client.destroy();
        await resolver.close();
      }
    }
  } finally {
    await stop(backends);
  }
  console.log('| balancer | requests | failures | failure rate | p99 ms | p99.9 ms |');
  console.log('|---|---|---|---|---|---|');
  for (const [name] of balancers) {
    const rs = results.get(name)!;
    const rate = rs.map((r) => (100 * r.failures) / r.requests);
    console.log(
      `| ${name} | ${median(rs.map((r) => r.requests)).toFixed(0)} | ${median(rs.map((r) => r.failures)).toFixed(0)} ${spread(rs.map((r) => r.failures), 0)} | ${median(rate).toFixed(3)} % | ${median(rs.map((r) => r.p99)).toFixed(1)} ${spread(rs.map((r) => r.p99), 1)} | ${median(rs.map((r) => r.p999)).toFixed(1)} ${spread(rs.map((r) => r.p999), 1)} |`,
    );
  }
}

async function beyondRoundRobin(): Promise<void> {
  console.log(`\n## Beyond Round Robin: 11 backends at ~167 ms, one at 2 s for ${SLOW_MS} ms; open loop ${RATE} req/s; 1 s deadline, defaults; share measured over ${AFTER_MS} ms after recovery (fair ${(100 / 11).toFixed(1)} %)\n`);
  console.log('| balancer | success while slow | success after | slow backend share after recovery | share in the last third |');
  console.log('|---|---|---|---|---|');
  for (const [name, make] of balancers) {
    const ports = await freePorts(11);
    // ~167 ms each: uniform 117–217 ms would need per-request jitter; a fixed 167 ms keeps the comparison clean.
    const backends = await startNodeBackends(ports.map((port) => ({ port, delayMs: 167 })));
    const { client, resolver } = clientFor(ports, make(), 1_000);
    const slowLabel = `127.0.0.1:${ports[0]}`;
    const phase = { name: 'warm' as 'warm' | 'slow' | 'after' };
    const counts = { slow: { ok: 0, all: 0 }, after: { ok: 0, all: 0, toSlow: 0, lastThird: 0, lastThirdToSlow: 0 } };
    let afterStartedAt = 0;
    const inFlight = new Set<Promise<void>>();
    const fire = (): void => {
      const p = (async () => {
        const at = phase.name;
        const issuedAt = performance.now();
        let ok = false;
        let label = '';
        try {
          const res = await client.request('/');
          await res.body.dump();
          ok = res.statusCode === 200;
          label = res.endpoint.label;
        } catch {
          // a failure: ok stays false
        }
        if (at === 'slow') {
          counts.slow.all++;
          if (ok) counts.slow.ok++;
        } else if (at === 'after') {
          counts.after.all++;
          if (ok) counts.after.ok++;
          if (label === slowLabel) counts.after.toSlow++;
          if (issuedAt - afterStartedAt >= (2 * AFTER_MS) / 3) {
            counts.after.lastThird++;
            if (label === slowLabel) counts.after.lastThirdToSlow++;
          }
        }
      })();
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    };
    // Open loop: requests are issued on a fixed schedule whatever the answers (no coordinated omission).
    const runFor = async (ms: number): Promise<void> => {
      const start = performance.now();
      let issued = 0;
      while (performance.now() - start < ms) {
        const due = Math.floor(((performance.now() - start) * RATE) / 1000);
        while (issued < due) {
          fire();
          issued++;
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    try {
      await runFor(5_000); // warm-up: every endpoint has an estimate
      phase.name = 'slow';
      setBackendDelay(backends, ports[0]!, 2_000);
      await runFor(SLOW_MS);
      setBackendDelay(backends, ports[0]!, 167);
      phase.name = 'after';
      afterStartedAt = performance.now();
      await runFor(AFTER_MS);
      await Promise.all([...inFlight]);
    } finally {
      await client.destroy();
      await resolver.close();
      await stop(backends);
    }
    const pct = (a: number, b: number): string => `${((100 * a) / Math.max(1, b)).toFixed(2)} %`;
    console.log(
      `| ${name} | ${pct(counts.slow.ok, counts.slow.all)} (${counts.slow.all}) | ${pct(counts.after.ok, counts.after.all)} | ${pct(counts.after.toSlow, counts.after.all)} | ${pct(counts.after.lastThirdToSlow, counts.after.lastThird)} |`,
    );
  }
}

export async function run(): Promise<void> {
  console.log('# failure scenarios (npm run bench -- bench/failure-scenarios.bench.ts)');
  console.log(`node ${process.version}; BENCH_RUNS=${RUNS} BENCH_RUN_MS=${RUN_MS} BRR_SLOW_MS=${SLOW_MS} BRR_AFTER_MS=${AFTER_MS} BRR_RATE=${RATE}`);
  await hungBackend();
  await beyondRoundRobin();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
