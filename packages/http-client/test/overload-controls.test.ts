import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { roundRobin } from '@proxyless/core';
import { AdmissionRejectedError, ConcurrencyLimitError, createClient, type ConcurrencyLimitStats, type EndpointInfo, type ProxylessClient } from '@proxyless/http-client';
import { FakeResolver, instance, startServer, until, type TestServer } from './helpers.js';

/** A server with `slots` workers of `serviceMs` each and an unbounded FIFO queue (timers, not CPU): its RTT grows with the queue. */
async function slottedServer(slots: number, serviceMs: number): Promise<TestServer> {
  let busy = 0;
  const queue: ServerResponse[] = [];
  const next = (): void => {
    while (busy < slots && queue.length > 0) {
      const res = queue.shift()!;
      busy++;
      setTimeout(() => {
        busy--;
        res.end('ok');
        next();
      }, serviceMs);
    }
  };
  return startServer((_req, res) => {
    queue.push(res);
    next();
  });
}

describe('http-client: adaptive concurrency limits and admission control (real sockets)', () => {
  let servers: TestServer[] = [];
  let client: ProxylessClient | undefined;
  afterEach(async () => {
    await client?.destroy();
    client = undefined;
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
  });

  it("a slow endpoint's limit falls and picks avoid it (round-robin alone would split evenly)", async () => {
    // Fast: answers at once (no queue at any concurrency); slow: 1 slot of 10 ms (its RTT grows with its queue).
    const fast = await startServer((_req, res) => res.end('ok'));
    const slow = await slottedServer(1, 10);
    servers = [fast, slow];
    const resolver = new FakeResolver();
    resolver.set([instance(fast.port), instance(slow.port)]);
    client = createClient({ service: 'svc', resolver, balancer: roundRobin(), retry: false, breaker: false, outlierDetection: false, concurrencyLimit: true });
    const changes: [EndpointInfo, ConcurrencyLimitStats][] = [];
    client.on('concurrencyLimit', (ep, stats) => changes.push([ep, stats]));
    let limited = 0;
    // 16 workers, 60 requests each: bounded in count (and by the 10 s deadline of each request).
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = 0; i < 60; i++) {
          try {
            const res = await client!.request('/');
            await res.body.dump();
          } catch (error) {
            if (!(error instanceof ConcurrencyLimitError)) throw error;
            limited++;
            await new Promise((r) => setTimeout(r, 2));
          }
        }
      }),
    );
    const slowStats = client.stats().endpoints.find((e) => e.label.endsWith(`:${slow.port}`))!;
    assert.ok(slowStats.concurrencyLimit !== undefined);
    assert.ok(slowStats.concurrencyLimit.rttNoLoadMs >= 4, `slow no-load RTT ${slowStats.concurrencyLimit.rttNoLoadMs}`);
    assert.ok(slowStats.concurrencyLimit.atLimit > 0);
    // Vegas aims at a queue estimate of 3–6 (about 4–9 on a 1-slot backend; 20, the initial limit, queues 200 ms),
    // a step of 1 per window of 10 samples; the fall is asserted, and reported as events.
    const slowLimits = changes.filter(([ep]) => ep.port === slow.port).map(([, s]) => s.limit);
    assert.ok(slowLimits.length > 0 && Math.min(...slowLimits) <= 12, `slow limits ${slowLimits.join(',')}`);
    // Round-robin alone sends half to each (each worker alternates); the limit keeps the slow one to a few in flight.
    const total = slow.hits + fast.hits;
    assert.ok(slow.hits < (total * 3) / 8, `slow ${slow.hits} of ${total} (limited ${limited})`);
  });

  it('when every endpoint is at its limit, a request fails at once with ConcurrencyLimitError and sends nothing', async () => {
    const held: ServerResponse[] = [];
    let release = false;
    const server = await startServer((_req, res) => {
      if (release) res.end('ok');
      else held.push(res);
    });
    servers = [server];
    const resolver = new FakeResolver();
    resolver.set([instance(server.port)]);
    client = createClient({ service: 'svc', resolver, retry: false, concurrencyLimit: { initialLimit: 2, minLimit: 2, maxLimit: 2 } });
    const a = client.request('/');
    const b = client.request('/');
    await until(() => held.length === 2, 5_000, 'two requests held by the server');
    const started = performance.now();
    const error = await client.request('/').catch((e: unknown) => e);
    assert.ok(error instanceof ConcurrencyLimitError, String(error));
    assert.equal(error.code, 'ERR_CONCURRENCY_LIMIT');
    assert.equal(error.attempts, 0);
    assert.ok(performance.now() - started < 1_000, 'fails fast, without waiting for a slot');
    assert.equal(server.hits, 2);
    release = true;
    for (const res of held) res.end('ok');
    await Promise.all([a, b].map(async (p) => (await p).body.dump()));
    const res = await client.request('/');
    await res.body.dump();
    assert.equal(res.statusCode, 200, 'a slot freed: admitted again');
  });

  it('admission control rejects locally while the service answers 503, then admits again once it recovers', async () => {
    let overloaded = true;
    const server = await startServer((_req, res) => {
      if (overloaded) res.writeHead(503).end();
      else res.end('ok');
    });
    servers = [server];
    const resolver = new FakeResolver();
    resolver.set([instance(server.port)]);
    const c = createClient({ service: 'svc', resolver, retry: false, breaker: false, outlierDetection: false, admissionControl: { windowMs: 1_000, minRequests: 10 } });
    client = c;
    let rejected = 0;
    let sent = 0;
    for (let i = 0; i < 200; i++) {
      try {
        const res = await c.request('/');
        await res.body.dump();
        sent++;
      } catch (error) {
        assert.ok(error instanceof AdmissionRejectedError, String(error));
        assert.equal(error.retryable, false);
        assert.equal(error.code, 'ERR_ADMISSION_REJECTED');
        rejected++;
      }
    }
    // SRE K = 2 with no accepts: p = requests/(requests+1), capped at 0.8: the service sees about a fifth.
    assert.ok(rejected > 100, `rejected ${rejected} of 200`);
    assert.equal(server.hits, sent);
    assert.ok(c.stats().admission!.rejectProbability > 0.5);
    overloaded = false;
    // Recovery: admitted requests are accepted, and the window forgets the overload.
    await until(
      () => {
        void c.request('/').then((r) => r.body.dump(), () => undefined);
        return c.stats().admission!.rejectProbability === 0;
      },
      5_000,
      'admission control admits everything again',
    );
    for (let i = 0; i < 20; i++) {
      const res = await c.request('/');
      assert.equal(res.statusCode, 200);
      await res.body.dump();
    }
  });

  it('with both off, stats carry neither and nothing is rejected locally', async () => {
    const server = await startServer((_req, res) => res.writeHead(503).end());
    servers = [server];
    const resolver = new FakeResolver();
    resolver.set([instance(server.port)]);
    client = createClient({ service: 'svc', resolver, retry: false, breaker: false, outlierDetection: false });
    for (let i = 0; i < 50; i++) await (await client.request('/')).body.dump();
    assert.equal(server.hits, 50);
    assert.equal(client.stats().admission, undefined);
    assert.equal(client.stats().endpoints[0]!.concurrencyLimit, undefined);
  });
});
