import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { Registry } from 'prom-client';
import { peakEwma, prequal } from '@proxyless/core';
import { InvalidOptionError, createClient, type ProxylessClient } from '@proxyless/http-client';
import { registerClientMetrics } from '@proxyless/http-client/prometheus';
import { FakeResolver, instance, ok, startServer, until, type TestServer } from './helpers.js';

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

  it('exports the subset (size, members, backups, candidates, member changes) for a client with subset, and no subset series without', async () => {
    servers = await Promise.all([1, 2, 3, 4, 5].map(() => startServer(ok)));
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    client = createClient({ service: 'svc', resolver, subset: { size: 2, clientId: 'client-p' } });
    const plain = createClient({ service: 'other', resolver });
    const registry = new Registry();
    registerClientMetrics(client, { registry });
    registerClientMetrics(plain, { registry });
    try {
      for (let i = 0; i < 4; i++) await (await client.request('/')).body.dump();
      // A member leaves the service: the subset takes the next candidate.
      const member = client.stats().endpoints[0]!.key;
      resolver.set(servers.map((s) => instance(s.port)).filter((x) => x.key !== member));
      await until(() => client!.stats().endpoints.every((e) => e.key !== member) && client!.stats().endpoints.length === 2);
      const text = await registry.metrics();
      const series = (name: string, labels = ''): string | undefined =>
        new RegExp(`proxyless_http_client_${name}\\{service="svc"${labels}\\} (\\S+)`).exec(text)?.[1];
      assert.equal(series('subset_size'), '2');
      assert.equal(series('subset_members'), '2');
      assert.equal(series('subset_backups'), '0');
      assert.equal(series('subset_candidates'), '4');
      assert.equal(series('subset_member_changes_total', ',change="joined"'), '3', 'two first members and the newcomer');
      assert.equal(series('subset_member_changes_total', ',change="left"'), '1');
      assert.doesNotMatch(text, /proxyless_http_client_subset_\w+\{service="other"/, 'no subset series for a client without subset');
      assert.match(text, /proxyless_http_client_ready_endpoints\{service="other"\} 4/);
    } finally {
      await plain.close();
    }
  });

  it('exports what each server reports about its load (utilisation, rps, eps, rif, age, usable), and nothing for one that does not report', async () => {
    let n = 0;
    const reporting = await startServer((_q, res) => {
      res.setHeader('endpoint-load-metrics', n++ === 0 ? 'TEXT application_utilization=0.75, rps_fractional=120, eps=3, named_metrics.rif=4' : 'TEXT cpu_utilization=oops');
      res.end('ok');
    });
    const silent = await startServer(ok);
    servers = [reporting, silent];
    const resolver = new FakeResolver();
    resolver.set([instance(reporting.port)]);
    client = createClient({ service: 'svc', resolver });
    const registry = new Registry();
    registerClientMetrics(client, { registry });
    for (let i = 0; i < 2; i++) await (await client.request('/')).body.dump();
    resolver.set([instance(reporting.port), instance(silent.port)]);
    const text = await registry.metrics();
    const series = (name: string, port: number): string | undefined =>
      new RegExp(`proxyless_http_client_${name}\\{service="svc",endpoint="127\\.0\\.0\\.1:${port}"\\} (\\S+)`).exec(text)?.[1];
    assert.equal(series('endpoint_reported_utilization', reporting.port), '0.75');
    assert.equal(series('endpoint_reported_rps', reporting.port), '120');
    assert.equal(series('endpoint_reported_eps', reporting.port), '3');
    assert.equal(series('endpoint_reported_requests_in_flight', reporting.port), '4');
    assert.equal(series('endpoint_load_report_usable', reporting.port), '0', 'within the 10 s blackout');
    assert.ok(Number(series('endpoint_load_report_age_seconds', reporting.port)) < 10);
    assert.equal(series('endpoint_malformed_load_reports_total', reporting.port), '1');
    assert.equal(series('endpoint_in_flight', silent.port), '0', 'the silent endpoint is listed');
    assert.equal(series('endpoint_reported_utilization', silent.port), undefined, 'but has no reported-load series');
    assert.equal(series('endpoint_load_report_age_seconds', silent.port), undefined);
  });

  it('exports a probing balancer\'s probes (sent, failed, unreported; in flight, pooled), and no probe series for a client that does not probe', async () => {
    const PROBE_PATH = '/endpoint-load-metrics';
    const reportingProbe = (res: ServerResponse): void => void res.writeHead(200, { 'endpoint-load-metrics': 'TEXT named_metrics.rif=0, named_metrics.latency_ms=1' }).end();
    // One server answers probes with a report, one without (unreported), one resets them (failed).
    const reporting = await startServer((req, res) => (req.url === PROBE_PATH ? reportingProbe(res) : res.end('ok')));
    const silent = await startServer(ok);
    const resetting = await startServer((req, res) => (req.url === PROBE_PATH ? req.socket.destroy() : res.end('ok')));
    servers = [reporting, silent, resetting];
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    client = createClient({ service: 'svc', resolver, balancer: prequal(), retry: { maxRetries: 2 } });
    const plain = createClient({ service: 'other', resolver, balancer: peakEwma() }); // the default can probe (once every server reports), so its series exist (at 0)
    const registry = new Registry();
    registerClientMetrics(client, { registry });
    registerClientMetrics(plain, { registry });
    try {
      for (let i = 0; i < 30; i++) await (await client.request('/')).body.dump();
      await (await plain.request('/')).body.dump();
      await until(() => client!.stats().probes!.inFlight === 0);
      const probes = client.stats().probes!;
      assert.ok(probes.failed > 0 && probes.unreported > 0 && probes.sent > probes.failed + probes.unreported, JSON.stringify(probes));
      const text = await registry.metrics();
      const series = (name: string, labels = ''): string | undefined =>
        new RegExp(`proxyless_http_client_${name}\\{service="svc"${labels}\\} (\\S+)`).exec(text)?.[1];
      assert.equal(series('probes_total', ',result="sent"'), String(probes.sent));
      assert.equal(series('probes_total', ',result="failed"'), String(probes.failed));
      assert.equal(series('probes_total', ',result="unreported"'), String(probes.unreported));
      assert.equal(series('probes_in_flight'), '0');
      assert.equal(series('probe_pool_size'), String(probes.poolSize));
      assert.match(text, /# TYPE proxyless_http_client_probes_total counter/);
      assert.doesNotMatch(text, /proxyless_http_client_probe\w*\{service="other"/, 'no probe series for a client whose balancer does not probe');
      assert.match(text, /proxyless_http_client_ready_endpoints\{service="other"\} 3/);
    } finally {
      await plain.close();
    }
  });

  it('takes any number of clients on one registry: series labelled by service, a closed client\'s series removed', async () => {
    const usersServer = await startServer(ok);
    const ordersServer = await startServer(ok);
    servers.push(usersServer, ordersServer);
    const usersResolver = new FakeResolver();
    usersResolver.set([instance(usersServer.port)]);
    const ordersResolver = new FakeResolver();
    ordersResolver.set([instance(ordersServer.port)]);
    const users = createClient({ service: 'users', resolver: usersResolver });
    const orders = createClient({ service: 'orders', resolver: ordersResolver });
    try {
      const registry = new Registry();
      const usersMetrics = registerClientMetrics(users, { registry });
      const ordersMetrics = registerClientMetrics(orders, { registry }); // threw "already registered" before
      const duplicate = createClient({ service: 'users', resolver: usersResolver });
      assert.throws(() => registerClientMetrics(duplicate, { registry }), InvalidOptionError, 'a second client for one service would collide');
      await duplicate.close();
      for (let i = 0; i < 2; i++) await (await users.request('/')).body.dump();
      await (await orders.request('/')).body.dump();
      let text = await registry.metrics();
      assert.match(text, new RegExp(`proxyless_http_client_endpoint_attempts_total\\{service="users",endpoint="127.0.0.1:${usersServer.port}",outcome="success"\\} 2`));
      assert.match(text, new RegExp(`proxyless_http_client_endpoint_attempts_total\\{service="orders",endpoint="127.0.0.1:${ordersServer.port}",outcome="success"\\} 1`));
      assert.match(text, /proxyless_http_client_ready_endpoints\{service="users"\} 1/);
      assert.match(text, /proxyless_http_client_ready_endpoints\{service="orders"\} 1/);
      await orders.close();
      text = await registry.metrics();
      assert.doesNotMatch(text, /service="orders"/, 'a closed client leaves no series');
      assert.match(text, /service="users"/);
      ordersMetrics.unregister(); // already gone: a no-op
      usersMetrics.unregister();
      assert.equal((await registry.metrics()).trim(), '', 'the last client takes the metrics with it');
      // The registry takes clients again afterwards.
      registerClientMetrics(users, { registry }).unregister();
    } finally {
      await users.close();
      await orders.close();
    }
  });
});
