/**
 * Clients read what servers report about their own load: the ORCA
 * `endpoint-load-metrics` response header (TEXT or JSON), written here by
 * `@proxyless/load-report` in front of real node:http backends, kept per
 * endpoint under gRPC A58's expiry and blackout rules, shown in stats and
 * pick explanations; anything malformed is counted and never trusted.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadWeightedRoundRobin, peakEwma, roundRobin, type ReportedLoadView } from '@proxyless/core';
import { createClient, type ProxylessClient } from '@proxyless/http-client';
import { LoadReporter, loadReportListener } from '@proxyless/load-report';
import { LOAD_REPORT_BLACKOUT_MS, LOAD_REPORT_EXPIRATION_MS, ReportedLoad } from '../src/endpoints/reported-load.js';
import { LoadTracker } from '../src/endpoints/load.js';
import { FakeResolver, instance, ok, startServer, type TestServer } from './helpers.js';

describe('http-client: server load reports (endpoint-load-metrics)', function () {
  this.timeout(30_000);
  let servers: TestServer[] = [];
  let reporters: LoadReporter[] = [];
  let client: ProxylessClient | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await Promise.all(servers.splice(0).map((s) => s.close()));
    await Promise.all(reporters.splice(0).map((r) => r.close()));
  });

  it('keeps each endpoint\'s last report, TEXT and JSON, in stats and in the pick explanation', async () => {
    const text = new LoadReporter();
    text.setApplicationUtilization(0.4);
    const json = new LoadReporter({ format: 'JSON' });
    json.setApplicationUtilization(0.7);
    const silent = await startServer(ok); // never reports: behaves as today
    reporters = [text, json];
    const a = await startServer(() => undefined);
    const b = await startServer(() => undefined);
    a.server.removeAllListeners('request');
    b.server.removeAllListeners('request');
    a.server.on('request', loadReportListener(text, (_q, res) => res.end('text')));
    b.server.on('request', loadReportListener(json, (_q, res) => res.end('json')));
    servers = [a, b, silent];
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    client = createClient({ service: 'svc', resolver, balancer: roundRobin() });
    for (let i = 0; i < 9; i++) await client.text('/');
    const res = await client.request({ path: '/', explain: true });
    await res.body.dump();
    const byPort = (s: TestServer) => client!.stats().endpoints.find((e) => e.key === instance(s.port).key)!;
    const ra = byPort(a).loadReport;
    const rb = byPort(b).loadReport;
    console.log(`      [measure] TEXT endpoint: ${JSON.stringify(ra)}; JSON endpoint: ${JSON.stringify(rb)}`);
    assert.equal(ra?.utilization, 0.4);
    assert.equal(rb?.utilization, 0.7);
    assert.equal(rb?.report.application_utilization, 0.7);
    assert.ok(typeof ra?.rps === 'number' && ra.rps >= 0);
    assert.ok(ra.ageMs >= 0 && ra.ageMs < 10_000);
    assert.equal(ra.usable, false, 'within the blackout period (10 s) a report is shown, not used');
    assert.equal(byPort(silent).loadReport, undefined);
    for (const s of servers) assert.equal(byPort(s).malformedLoadReports, 0);
    const chosen = res.picks?.[0]?.candidates.find((c) => c.endpoint === res.endpoint.label);
    assert.ok(chosen !== undefined);
    if (res.endpoint.port === silent.port) assert.equal(chosen.loadReport, undefined);
    else assert.ok(chosen.loadReport !== undefined && chosen.loadReport.utilization! > 0, 'the chosen candidate shows its report');
  });

  it('loadWeightedRoundRobin() gives a server that reports high utilisation a proportionally smaller share, once A58 lets it use the reports', async function () {
    this.timeout(60_000);
    const busy = new LoadReporter();
    busy.setApplicationUtilization(0.8);
    const idle = new LoadReporter();
    idle.setApplicationUtilization(0.2);
    reporters = [busy, idle];
    const a = await startServer(() => undefined);
    const b = await startServer(() => undefined);
    a.server.removeAllListeners('request');
    b.server.removeAllListeners('request');
    a.server.on('request', loadReportListener(busy, (_q, res) => res.end('busy')));
    b.server.on('request', loadReportListener(idle, (_q, res) => res.end('idle')));
    servers = [a, b];
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    // The balancer's clock is the test's: weights are computed once when it starts, once after the blackout.
    let weightClock = 0;
    client = createClient({ service: 'svc', resolver, balancer: loadWeightedRoundRobin({ now: () => weightClock }) });
    // A58's blackout: reports are used only after 10 s of reporting. Until then: equal turns, equal rps.
    const until = performance.now() + LOAD_REPORT_BLACKOUT_MS + 500;
    const during = { busy: 0, idle: 0 };
    while (performance.now() < until) {
      during[(await client.text('/')).body as 'busy' | 'idle']++;
      await sleep(20);
    }
    weightClock += 1_000; // the next pick recomputes the weights from the reports
    const res = await client.request({ path: '/', explain: true });
    await res.body.dump();
    const after = { busy: 0, idle: 0 };
    for (let i = 0; i < 200; i++) after[(await client.text('/')).body as 'busy' | 'idle']++;
    const ra = client.stats().endpoints.find((e) => e.key === instance(a.port).key)?.loadReport;
    const rb = client.stats().endpoints.find((e) => e.key === instance(b.port).key)?.loadReport;
    console.log(`      [measure] blackout: ${JSON.stringify(during)}; after: ${JSON.stringify(after)} of 200 (utilisation 0.8 vs 0.2 at rps ${ra?.rps} vs ${rb?.rps}: busy's expected share ≈ 20 %); pick signal ${res.picks?.[0]?.signal}`);
    assert.ok(Math.abs(during.busy - during.idle) <= 1, 'equal turns during the blackout');
    assert.ok(after.busy >= 25 && after.busy <= 60, `busy got ${after.busy} of 200, expected ≈ 40`);
    assert.equal(res.picks?.[0]?.strategy, 'load-weighted-round-robin');
    assert.equal(res.picks?.[0]?.signal, 'reported-weight');
  });

  it('ignores and counts malformed reports, keeping the last good one', async () => {
    const bad = [
      'TEXT cpu_utilization=-1', // negative
      'TEXT mem_utilization=1.5', // out of range
      'JSON {"cpu_utilization": 0.5', // broken JSON
      'JSON {"cpu_utilization": 0.5, "cpu_utilization": 0.9}', // duplicate key
      'BIN CgkJAAAAAAAA4D8=', // the form not read here
      'TEXT cpu_utilization=NaN',
      `TEXT named_metrics.${'x'.repeat(5_000)}=1`, // oversized
      'cpu_utilization=0.5', // no prefix
    ];
    let n = 0;
    const s = await startServer((_q, res) => {
      const i = n++;
      if (i === 0) res.setHeader('endpoint-load-metrics', 'TEXT cpu_utilization=0.25, rps_fractional=40, eps=2');
      else if (i <= bad.length) res.setHeader('endpoint-load-metrics', bad[i - 1]!);
      else res.setHeader('endpoint-load-metrics', ['TEXT cpu_utilization=0.9', 'TEXT cpu_utilization=0.1']); // sent twice: which one?
      res.end('ok');
    });
    servers = [s];
    const resolver = new FakeResolver();
    resolver.set([instance(s.port)]);
    client = createClient({ service: 'svc', resolver });
    for (let i = 0; i < bad.length + 2; i++) assert.equal((await client.text('/')).body, 'ok', 'a malformed report never fails the request');
    const ep = client.stats().endpoints[0]!;
    console.log(`      [measure] ${ep.malformedLoadReports} malformed values ignored; report kept: ${JSON.stringify(ep.loadReport)}`);
    assert.equal(ep.malformedLoadReports, bad.length + 1);
    assert.equal(ep.loadReport?.utilization, 0.25);
    assert.equal(ep.loadReport?.rps, 40);
    assert.equal(ep.loadReport?.eps, 2);
  });

  it('A58: a report is used only after a 10 s blackout of reporting, dropped 3 min after the last one, and the blackout starts again after an expiry or a rejoin', () => {
    const load = new ReportedLoad();
    const report = 'TEXT application_utilization=0.5, cpu_utilization=0.9, rps_fractional=100';
    assert.equal(load.current(0), undefined);
    load.received(report, 1_000);
    assert.equal(load.current(1_000)?.usable, false);
    assert.equal(load.current(1_000)?.utilization, 0.5, 'application utilisation first, as A58 weighs');
    load.received(report, 1_000 + LOAD_REPORT_BLACKOUT_MS - 1);
    assert.equal(load.current(1_000 + LOAD_REPORT_BLACKOUT_MS - 1)?.usable, false);
    assert.equal(load.current(1_000 + LOAD_REPORT_BLACKOUT_MS)?.usable, true, 'reporting for the blackout period');
    const last = 1_000 + LOAD_REPORT_BLACKOUT_MS;
    load.received(report, last);
    assert.equal(load.current(last + LOAD_REPORT_EXPIRATION_MS)?.ageMs, LOAD_REPORT_EXPIRATION_MS);
    assert.equal(load.current(last + LOAD_REPORT_EXPIRATION_MS + 1), undefined, 'expired: dropped');
    const again = last + LOAD_REPORT_EXPIRATION_MS + 2;
    load.received(report, again);
    assert.equal(load.current(again)?.usable, false, 'a new run of reports: blackout again');
    assert.equal(load.current(again + LOAD_REPORT_BLACKOUT_MS)?.usable, true);
    load.rejoined();
    assert.equal(load.current(again + LOAD_REPORT_BLACKOUT_MS), undefined, 'back from an ejection: the old report is gone');
    load.received(report, again + LOAD_REPORT_BLACKOUT_MS + 5);
    assert.equal(load.current(again + LOAD_REPORT_BLACKOUT_MS + 5)?.usable, false);
    load.received('TEXT cpu_utilization=2, application_utilization=0', again + 2 * LOAD_REPORT_BLACKOUT_MS + 5);
    assert.equal(load.current(again + 2 * LOAD_REPORT_BLACKOUT_MS + 5)?.utilization, 2, 'no application utilisation: CPU (may exceed 1)');
    assert.equal(load.malformed, 0);
  });

  it('gives balancers one view per report (load.reported), only while A58 allows its use, with rif and latency_ms', () => {
    let now = 1_000;
    const load = new ReportedLoad(() => now);
    const tracker = new LoadTracker({ neutralMs: () => 0, nowMs: () => now }, load);
    // A function, so each read is fresh (assert.equal would narrow a property read to undefined).
    const reported = (): ReportedLoadView | undefined => tracker.reported;
    const report = 'TEXT cpu_utilization=0.3, application_utilization=0, rps_fractional=50, eps=1, named_metrics.rif=4, named_metrics.latency_ms=2.5';
    assert.equal(reported(), undefined, 'no report yet');
    load.received(report, now);
    assert.equal(reported(), undefined, 'in the blackout period');
    now += LOAD_REPORT_BLACKOUT_MS;
    load.received(report, now);
    const view = reported();
    assert.ok(view !== undefined);
    assert.deepEqual(
      { utilization: view.utilization, rps: view.rps, eps: view.eps, rif: view.rif, latencyMs: view.latencyMs, ageMs: view.ageMs },
      { utilization: 0.3, rps: 50, eps: 1, rif: 4, latencyMs: 2.5, ageMs: 0 },
    );
    now += 250;
    assert.equal(reported(), view, 'the same object while the report is the same: nothing allocated per pick');
    assert.equal(view.ageMs, 250, 'age read live');
    load.received('TEXT application_utilization=0.9, rps_fractional=10', now);
    const next = reported();
    assert.notEqual(next, view);
    assert.equal(next?.utilization, 0.9);
    assert.equal(next?.rif, undefined, 'a metric not reported is undefined');
    now += LOAD_REPORT_EXPIRATION_MS + 1;
    assert.equal(reported(), undefined, 'expired');
    load.received(report, now);
    assert.equal(reported(), undefined, 'a new run: blackout again');
    now += LOAD_REPORT_BLACKOUT_MS;
    assert.ok(reported() !== undefined);
    load.rejoined();
    assert.equal(reported(), undefined, 'rejoined: the old report is not used');
    assert.equal(new LoadTracker({ neutralMs: () => 0, nowMs: () => now }).reported, undefined, 'a tracker without reports');
  });

  it('peakEwma({ reportedLoad: true }) at one request at a time: every endpoint keeps ≥ 1/3 of its fair share (simulated clock, the real load tracker and A58 rules)', () => {
    // The fairness bench's setting in simulated time: one request at a time over 2 and 5 endpoints that report
    // their utilisation as the busy share of their last 1 s window; endpoint i takes 2 + 0.5·i ms, and its first
    // answer 20 ms more (a cold start). 70 s; shares counted after A58's 10 s blackout.
    const run = (n: number): number[] => {
      let now = 0;
      const context = { neutralMs: () => 0, nowMs: () => now };
      const eps = Array.from({ length: n }, (_, i) => {
        const reported = new ReportedLoad(() => now);
        const load = new LoadTracker(context, reported);
        return { instance: instance(9000 + i), load, reported, serviceMs: 2 + 0.5 * i, first: true, windowStart: 0, busy: 0, served: 0, util: 0, rps: 0 };
      });
      const picker = peakEwma({ reportedLoad: true, random: seededRandom(n) }).createPicker(eps);
      const counts = new Array<number>(n).fill(0);
      while (now < 70_000) {
        const ep = picker.pick()!;
        const start = now;
        const ms = ep.serviceMs + (ep.first ? 20 : 0);
        ep.first = false;
        ep.load.started(start);
        now += ms;
        ep.busy += ms;
        ep.served++;
        if (now - ep.windowStart >= 1_000) {
          ep.util = Math.min(1, ep.busy / (now - ep.windowStart));
          ep.rps = (ep.served * 1_000) / (now - ep.windowStart);
          ep.windowStart = now;
          ep.busy = 0;
          ep.served = 0;
        }
        ep.reported.received(`TEXT application_utilization=${ep.util}, rps_fractional=${ep.rps}, named_metrics.rif=0`, now);
        ep.load.ended('success', ms, now, start);
        if (start >= LOAD_REPORT_BLACKOUT_MS) counts[eps.indexOf(ep)]!++;
      }
      const total = counts.reduce((a, b) => a + b, 0);
      return counts.map((c) => (c / total) * n);
    };
    for (const n of [2, 5]) {
      const shares = run(n);
      console.log(`      [measure] ${n} endpoints, share ÷ fair share: ${shares.map((x) => x.toFixed(2)).join(' / ')}`);
      for (const share of shares) assert.ok(share >= 1 / 3, `${n} endpoints: ${shares.map((x) => x.toFixed(2)).join(' / ')}`);
    }
  });
});

/** Deterministic PRNG (mulberry32) in [0, 1). */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
