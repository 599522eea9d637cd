/**
 * A shed answer (`503` + `x-proxyless-shed`, what `@proxyless/load-report`
 * writes when it turns a request away under overload) is the endpoint saying
 * "alive, busy": not a breaker, ejection or latency failure, not retried on
 * the same endpoint, retried on another (even a POST: the handler did not
 * run), counted per endpoint and reported as a `shed` event. The request's
 * priority travels in `x-proxyless-priority`.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidOptionError, priorityHeader, roundRobin, shedHeader } from '@proxyless/core';
import { createClient, type ProxylessClient } from '@proxyless/http-client';
import { LoadReporter, loadReportListener } from '@proxyless/load-report';
import { FakeResolver, instance, ok, startServer, type TestServer } from './helpers.js';

/** What a shedding server answers: 503, Retry-After, the shed marker; the handler never runs. */
function shed(req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(503, { 'retry-after': '5', [shedHeader]: String(req.headers[priorityHeader] ?? 'normal'), 'content-length': '0' });
  res.end();
}

describe('http-client: shed answers (503 + x-proxyless-shed)', function () {
  this.timeout(30_000);
  let servers: TestServer[] = [];
  let client: ProxylessClient | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('neither opens the breaker nor ejects, retries on another endpoint at once, and counts the shed per endpoint', async () => {
    const priorities: (string | undefined)[] = [];
    const busy = await startServer((req, res) => {
      priorities.push(req.headers[priorityHeader] as string | undefined);
      shed(req, res);
    });
    const calm = await startServer(ok);
    servers = [busy, calm];
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    client = createClient({
      service: 'svc',
      resolver,
      balancer: roundRobin(),
      // A breaker and ejection this tight would trip within the first few requests if a shed counted as a failure.
      breaker: { volumeThreshold: 2, errorThresholdPercentage: 10 },
      outlierDetection: { consecutiveFailures: 2, maxEjectionPercent: 100 },
      retry: { maxRetries: 2, budget: { minRetriesPerSecond: 1000 } },
    });
    const events: string[] = [];
    for (const e of ['breakerOpen', 'eject'] as const) client.on(e, () => events.push(e));
    let shedEvents = 0;
    client.on('shed', (ep) => {
      assert.equal(ep.port, busy.port);
      shedEvents++;
    });
    const policy = client.policy({ priority: 'low' });
    let slowest = 0;
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      // Half of them POSTs: a shed request never reached the handler, so even a non-idempotent one is resent.
      const res = await client.request({ path: '/', method: i % 2 === 0 ? 'GET' : 'POST', body: 'x', policy });
      slowest = Math.max(slowest, performance.now() - started);
      assert.equal(res.statusCode, 200);
      assert.equal(res.endpoint.port, calm.port, 'answered by the endpoint that did not shed');
      await res.body.dump();
    }
    const stats = client.stats().endpoints;
    const b = stats.find((e) => e.key === instance(busy.port).key)!;
    const c = stats.find((e) => e.key === instance(calm.port).key)!;
    console.log(`      [measure] busy: shed ${b.shed}, failures ${b.failures}, health ${b.health}; calm: successes ${c.successes}; slowest request ${slowest.toFixed(1)} ms; events ${JSON.stringify(events)}`);
    assert.deepEqual(events, [], 'no breakerOpen, no eject');
    assert.equal(b.health, 'ready');
    assert.equal(b.failures, 0);
    assert.ok(b.shed >= 5, `shed answers counted (${b.shed})`);
    assert.equal(shedEvents, b.shed);
    assert.equal(busy.hits, b.shed, 'each request reached the busy endpoint at most once');
    assert.ok(priorities.every((p) => p === 'low'), 'the priority travels in x-proxyless-priority');
    // Retry-After (5 s) speaks for the endpoint that shed; the retry on another one does not wait for it.
    assert.ok(slowest < 2_500, `no request waited for Retry-After (slowest ${slowest.toFixed(0)} ms)`);
  });

  it('end to end with @proxyless/load-report shedding: low priority goes to the endpoint that is not overloaded, high is served by both', async () => {
    // The busy backend holds two requests against an in-flight limit of 2: pressure 1, where low is shed and high is not.
    const busyLoad = new LoadReporter({ shedding: { inFlightLimit: 2, eventLoopDelayMs: false } });
    const calmLoad = new LoadReporter({ shedding: { inFlightLimit: 2, eventLoopDelayMs: false } });
    const heldResponses: ServerResponse[] = [];
    const busy = await startServer(() => undefined);
    const calm = await startServer(() => undefined);
    busy.server.removeAllListeners('request');
    calm.server.removeAllListeners('request');
    busy.server.on('request', loadReportListener(busyLoad, (req, res) => (req.url === '/hold' ? heldResponses.push(res) : res.end('busy'))));
    calm.server.on('request', loadReportListener(calmLoad, (_req, res) => res.end('calm')));
    servers = [busy, calm];
    try {
      const held = [0, 1].map(() => fetch(`http://127.0.0.1:${busy.port}/hold`, { headers: { [priorityHeader]: 'critical' }, signal: AbortSignal.timeout(10_000) }));
      for (let i = 0; i < 100 && busyLoad.requestsInFlight < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(busyLoad.requestsInFlight, 2);
      const resolver = new FakeResolver();
      resolver.set([instance(busy.port), instance(calm.port)]);
      client = createClient({ service: 'svc', resolver, balancer: roundRobin(), breaker: { volumeThreshold: 2, errorThresholdPercentage: 10 }, retry: { budget: { minRetriesPerSecond: 1000 } } });
      const bodies = { low: new Set<string>(), high: new Set<string>() };
      // Two of each in a row, so round robin offers both endpoints to both priorities.
      for (let i = 0; i < 6; i++) {
        for (const priority of ['low', 'low', 'high', 'high'] as const) {
          const res = await client.text({ path: '/', priority });
          assert.equal(res.statusCode, 200);
          bodies[priority].add(res.body);
        }
      }
      const b = client.stats().endpoints.find((e) => e.key === instance(busy.port).key)!;
      console.log(`      [measure] low answered by ${JSON.stringify([...bodies.low])}, high by ${JSON.stringify([...bodies.high])}; busy endpoint: shed ${b.shed}, failures ${b.failures}, breaker ${b.breaker}; server shed ${JSON.stringify(busyLoad.sheddingStats()?.shed)}`);
      assert.deepEqual([...bodies.low], ['calm']);
      assert.deepEqual([...bodies.high].sort(), ['busy', 'calm']);
      assert.equal(b.shed, busyLoad.sheddingStats()?.shed.low);
      assert.ok(b.shed > 0);
      assert.equal(b.failures, 0);
      assert.equal(b.breaker, 'closed');
      for (const res of heldResponses) res.end('held');
      await Promise.all((await Promise.all(held)).map((r) => r.text()));
    } finally {
      await busyLoad.close();
      await calmLoad.close();
    }
  });

  it('returns the shed answer when no other endpoint is left, after trying the endpoint once', async () => {
    const busy = await startServer(shed);
    servers = [busy];
    const resolver = new FakeResolver();
    resolver.set([instance(busy.port)]);
    client = createClient({ service: 'svc', resolver, retry: { maxRetries: 2, budget: { minRetriesPerSecond: 1000 } } });
    const res = await client.request({ path: '/', priority: 'background' });
    await res.body.dump();
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers[shedHeader], 'background');
    assert.equal(busy.hits, 1, 'never sent to the same endpoint twice');
  });

  it('validates the priority with a typed error naming the values', () => {
    const resolver = new FakeResolver();
    client = createClient({ service: 'svc', resolver });
    assert.throws(() => client!.policy({ priority: 'urgent' as never }), (e: unknown) => e instanceof InvalidOptionError && /priority.*'critical', 'high', 'normal', 'low', 'background'/.test(e.message));
  });
});
