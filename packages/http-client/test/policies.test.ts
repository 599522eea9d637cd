import assert from 'node:assert/strict';
import { InvalidOptionError, RequestFailedError, createClient, type ProxylessClient } from '@proxyless/http-client';
import { FakeResolver, freePort, instance, startServer, type TestServer } from './helpers.js';

describe('http-client: per-request policies', () => {
  let servers: TestServer[] = [];
  let client: ProxylessClient | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it("a per-request retry policy overrides the client's, and the client's default stays as it was", async () => {
    servers = await Promise.all([0, 1, 2].map(() => startServer((_q, res) => {
      res.statusCode = 503;
      res.end('busy');
    })));
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    client = createClient({ service: 'svc', resolver, retry: { maxRetries: 0 } });
    const byDefault = await client.request('/');
    await byDefault.body.dump();
    assert.equal(byDefault.attempts, 1, 'the client policy does not retry');
    const patient = client.policy({ retry: { maxRetries: 2, initialMs: 1 } });
    assert.ok(Object.isFrozen(patient), 'a policy is an immutable value');
    const viaPolicy = await client.request({ path: '/', policy: patient });
    await viaPolicy.body.dump();
    assert.equal(viaPolicy.attempts, 3, 'the per-request policy retried twice, each on another endpoint');
    const inline = await client.request({ path: '/', retry: { maxRetries: 1, initialMs: 1 } });
    await inline.body.dump();
    assert.equal(inline.attempts, 2);
    const again = await client.request('/');
    await again.body.dump();
    assert.equal(again.attempts, 1, 'the client default is unchanged');
    assert.equal(servers.reduce((n, s) => n + s.hits, 0), 7);
  });

  it('a per-request retry policy retries on a client created with retry: false (503 then 200)', async () => {
    // One backend, so the retry can only go back to it: 503 to the first two requests, 200 after.
    const server = await startServer((_q, res, s) => {
      res.statusCode = s.hits <= 2 ? 503 : 200;
      res.end(s.hits <= 2 ? 'busy' : 'ok');
    });
    servers = [server];
    const resolver = new FakeResolver();
    resolver.set([instance(server.port)]);
    client = createClient({ service: 'svc', resolver, retry: false, breaker: false, outlierDetection: false });
    const byDefault = await client.request('/');
    await byDefault.body.dump();
    assert.deepEqual([byDefault.statusCode, byDefault.attempts], [503, 1], 'the client default does not retry');
    const patient = client.policy({ retry: { maxRetries: 2, initialMs: 1 } });
    const res = await client.request({ path: '/', policy: patient });
    assert.equal(await res.body.text(), 'ok');
    assert.deepEqual([res.statusCode, res.attempts], [200, 2], 'retried once, on the 200');
    assert.equal(server.hits, 3);
    assert.ok(client.stats().retryBudget >= 0, 'the client has a retry budget');
  });

  it('a per-request retry policy on a retry: false client makes every attempt against a refused port, not "budget exhausted after 1 attempt(s)"', async () => {
    const port = await freePort();
    const resolver = new FakeResolver();
    resolver.set([instance(port)]);
    client = createClient({ service: 'svc', resolver, retry: false, breaker: false, outlierDetection: false });
    await assert.rejects(client.request({ path: '/', retry: { maxRetries: 2, initialMs: 1 } }), (e: unknown) => {
      assert.ok(e instanceof RequestFailedError, String(e));
      assert.equal(e.code, 'ERR_REQUEST_FAILED');
      assert.equal(e.reason, 'connect');
      assert.equal(e.attempts, 3, e.message);
      return true;
    });
  });

  it('derives the per-try timeout from a new deadline (2/5 with retries) unless it is set', () => {
    const resolver = new FakeResolver();
    client = createClient({ service: 'svc', resolver, timeoutMs: 1_000 });
    assert.deepEqual([client.defaultPolicy.timeoutMs, client.defaultPolicy.perTryTimeoutMs], [1_000, 400]);
    assert.equal(client.policy({ timeoutMs: 500 }).perTryTimeoutMs, 200);
    assert.equal(client.policy({ timeoutMs: 500, retry: false }).perTryTimeoutMs, 500);
    assert.equal(client.policy({ timeoutMs: 500, perTryTimeoutMs: 300 }).perTryTimeoutMs, 300);
    assert.equal(client.policy({ timeoutMs: 100, perTryTimeoutMs: 300 }).perTryTimeoutMs, 100, 'never above the deadline');
  });

  it('rejects invalid per-request policy values with a typed error naming the field', async () => {
    const resolver = new FakeResolver();
    client = createClient({ service: 'svc', resolver });
    const c = client;
    const cases: [string, () => unknown][] = [
      ['timeoutMs', () => c.request({ path: '/', timeoutMs: -1 })],
      ['perTryTimeoutMs', () => c.request({ path: '/', perTryTimeoutMs: Number.NaN })],
      ['retry.maxRetries', () => c.request({ path: '/', retry: { maxRetries: 1.5 } })],
      ['retry.retryOnStatuses', () => c.request({ path: '/', retry: { retryOnStatuses: [999] } })],
      ['retry.maxMs', () => c.policy({ retry: { initialMs: 100, maxMs: 10 } })],
      ['policy', () => c.request({ path: '/', policy: { timeoutMs: 1, perTryTimeoutMs: 1, retry: false, hedge: false } })],
    ];
    for (const [field, run] of cases) {
      await assert.rejects(async () => run(), (e: unknown) => e instanceof InvalidOptionError && e.option === field, field);
    }
  });
});
