import assert from 'node:assert/strict';
import { ConsulHttpClient, ConsulResolver } from '@proxyless/core';
import { createClient, type ProxylessClient } from '@proxyless/http-client';
import { startConsulAgent, type ConsulAgent } from '../../../test/support/consul.js';
import { ok, startServer, until, type TestServer } from './helpers.js';

describe('http-client with the real Consul agent', function () {
  this.timeout(90_000);
  let agent: ConsulAgent | undefined;
  let consul: ConsulHttpClient | undefined;
  let resolver: ConsulResolver | undefined;
  let client: ProxylessClient | undefined;
  let servers: TestServer[] = [];

  before(async () => {
    agent = await startConsulAgent();
    consul = new ConsulHttpClient({ address: agent.httpAddr });
  });
  after(async () => {
    await client?.close();
    await resolver?.close();
    await consul?.close();
    await Promise.all(servers.map((s) => s.close()));
    await agent?.stop();
  });

  it('follows Consul registrations: balances over them, and a deregistered instance stops getting traffic without a failed request', async () => {
    servers = await Promise.all([startServer(ok), startServer(ok), startServer(ok)]);
    for (const s of servers) {
      await consul!.request({ method: 'PUT', path: '/v1/agent/service/register', body: { ID: `api-${s.port}`, Name: 'api', Address: '127.0.0.1', Port: s.port } });
    }
    resolver = new ConsulResolver({ address: agent!.httpAddr, waitMs: 5_000 });
    client = createClient({ service: 'api', resolver, timeoutMs: 5_000 });
    const c = client;
    await until(() => c.stats().endpoints.length === 3, 20_000, 'three endpoints from Consul');
    for (let i = 0; i < 60; i++) await (await c.request('/')).body.dump();
    for (const s of servers) assert.ok(s.hits > 0, `${s.port} got no traffic`);

    const gone = servers[0]!;
    let failures = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        try {
          await (await c.request('/')).body.dump();
        } catch {
          failures++;
        }
      }
    })();
    await consul!.request({ method: 'PUT', path: `/v1/agent/service/deregister/api-${gone.port}` });
    await until(() => c.stats().endpoints.length === 2, 20_000, 'deregistration seen');
    // A request picked just before the removal may still land (it drains, as it
    // should); after a short settle, no new request may reach the removed instance.
    await new Promise((r) => setTimeout(r, 100));
    const hitsAtRemoval = gone.hits;
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await load;
    assert.equal(failures, 0);
    assert.equal(gone.hits, hitsAtRemoval, 'a removed instance still got traffic');
  });
});
