import assert from 'node:assert/strict';
import { createClient, type ProxylessClient } from '@proxyless/http-client';
import { FakeResolver, instance, ok, startServer, until, type TestServer } from './helpers.js';

describe('http-client: request/fetch against real servers', () => {
  let servers: TestServer[] = [];
  let client: ProxylessClient | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
  });

  it('balances requests over every endpoint of the snapshot', async () => {
    servers = await Promise.all([startServer(ok), startServer(ok), startServer(ok)]);
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    client = createClient({ service: 'svc', resolver });
    for (let i = 0; i < 60; i++) {
      const res = await client.request('/');
      assert.equal(res.statusCode, 200);
      assert.equal(res.attempts, 1);
      assert.match(await res.body.text(), /^ok \d+$/);
    }
    for (const s of servers) assert.ok(s.hits > 0, `server ${s.port} got no traffic`);
    const stats = client.stats();
    assert.equal(stats.endpoints.length, 3);
    assert.equal(stats.endpoints.reduce((a, e) => a + e.successes, 0), 60);
  });

  it('serves fetch() with a web Response', async () => {
    servers = [await startServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => res.setHeader('x-method', req.method ?? '').end(`${req.url} ${body}`));
    })];
    const resolver = new FakeResolver();
    resolver.set([instance(servers[0]!.port)]);
    client = createClient({ service: 'svc', resolver });
    const res = await client.fetch('http://svc/echo?x=1', { method: 'POST', body: 'hello' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-method'), 'POST');
    assert.equal(await res.text(), '/echo?x=1 hello');
    const head = await client.fetch('/x', { method: 'HEAD' });
    assert.equal(head.body, null);
  });

  it('follows snapshots: new endpoints get traffic, removed ones drain then close', async () => {
    servers = await Promise.all([startServer(ok), startServer((_q, res) => setTimeout(() => res.end('slow'), 200))]);
    const resolver = new FakeResolver();
    resolver.set([instance(servers[1]!.port)]);
    client = createClient({ service: 'svc', resolver });
    const removed: string[] = [];
    client.on('endpointRemoved', (e) => removed.push(e.label));
    const inFlight = client.request('/');
    await until(() => servers[1]!.hits === 1, 2000, 'request in flight');
    resolver.set([instance(servers[0]!.port)]);
    await until(() => removed.length === 1, 2000, 'removal');
    const res = await inFlight; // drained, not cut
    assert.equal(await res.body.text(), 'slow');
    const next = await client.request('/');
    assert.equal(next.endpoint.port, servers[0]!.port);
    await next.body.dump();
  });

  it('waits for the first snapshot instead of failing', async () => {
    servers = [await startServer(ok)];
    const resolver = new FakeResolver();
    client = createClient({ service: 'svc', resolver });
    const p = client.request('/');
    setTimeout(() => resolver.set([instance(servers[0]!.port)]), 50);
    const res = await p;
    assert.equal(res.statusCode, 200);
    await res.body.dump();
  });

  it('rejects with ERR_CLOSED after close(), and close() is idempotent', async () => {
    const resolver = new FakeResolver();
    client = createClient({ service: 'svc', resolver });
    await client.close();
    await client.close();
    await assert.rejects(client.request('/'), { code: 'ERR_CLOSED' });
  });
});
