/**
 * Bench helper, called in a build worker (build-process.ts) by
 * failure-scenarios.bench.ts: one run of a failure scenario with that
 * build's client (default options, only the deadline set). Imports no
 * Proxyless package itself: the build comes in as the first argument.
 */
import * as hdr from 'hdr-histogram-js';
import type { Balancer } from '@proxyless/core';
import type { Build } from './builds.js';
import { balancerFor } from './balancers.js';
import { freePorts, setBackendDelay, startNodeBackends, stop } from './processes.js';

/** A balancer of the shared list (support/balancers.ts, as the testbed and fairness benches use), by the name the report shows. */
export type BalancerName = string;

/** A run this build cannot do (a balancer it does not export), and why: printed, never a silent skip. */
export interface Skipped {
  skipped: string;
}

function clientFor(build: Build, ports: number[], balancer: Balancer | undefined, timeoutMs: number) {
  const resolver = new build.core.StaticResolver({ services: { svc: ports.map((port) => ({ address: '127.0.0.1', port })) } });
  // `undefined`: the client's default balancer (the 'client default' entry).
  return { client: build.http.createClient({ service: 'svc', resolver, ...(balancer === undefined ? {} : { balancer }), timeoutMs }), resolver };
}

export interface HungResult {
  requests: number;
  failures: number;
  p99: number;
  p999: number;
  /** Probes the client had sent when the measurement started (0 while a default client is on peak EWMA; undefined: a balancer that never probes). */
  probesAtStart?: number;
  /** Probes sent during the measurement. */
  probesDuring?: number;
  /** Requests the first backend (the hung or slow one) answered during the measurement, % of all. */
  firstShare: number;
}

/** Closed loop: `concurrency` in flight for `ms`; failures and the latency histogram when `histogram` is given. */
async function closedLoop(
  client: { request(path: string): Promise<{ statusCode: number; endpoint: { label: string }; body: { dump(): Promise<unknown> } }> },
  concurrency: number,
  ms: number,
  histogram?: hdr.Histogram,
  label?: string,
): Promise<{ requests: number; failures: number; toLabel: number }> {
  let requests = 0;
  let failures = 0;
  let toLabel = 0;
  const stopAt = performance.now() + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < stopAt && requests < 500_000) {
        const s = performance.now();
        requests++;
        try {
          const res = await client.request('/');
          await res.body.dump();
          if (res.statusCode !== 200) failures++;
          if (res.endpoint.label === label) toLabel++;
        } catch {
          failures++;
        }
        histogram?.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)));
      }
    }),
  );
  return { requests, failures, toLabel };
}

/**
 * Hung backend (`delayMs` -1) or one slow backend (`delayMs` > 0) of five: a
 * fresh client (500 ms deadline), 64 in flight for `ms`. Without `report`:
 * over `ports` (started by the caller, the first one already at `delayMs`),
 * measured from the client's first request. With `report` (FAILURE_REPORTING):
 * five backends behind `@proxyless/load-report` started here, all answering
 * for `warmMs` at 16 in flight (the default client hears reports for longer
 * than A58's 10 s blackout and switches to probing), then the first one goes
 * to `delayMs` and the measurement starts.
 */
export async function hung(
  build: Build,
  args: { ports?: number[]; balancer: BalancerName; ms: number; report?: boolean; warmMs?: number; delayMs?: number },
): Promise<HungResult | Skipped> {
  const balancer = balancerFor(build, args.balancer);
  if (typeof balancer === 'string') return { skipped: balancer };
  const report = args.report === true;
  const ports = report || args.ports === undefined ? await freePorts(5) : args.ports;
  const backends = report ? await startNodeBackends(ports.map((port) => ({ port, delayMs: 0 })), { report: true }) : undefined;
  // A fresh client per run: without reports the hung endpoint is cold every time (the worst case).
  const { client, resolver } = clientFor(build, ports, balancer, 500);
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  try {
    if (backends !== undefined) {
      await closedLoop(client, 16, args.warmMs ?? 12_000);
      setBackendDelay(backends, ports[0]!, args.delayMs ?? -1);
    }
    // Undefined before the client's first pick (no picker yet) as for a balancer that never probes.
    const probesAtStart = client.stats().probes?.sent;
    const { requests, failures, toLabel } = await closedLoop(client, 64, args.ms, histogram, `127.0.0.1:${ports[0]}`);
    const probesEnd = client.stats().probes?.sent;
    return {
      requests,
      failures,
      p99: histogram.getValueAtPercentile(99) / 1000,
      p999: histogram.getValueAtPercentile(99.9) / 1000,
      firstShare: (100 * toLabel) / Math.max(1, requests),
      ...(probesEnd === undefined ? {} : { probesAtStart: probesAtStart ?? 0, probesDuring: probesEnd - (probesAtStart ?? 0) }),
    };
  } finally {
    histogram.destroy();
    await client.destroy();
    await resolver.close();
    await stop(backends);
  }
}

export interface BrrResult {
  slow: { ok: number; all: number };
  after: { ok: number; all: number; toSlow: number; lastThird: number; lastThirdToSlow: number };
  /** Per second after recovery: requests issued in it, and those the slow backend answered (when it is back at its fair share). */
  afterBySecond: { all: number; toSlow: number }[];
  /** Probes the client had sent when the slow phase started (see {@link HungResult.probesAtStart}). */
  probesAtStart?: number;
}

/**
 * Beyond Round Robin: 11 backends at 167 ms (started here), one pinned to
 * 2 s for `slowMs`, open loop at `rate` req/s, 1 s deadline; counts while
 * slow and in the `afterMs` after it recovers.
 */
export async function beyondRoundRobin(
  build: Build,
  args: { balancer: BalancerName; slowMs: number; afterMs: number; rate: number; warmMs: number; report?: boolean },
): Promise<BrrResult | Skipped> {
  const balancer = balancerFor(build, args.balancer);
  if (typeof balancer === 'string') return { skipped: balancer };
  const ports = await freePorts(11);
  // ~167 ms each: uniform 117–217 ms would need per-request jitter; a fixed 167 ms keeps the comparison clean.
  const backends = await startNodeBackends(ports.map((port) => ({ port, delayMs: 167 })), { report: args.report === true });
  const { client, resolver } = clientFor(build, ports, balancer, 1_000);
  const slowLabel = `127.0.0.1:${ports[0]}`;
  const phase = { name: 'warm' as 'warm' | 'slow' | 'after' };
  const counts: BrrResult = { slow: { ok: 0, all: 0 }, after: { ok: 0, all: 0, toSlow: 0, lastThird: 0, lastThirdToSlow: 0 }, afterBySecond: [] };
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
        const second = Math.floor((issuedAt - afterStartedAt) / 1000);
        while (counts.afterBySecond.length <= second) counts.afterBySecond.push({ all: 0, toSlow: 0 });
        counts.afterBySecond[second]!.all++;
        if (label === slowLabel) counts.afterBySecond[second]!.toSlow++;
        if (issuedAt - afterStartedAt >= (2 * args.afterMs) / 3) {
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
      const due = Math.floor(((performance.now() - start) * args.rate) / 1000);
      while (issued < due) {
        fire();
        issued++;
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  try {
    await runFor(args.warmMs); // warm-up: every endpoint has an estimate (and, reporting, past A58's 10 s blackout)
    const probesAtStart = client.stats().probes?.sent;
    if (probesAtStart !== undefined) counts.probesAtStart = probesAtStart;
    phase.name = 'slow';
    setBackendDelay(backends, ports[0]!, 2_000);
    await runFor(args.slowMs);
    setBackendDelay(backends, ports[0]!, 167);
    phase.name = 'after';
    afterStartedAt = performance.now();
    await runFor(args.afterMs);
    await Promise.all([...inFlight]);
    return counts;
  } finally {
    await client.destroy();
    await resolver.close();
    await stop(backends);
  }
}
