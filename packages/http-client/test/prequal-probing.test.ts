/**
 * core's `prequal()` on a real client: the endpoint set sends the probes the
 * picker asks for (`GET /endpoint-load-metrics` on each endpoint's pool),
 * answers from real `@proxyless/load-report` servers fill the probe pool,
 * and the hot–cold rule moves traffic off a slow server, off a hung one, and
 * starves nobody at one request at a time.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { locality, prequal, prequalWhenReported, type ServiceInstance } from '@proxyless/core';
import { createClient, type ProxylessClient } from '@proxyless/http-client';
import { LoadReporter, loadReportListener } from '@proxyless/load-report';
import { FakeResolver, instance, startServer, until, type TestServer } from './helpers.js';

const PROBE_PATH = '/endpoint-load-metrics';

interface Backend {
  readonly server: TestServer;
  /** Application requests served (probes not counted). */
  readonly served: () => number;
  readonly probes: () => number;
}

describe('http-client: prequal() probing balancer', function () {
  this.timeout(60_000);
  const servers: TestServer[] = [];
  const reporters: LoadReporter[] = [];
  let client: ProxylessClient | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await Promise.all(servers.splice(0).map((s) => s.close()));
    await Promise.all(reporters.splice(0).map((r) => r.close()));
  });

  /** A node:http server behind a LoadReporter; `handler` answers the app's requests. */
  async function backend(handler: (req: IncomingMessage, res: ServerResponse) => void, options: { probe?: (req: IncomingMessage, res: ServerResponse) => void } = {}): Promise<Backend> {
    const reporter = new LoadReporter();
    reporters.push(reporter);
    let served = 0;
    let probes = 0;
    const reporting = loadReportListener(reporter, (req, res) => {
      served++;
      handler(req, res);
    });
    const s = await startServer((req, res) => {
      if (req.url === PROBE_PATH) {
        probes++;
        if (options.probe !== undefined) return options.probe(req, res);
      }
      reporting(req, res);
    });
    servers.push(s);
    return { server: s, served: () => served, probes: () => probes };
  }

  const after = (ms: number) => (_req: IncomingMessage, res: ServerResponse): void => {
    setTimeout(() => res.end('ok'), ms);
  };

  function clientOver(backends: readonly Backend[], options: Parameters<typeof prequal>[0] = {}): ProxylessClient {
    const resolver = new FakeResolver();
    resolver.set(backends.map((b) => instance(b.server.port)));
    client = createClient({ service: 'svc', resolver, balancer: prequal(options), retry: { maxRetries: 2 }, perTryTimeoutMs: 2_000, timeoutMs: 6_000 });
    return client;
  }

  /** `total` requests, `concurrency` at a time; every one must succeed. */
  async function load(c: ProxylessClient, total: number, concurrency: number): Promise<void> {
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next++ < total) {
        const res = await c.text('/');
        assert.equal(res.statusCode, 200);
      }
    }));
  }

  it('probes the servers and gives a slow one (high latency_ms) a small share', async () => {
    const fast = await Promise.all([backend(after(2)), backend(after(2)), backend(after(2))]);
    const slow = await backend(after(40));
    const all = [...fast, slow];
    const c = clientOver(all);
    // One at a time: every server is idle at each pick, so in-flight counts (least-request) cannot tell them apart; latency can.
    await load(c, 300, 1);
    const share = slow.served() / all.reduce((n, b) => n + b.served(), 0);
    const probes = c.stats().probes;
    console.log(`      [measure] slow share ${(share * 100).toFixed(1)} % (fair 25 %); served ${all.map((b) => b.served()).join('/')}; probes ${JSON.stringify(probes)}`);
    assert.ok(probes !== undefined && probes.sent > 0, 'probes were sent');
    assert.ok(probes.sent <= 3 * 300 + 8, `at most probeRate (3) per pick: ${probes.sent}`);
    assert.ok(probes.poolSize <= 4);
    // A server whose pool entry an answer had just refreshed in-band is not probed (prequal's fresh rule), so each one was probed or answered.
    assert.ok(all.every((b) => b.probes() > 0 || b.served() > 0), 'every server was probed or reported in-band');
    assert.ok(share < 0.1, `slow share ${share}`);
    const res = await c.text({ path: '/', explain: true });
    const signal = res.picks?.[0]?.signal;
    assert.ok(signal === 'probe-latency' || signal === 'probe-in-flight' || signal === 'in-flight', String(signal));
    assert.equal(res.picks?.[0]?.strategy, 'prequal');
  });

  it('keeps picking when a server fails its probes (reset), and counts the failures', async () => {
    const good = await Promise.all([backend(after(1)), backend(after(1))]);
    const broken = await backend(after(1), { probe: (req) => req.socket.destroy() });
    const c = clientOver([...good, broken]);
    await load(c, 150, 4);
    const probes = c.stats().probes!;
    console.log(`      [measure] probe-failing server: probes ${JSON.stringify(probes)}; served ${[...good, broken].map((b) => b.served()).join('/')}`);
    assert.ok(probes.failed > 0, 'its probes failed and were counted');
    assert.ok(good.every((b) => b.served() > 20));
  });

  it('stops picking a hung server: its probes time out and its RIF climbs', async () => {
    const good = await Promise.all([backend(after(2)), backend(after(2))]);
    const hung = await backend(() => undefined, { probe: () => undefined });
    const c = clientOver([...good, hung], { probeTimeoutMs: 200 });
    await load(c, 40, 4); // learns
    const before = hung.served();
    await load(c, 300, 4);
    const later = hung.served() - before;
    const probes = c.stats().probes!;
    console.log(`      [measure] hung server: ${later} of 300 later requests sent to it; probes ${JSON.stringify(probes)}`);
    assert.ok(probes.failed > 0, 'its probes timed out');
    assert.ok(later <= 10, `hung server got ${later} of 300`);
  });

  for (const n of [2, 5]) {
    it(`starves no endpoint at one request at a time over ${n} endpoints (each ≥ 1/3 of its fair share)`, async () => {
      const backends = await Promise.all(Array.from({ length: n }, () => backend(after(0))));
      const c = clientOver(backends);
      const started = performance.now();
      let total = 0;
      // Bounded in count and time: one request at a time, like a script or a cron job.
      while (total < 600 && performance.now() - started < 6_000) {
        await c.text('/');
        total++;
      }
      const counts = backends.map((b) => b.served());
      console.log(`      [measure] ${n} endpoints, ${total} requests one at a time: ${counts.join('/')} (fair ${(total / n).toFixed(0)} each)`);
      for (const count of counts) assert.ok(count >= total / n / 3, counts.join('/'));
    });
  }

  it('keeps the probes of the servers still present when a server joins or leaves', async () => {
    const backends = await Promise.all([backend(after(1)), backend(after(1)), backend(after(1))]);
    const resolver = new FakeResolver();
    const all = backends.map((b) => instance(b.server.port));
    resolver.set(all);
    // Probes live long enough that nothing ages out while the test looks.
    const c = createClient({ service: 'svc', resolver, balancer: prequal({ maxProbeAgeMs: 60_000, maxReuse: 1000 }) });
    client = c;
    await load(c, 40, 2);
    await until(() => c.stats().probes!.inFlight === 0);
    assert.equal(c.stats().probes!.poolSize, 3);
    const joined = await backend(after(1));
    // One leaves, one joins: the two that stay keep their probes (no pick, so no new probe, in between).
    resolver.set([all[0]!, all[1]!, instance(joined.server.port)]);
    await until(() => c.stats().endpoints.length === 3 && c.stats().endpoints.some((e) => e.label.endsWith(`:${joined.server.port}`)));
    assert.equal(c.stats().probes!.poolSize, 2, JSON.stringify(c.stats().probes));
    const res = await c.text({ path: '/', explain: true });
    assert.match(String(res.picks?.[0]?.signal), /^probe-/, 'the first pick after the change decides on probes');
  });

  it('a probe answered after the set changed reaches the new picker', async () => {
    // Probes answer after 400 ms: the set changes while they are in flight.
    const slowProbe = (_req: IncomingMessage, res: ServerResponse): void => {
      setTimeout(() => res.writeHead(200, { 'endpoint-load-metrics': 'TEXT named_metrics.rif=0, named_metrics.latency_ms=1' }).end(), 400);
    };
    const backends = await Promise.all([backend(after(1), { probe: slowProbe }), backend(after(1), { probe: slowProbe })]);
    const resolver = new FakeResolver();
    const all = backends.map((b) => instance(b.server.port));
    resolver.set(all);
    const c = createClient({ service: 'svc', resolver, balancer: prequal({ maxProbeAgeMs: 60_000, maxReuse: 1000 }) });
    client = c;
    await c.text('/'); // one pick: both servers probed; its answer's in-band report is in the pool
    assert.ok(c.stats().probes!.inFlight > 0, 'probes in flight');
    const joined = await backend(after(1));
    resolver.set([...all, instance(joined.server.port)]);
    await until(() => c.stats().endpoints.length === 3);
    await until(() => c.stats().probes!.inFlight === 0);
    assert.equal(c.stats().probes!.poolSize, 2, `both probes' answers are in the new pool: ${JSON.stringify(c.stats().probes)}`);
  });

  it('locality(prequal()) probes through the wrapper and keeps traffic in the zone', async () => {
    const local = await Promise.all([backend(after(1)), backend(after(30))]);
    const remote = await backend(after(1));
    const zoned = (b: Backend, zone: string): ServiceInstance => ({ ...instance(b.server.port), zone });
    const resolver = new FakeResolver();
    resolver.set([zoned(local[0], 'a'), zoned(local[1], 'a'), zoned(remote, 'b')]);
    const c = createClient({ service: 'svc', resolver, balancer: locality(prequal(), { zone: 'a' }) });
    client = c;
    await load(c, 150, 1);
    const probes = c.stats().probes;
    console.log(`      [measure] locality(prequal()): served ${[...local, remote].map((b) => b.served()).join('/')}; probes ${JSON.stringify(probes)}`);
    assert.ok(probes !== undefined && probes.sent > 0, 'probes were sent');
    assert.ok(local.every((b) => b.probes() > 0 || b.served() > 0), 'both local servers were probed or reported in-band');
    assert.equal(remote.served(), 0, 'traffic stays in the zone');
    assert.ok(local[1].served() < 40, `the slow local server gets a small share: ${local[1].served()} of 150`);
    const res = await c.text({ path: '/', explain: true });
    assert.match(String(res.picks?.[0]?.signal), /^probe-/);
  });

  it('takes reports on answers (in-band rif and latency_ms) as free probes', async () => {
    const backends = await Promise.all([backend(after(1)), backend(after(1))]);
    const c = clientOver(backends, { probeRate: 0 });
    for (let i = 0; i < 20; i++) await c.text('/');
    const probes = c.stats().probes!;
    const res = await c.text({ path: '/', explain: true });
    assert.equal(probes.sent, 0);
    assert.ok(probes.poolSize > 0, 'the pool holds in-band reports');
    assert.equal(res.picks?.[0]?.signal, 'probe-latency');
  });

  it('close() aborts the probes in flight instead of waiting for them', async () => {
    const hung = await backend(after(1), { probe: () => undefined }); // answers requests, never its probes
    const c = clientOver([hung], { probeTimeoutMs: 20_000 });
    for (let i = 0; i < 3; i++) await c.text('/');
    assert.ok(c.stats().probes!.inFlight > 0, 'a probe is in flight');
    const started = performance.now();
    await c.close();
    const ms = performance.now() - started;
    console.log(`      [measure] close() with a probe in flight (deadline 20 s): ${ms.toFixed(0)} ms`);
    assert.ok(ms < 5_000, `close() waited ${ms.toFixed(0)} ms for a probe`);
  });

  it('falls back to least-request when no server answers probes, and stops probing on close()', async () => {
    const plain = await Promise.all([1, 2, 3].map(() => startServer((req, res) => {
      if (req.url === PROBE_PATH) res.statusCode = 404;
      res.end('ok');
    })));
    servers.push(...plain);
    const resolver = new FakeResolver();
    resolver.set(plain.map((s) => instance(s.port)));
    const c = createClient({ service: 'svc', resolver, balancer: prequal() });
    client = c;
    for (let i = 0; i < 60; i++) await c.text('/');
    const res = await c.text({ path: '/', explain: true });
    assert.equal(res.picks?.[0]?.signal, 'in-flight', 'the fallback: least-request');
    const probes = c.stats().probes!;
    assert.ok(probes.unreported > 0 && probes.poolSize === 0, JSON.stringify(probes));
    for (const s of plain) assert.ok(s.hits > 10, `every server served (${plain.map((p) => p.hits).join('/')})`);
    await c.close();
    const hits = plain.map((s) => s.hits);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(plain.map((s) => s.hits), hits, 'nothing sent after close()');
    await until(() => true);
  });
  it('prequalWhenReported(): peak EWMA without a probe while one server does not report, Prequal once every server has reported past the 10 s blackout', async function () {
    this.timeout(90_000);
    const reporting = await Promise.all([backend(after(1)), backend(after(1))]);
    let plainProbes = 0;
    const plain = await startServer((req, res) => {
      if (req.url === PROBE_PATH) plainProbes++;
      res.end('ok');
    });
    servers.push(plain);
    const resolver = new FakeResolver();
    resolver.set([...reporting.map((b) => instance(b.server.port)), instance(plain.port)]);
    client = createClient({ service: 'svc', resolver, balancer: prequalWhenReported(), timeoutMs: 6_000 });
    const c = client;
    // Past A58's blackout (10 s of reports) with the plain server in the set: still peak EWMA, nobody probed.
    const started = performance.now();
    while (performance.now() - started < 11_000) {
      await load(c, 20, 2);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(reporting.reduce((n, b) => n + b.probes(), 0) + plainProbes, 0, 'no probe while a server does not report');
    const before = await c.text({ path: '/', explain: true });
    assert.equal(before.picks?.[0]?.strategy, 'prequal-when-reported');
    assert.ok(before.picks?.[0]?.signal === 'latency' || before.picks?.[0]?.signal === 'in-flight', String(before.picks?.[0]?.signal));
    // The plain server leaves: every server reports, and the next picks are Prequal's (on probes, or on the reports answers carry).
    resolver.set(reporting.map((b) => instance(b.server.port)));
    await load(c, 10, 2);
    await new Promise((r) => setTimeout(r, 300)); // the every-endpoint-reports check runs at most every 250 ms
    const after_ = await c.text({ path: '/', explain: true });
    const signal = after_.picks?.[0]?.signal;
    assert.ok(signal === 'probe-latency' || signal === 'probe-in-flight', String(signal));
    // Idle for longer than a tenth of maxProbeAgeMs (100 ms), the pool is stale: the next picks send probes.
    await new Promise((r) => setTimeout(r, 400));
    const sent = c.stats().probes!.sent;
    await load(c, 10, 1);
    await until(() => c.stats().probes!.sent > sent, 5_000, 'a probe after the pool went stale');
    assert.equal(plainProbes, 0);
  });
});
