import assert from 'node:assert/strict';
import Consul from 'consul';
import { ConsulHttpClient } from '@proxyless/core';
import { startConsulAgent, startConsulCluster, type ConsulAgent } from './support/consul.js';
import { queryDns } from './support/dns.js';

interface HealthEntry {
  Service: { ID: string; Service: string; Address: string; Port: number };
  Checks: { Status: string }[];
}

describe('test harness: a real Consul dev agent', function () {
  this.timeout(90_000);
  let agent: ConsulAgent;
  let consul: ConsulHttpClient;

  before(async () => {
    agent = await startConsulAgent();
    consul = new ConsulHttpClient({ address: agent.httpAddr }, {});
  });
  after(async () => {
    await consul.close();
    await agent.stop();
  });

  it('serves a registered, passing instance over the health API and as an SRV record over DNS', async () => {
    // Register through an independent client (the `consul` npm package), not our own code.
    const other = new Consul({ host: '127.0.0.1', port: agent.ports.http });
    // (its type definitions wrongly require `timeout` on every check)
    const registration = {
      name: 'harness-web',
      id: 'harness-web-1',
      address: '127.0.0.7',
      port: 8123,
      check: { name: 'ttl', ttl: '30s', status: 'passing' },
    };
    await other.agent.service.register(registration as never);

    const { body, headers } = await consul.request({ path: '/v1/health/service/harness-web', query: { passing: true } });
    const entries = body as HealthEntry[];
    assert.equal(entries.length, 1);
    assert.equal(entries[0]!.Service.ID, 'harness-web-1');
    assert.equal(entries[0]!.Service.Port, 8123);
    assert.ok(entries[0]!.Checks.every((c) => c.Status === 'passing'));
    assert.ok(Number(headers['x-consul-index']) > 0);

    const answer = await queryDns(agent.dns, 'harness-web.service.consul', 'SRV');
    const srv = answer.answers?.filter((a) => a.type === 'SRV') ?? [];
    assert.equal(srv.length, 1);
    const record = srv[0]!;
    assert.equal(record.type, 'SRV');
    if (record.type === 'SRV') assert.equal(record.data.port, 8123);
    const a = answer.additionals?.find((r) => r.type === 'A');
    assert.equal(a?.type === 'A' ? a.data : undefined, '127.0.0.7');
  });

  it('comes back empty after a restart (a dev agent forgets its registrations)', async () => {
    await consul.request({
      method: 'PUT',
      path: '/v1/agent/service/register',
      body: { Name: 'harness-forget', ID: 'harness-forget-1', Port: 9000, Address: '127.0.0.1' },
    });
    const pidBefore = agent.pid;
    await agent.restart();
    assert.notEqual(agent.pid, pidBefore);
    const { body } = await consul.request({ path: '/v1/health/service/harness-forget' });
    assert.deepEqual(body, []);
  });
});

describe('test harness: a three-server cluster', function () {
  this.timeout(120_000);

  it('elects a leader, and a new one when the leader stops', async () => {
    const cluster = await startConsulCluster(3);
    try {
      const first = await cluster.waitForLeader();
      await first.stop();
      const second = await cluster.waitForLeader();
      assert.notEqual(second.node, first.node);
      assert.equal(cluster.members.filter((m) => m.running).length, 2);
    } finally {
      await cluster.stop();
    }
    assert.equal(cluster.members.filter((m) => m.running).length, 0);
  });
});
