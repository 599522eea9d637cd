import assert from 'node:assert/strict';
import { createClient, RetryBudgetExhaustedError, type ProxylessClient } from '@proxyless/http-client';
import { roundRobin, type Balancer } from '@proxyless/core';
import { FakeResolver, freePort, instance, ok, startServer, until, type TestServer } from './helpers.js';

describe('http-client: retry budget and panic mode', () => {
  let servers: TestServer[] = [];
  let client: ProxylessClient | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
  });

  it('stops retrying when the retry budget is spent', async () => {
    const dead = await freePort();
    const resolver = new FakeResolver();
    resolver.set([instance(dead)]);
    client = createClient({ service: 'svc', resolver, retry: { budget: { ratio: 0, minRetriesPerSecond: 0.1 } }, outlierDetection: false, breaker: false });
    const results: unknown[] = [];
    for (let i = 0; i < 5; i++) results.push(await client.request('/').catch((e: unknown) => e));
    // Floor: 0.1/s × 10 s = 1 retry in the window, then the budget refuses.
    assert.ok(results.some((e) => e instanceof RetryBudgetExhaustedError), String(results));
    const exhausted = results.filter((e) => e instanceof RetryBudgetExhaustedError);
    // The first request used the one retry (2 attempts); the others got none.
    assert.equal(exhausted.length, 5);
    assert.equal(exhausted[0]!.attempts, 2);
    for (const e of exhausted.slice(1)) {
      assert.equal(e.code, 'ERR_RETRY_BUDGET_EXHAUSTED');
      assert.equal(e.attempts, 1);
      assert.deepEqual(e.endpointsTried, [`127.0.0.1:${dead}`]);
    }
  });

  it('enters panic mode when too many endpoints are ejected, and keeps serving over all of them', async () => {
    servers = await Promise.all([startServer((_q, res) => res.writeHead(500).end()), startServer((_q, res) => res.writeHead(500).end())]);
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    client = createClient({
      service: 'svc',
      resolver,
      breaker: false,
      retry: false,
      outlierDetection: { consecutiveFailures: 2, maxEjectionPercent: 100, panicThresholdPercent: 60, baseEjectionTimeMs: 60_000 },
    });
    const panics: boolean[] = [];
    client.on('panic', (p) => panics.push(p));
    for (let i = 0; i < 20; i++) {
      const res = await client.request('/');
      assert.equal(res.statusCode, 500); // never "no healthy endpoints": panic balances over all
      await res.body.dump();
    }
    assert.deepEqual(panics, [true]);
    assert.equal(client.stats().panic, true);
  });

  it('ejects and restores an endpoint without building a new picker (picks skip it meanwhile)', async () => {
    let failing = true;
    servers = await Promise.all([
      startServer((_q, res, s) => (failing ? res.writeHead(500).end() : ok(_q, res, s))),
      startServer(ok),
      startServer(ok),
    ]);
    const inner = roundRobin();
    let builds = 0;
    const counting: Balancer = {
      name: 'counting-round-robin',
      createPicker(endpoints) {
        builds++;
        return inner.createPicker(endpoints);
      },
    };
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    client = createClient({
      service: 'svc',
      resolver,
      balancer: counting,
      breaker: false,
      retry: false,
      outlierDetection: { consecutiveFailures: 2, maxEjectionPercent: 50, baseEjectionTimeMs: 400 },
    });
    const events: string[] = [];
    client.on('eject', () => events.push('eject'));
    client.on('restore', () => events.push('restore'));
    for (let i = 0; i < 12 && !events.includes('eject'); i++) await (await client.request('/')).body.dump();
    assert.deepEqual(events, ['eject']);
    const buildsAtEjection = builds;
    failing = false;
    const bad = servers[0]!;
    const hitsBefore = bad.hits;
    for (let i = 0; i < 20; i++) await (await client.request('/')).body.dump();
    assert.equal(bad.hits, hitsBefore, 'an ejected endpoint gets no traffic');
    assert.equal(client.stats().ready, 2);
    await until(() => events.includes('restore'), 5_000, 'restore');
    for (let i = 0; i < 20; i++) await (await client.request('/')).body.dump();
    assert.ok(bad.hits > hitsBefore, 'a restored endpoint gets traffic again');
    assert.equal(client.stats().ready, 3);
    assert.equal(builds, buildsAtEjection, 'neither the ejection nor the restore built a picker');
  });
});
