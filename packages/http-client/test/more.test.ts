import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { createClient, RetryBudgetExhaustedError, type ProxylessClient } from '@proxyless/http-client';
import { registerClientMetrics } from '@proxyless/http-client/prometheus';
import { FakeResolver, freePort, instance, ok, startServer, type TestServer } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));

describe('http-client: budget, panic, metrics, lifecycle', () => {
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

  it('exports per-endpoint Prometheus metrics read at scrape time', async () => {
    servers = [await startServer(ok)];
    const resolver = new FakeResolver();
    resolver.set([instance(servers[0]!.port)]);
    client = createClient({ service: 'svc', resolver });
    const registry = new Registry();
    const metrics = registerClientMetrics(client, { registry });
    for (let i = 0; i < 3; i++) await (await client.request('/')).body.dump();
    const text = await registry.metrics();
    assert.match(text, new RegExp(`proxyless_http_client_endpoint_attempts_total\\{service="svc",endpoint="127.0.0.1:${servers[0]!.port}",outcome="success"\\} 3`));
    assert.match(text, /proxyless_http_client_endpoint_breaker_state\{[^}]*\} 0/);
    assert.match(text, /proxyless_http_client_ready_endpoints\{service="svc"\} 1/);
    metrics.unregister();
    assert.equal((await registry.metrics()).trim(), '');
  });

  it('lets the process exit by itself after close()', async () => {
    servers = [await startServer(ok)];
    const child = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', join(here, 'fixtures', 'exit-after-close.ts'), String(servers[0]!.port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    assert.equal(code, 0, `child did not exit by itself: ${out}`);
    assert.match(out, /status 200/);
  });
});
