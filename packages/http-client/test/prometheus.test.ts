import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { createClient, type ProxylessClient } from '@proxyless/http-client';
import { registerClientMetrics } from '@proxyless/http-client/prometheus';
import { FakeResolver, instance, ok, startServer, type TestServer } from './helpers.js';

describe('http-client: Prometheus adapter', () => {
  let servers: TestServer[] = [];
  let client: ProxylessClient | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
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
});
