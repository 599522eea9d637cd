import assert from 'node:assert/strict';
import Consul from 'consul';
import {
  ConsulHttpClient,
  ConsulResolver,
  FallbackResolver,
  DnsSrvResolver,
  NoHealthyInstancesError,
  ResolutionFailedError,
  type ConsulRequest,
  type ConsulResponse,
  type ServiceSnapshot,
  type ServiceWatch,
} from '@proxyless/core';
import { startConsulAgent, type ConsulAgent } from '../../../test/support/consul.js';
import { until } from '../../../test/support/wait.js';

/** Counts health queries, to prove that subscribers share one long poll. */
class CountingClient extends ConsulHttpClient {
  healthRequests = 0;
  override async request(req: ConsulRequest): Promise<ConsulResponse> {
    if (req.path.startsWith('/v1/health/service/')) this.healthRequests++;
    return super.request(req);
  }
}

function addresses(snapshot: ServiceSnapshot | undefined): string[] {
  return (snapshot?.instances ?? []).map((i) => `${i.address}:${i.port}`).sort();
}

describe('ConsulResolver against a real agent', function () {
  this.timeout(120_000);
  let agent: ConsulAgent;
  let other: Consul;
  let serial = 0;

  const register = async (service: string, id: string, port: number, extra: Record<string, unknown> = {}): Promise<void> => {
    await other.agent.service.register({
      name: service,
      id,
      address: '127.0.0.1',
      port,
      check: { name: 'ttl', ttl: '300s', status: 'passing' },
      ...extra,
    } as never);
  };

  before(async () => {
    agent = await startConsulAgent();
    other = new Consul({ host: '127.0.0.1', port: agent.ports.http });
  });
  after(async () => {
    await agent?.stop();
  });

  const fresh = (): string => `svc-${process.pid}-${++serial}`;

  it('reflects register, deregister and a failing TTL check in the watch', async () => {
    const service = fresh();
    const resolver = new ConsulResolver({ address: agent.httpAddr, env: {} });
    try {
      const watch = resolver.watch(service);
      const first = await watch.ready({ timeoutMs: 20_000 });
      assert.deepEqual(first.instances, []);
      assert.equal(first.source, 'consul');

      await register(service, `${service}-1`, 9001);
      await register(service, `${service}-2`, 9002);
      await until('two instances', () => addresses(watch.current).length === 2);

      await other.agent.check.fail(`service:${service}-1`);
      await until('failing instance removed', () => addresses(watch.current).join() === '127.0.0.1:9002');

      await other.agent.check.pass(`service:${service}-1`);
      await until('instance back', () => addresses(watch.current).length === 2);

      await other.agent.service.deregister(`${service}-2`);
      await until('deregistered', () => addresses(watch.current).join() === '127.0.0.1:9001');
      assert.equal(watch.current?.stale, false);
    } finally {
      await resolver.close();
    }
  });

  it('emits each change once, with what changed, and exposes the consistency headers', async () => {
    const service = fresh();
    const resolver = new ConsulResolver({ address: agent.httpAddr, env: {} });
    try {
      const watch = resolver.watch(service);
      const updates: { added: number; removed: number; updated: number }[] = [];
      watch.on('update', (_s, c) => updates.push({ added: c.added.length, removed: c.removed.length, updated: c.updated.length }));
      await watch.ready({ timeoutMs: 20_000 });
      await register(service, `${service}-1`, 9001, { tags: ['a'] });
      await until('added', () => updates.length === 2);
      await register(service, `${service}-1`, 9001, { tags: ['b'] });
      await until('updated', () => updates.length === 3);
      // A write to another service moves the index but not this set: no event.
      await register(fresh(), 'unrelated', 9999);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(updates, [
        { added: 0, removed: 0, updated: 0 },
        { added: 1, removed: 0, updated: 0 },
        { added: 0, removed: 0, updated: 1 },
      ]);
      const info = watch.current?.info;
      // Blocking health queries go through the agent's streaming backend, which always says KnownLeader=false.
      assert.equal(info?.queryBackend, 'streaming');
      assert.equal(typeof info?.knownLeader, 'boolean');
      assert.equal(typeof info?.lastContactMs, 'number');
      assert.ok((info?.index ?? 0) > 0);
    } finally {
      await resolver.close();
    }
  });

  it('filters by tags, filter expression and passing-only', async () => {
    const service = fresh();
    await register(service, `${service}-1`, 9001, { tags: ['v1'], meta: { zone: 'a' } });
    await register(service, `${service}-2`, 9002, { tags: ['v2', 'canary'], meta: { zone: 'b' } });
    await register(service, `${service}-3`, 9003, { tags: ['v2'], meta: { zone: 'b' }, check: { name: 'ttl', ttl: '300s', status: 'warning' } });
    const resolver = new ConsulResolver({ address: agent.httpAddr, env: {} });
    try {
      assert.deepEqual((await resolver.resolve(service, { tags: ['v2'] })).map((i) => i.port), [9002]);
      assert.deepEqual((await resolver.resolve(service, { tags: ['v2', 'canary'] })).map((i) => i.port), [9002]);
      assert.deepEqual((await resolver.resolve(service, { filter: 'Service.Meta.zone == "a"' })).map((i) => i.port), [9001]);
      const all = await resolver.resolve(service, { passingOnly: false, near: true, consistency: 'default' });
      assert.deepEqual(all.map((i) => i.port).sort(), [9001, 9002, 9003]);
      assert.equal(all.find((i) => i.port === 9003)?.health, 'warning');
      assert.equal((await resolver.resolve(service, { cached: true })).length, 2);
      await assert.rejects(resolver.resolve(fresh()), NoHealthyInstancesError);
    } finally {
      await resolver.close();
    }
  });

  it('shares one long poll among many subscribers of the same query, and stops it when the last leaves', async () => {
    const service = fresh();
    await register(service, `${service}-1`, 9001, { tags: ['a', 'b'] });
    const client = new CountingClient({ address: agent.httpAddr }, {});
    const resolver = new ConsulResolver({ client });
    try {
      const watches: ServiceWatch[] = [];
      // Same query spelt differently (tag order, duplicates) is the same watch.
      for (let i = 0; i < 50; i++) watches.push(resolver.watch(service, { tags: i % 2 ? ['a', 'b'] : ['b', 'a', 'a'] }));
      await Promise.all(watches.map((w) => w.ready({ timeoutMs: 20_000 })));
      assert.equal(resolver.activeWatches, 1);
      const before = client.healthRequests;
      await new Promise((r) => setTimeout(r, 1500));
      // One blocking query outstanding; at most the initial one plus the blocking one.
      assert.ok(client.healthRequests <= 2, `requests: ${client.healthRequests}`);
      assert.ok(client.healthRequests - before <= 1);
      await register(service, `${service}-2`, 9002, { tags: ['a', 'b'] });
      await until('all subscribers see the change', () => watches.every((w) => w.current?.instances.length === 2));
      assert.ok(client.healthRequests <= 4, `requests: ${client.healthRequests}`);
      for (const w of watches) await w.close();
      assert.equal(resolver.activeWatches, 0);
      const after = client.healthRequests;
      await register(service, `${service}-3`, 9003);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(client.healthRequests, after);
    } finally {
      await resolver.close();
      assert.equal(client.closed, false); // not ours to close
      await client.close();
    }
  });

  it('close() cancels an in-flight long poll at once', async () => {
    const service = fresh();
    const resolver = new ConsulResolver({ address: agent.httpAddr, env: {}, waitMs: 300_000 });
    const watch = resolver.watch(service);
    await watch.ready({ timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 300)); // now blocked in the 5-minute query
    const started = Date.now();
    await resolver.close();
    await resolver.close();
    assert.ok(Date.now() - started < 1000, `close took ${Date.now() - started} ms`);
    assert.equal(resolver.client.closed, true);
  });

  it('resolve() fails with ERR_RESOLUTION_FAILED (with cause) when Consul is unreachable', async () => {
    const resolver = new ConsulResolver({ address: '127.0.0.1:1', env: {} });
    try {
      await assert.rejects(resolver.resolve('web'), (e: unknown) => e instanceof ResolutionFailedError && (e.cause as { code?: string }).code === 'ERR_CONSUL_UNREACHABLE');
    } finally {
      await resolver.close();
    }
  });
});

describe('ConsulResolver when the agent goes away and comes back', function () {
  this.timeout(180_000);
  let agent: ConsulAgent;

  before(async () => {
    agent = await startConsulAgent();
  });
  after(async () => {
    await agent?.stop();
  });

  it('keeps the last snapshot marked stale while the agent is down, then resumes and converges after a restart that reset the index', async () => {
    const other = new Consul({ host: '127.0.0.1', port: agent.ports.http });
    const register = async (id: string, port: number): Promise<void> => {
      await other.agent.service.register({ name: 'phoenix', id, address: '127.0.0.1', port, check: { name: 'ttl', ttl: '300s', status: 'passing' } } as never);
    };
    // Make the index high, so that the restarted agent's index is lower.
    for (let i = 0; i < 20; i++) await other.kv.set(`bump/${i}`, 'x');
    await register('phoenix-1', 7001);
    const resolver = new ConsulResolver({ address: agent.httpAddr, env: {}, backoff: { initialMs: 100, maxMs: 500 }, waitMs: 30_000 });
    const dns = new DnsSrvResolver({ servers: [`127.0.0.1:${agent.ports.dns}`], timeoutMs: 500, attempts: 1, minTtlMs: 200 });
    const fallback = new FallbackResolver({ primary: new ConsulResolver({ address: agent.httpAddr, env: {}, backoff: { initialMs: 100, maxMs: 500 } }), secondary: dns, closeResolvers: true });
    try {
      const watch = resolver.watch('phoenix');
      const fbWatch = fallback.watch('phoenix');
      const errors: Error[] = [];
      const staleFlags: boolean[] = [];
      watch.on('error', (e) => errors.push(e));
      watch.on('update', (s) => staleFlags.push(s.stale));
      await until('first snapshot', () => watch.current?.instances.length === 1);
      await until('fallback snapshot from consul', () => fbWatch.current?.source === 'consul');
      const indexBefore = watch.current?.info?.index ?? 0;
      const confirmedAt = watch.current!.updatedAt;

      await agent.stop();
      await until('marked stale', () => watch.current?.stale === true);
      // Reported, typed: at least once. While the agent refuses connections the loop waits on the
      // shared reachability probe and reports no more, so a second error comes only if the long poll
      // in flight died another way first (a reset) — a race with the agent's shutdown, not a promise.
      await until('an error reported', () => errors.length >= 1);
      assert.ok(errors.every((e) => e instanceof ResolutionFailedError));
      assert.deepEqual(addresses(watch.current), ['127.0.0.1:7001']);
      assert.equal(watch.current?.updatedAt, confirmedAt); // age grows
      assert.ok(watch.lastError instanceof ResolutionFailedError);
      await until('fallback stale too', () => fbWatch.current?.stale === true);

      await agent.start(); // a dev agent comes back empty
      await until('converged to the empty truth', () => watch.current?.stale === false && watch.current.instances.length === 0, 60_000);
      assert.ok((watch.current?.info?.index ?? 0) < indexBefore, 'the agent index went backwards');
      await register('phoenix-2', 7002);
      await until('re-registered instance seen', () => addresses(watch.current).join() === '127.0.0.1:7002', 30_000);
      assert.equal(watch.lastError, undefined);
      assert.ok(staleFlags.includes(true));
      await until('fallback back on consul', () => fbWatch.current?.source === 'consul' && !fbWatch.current.stale && addresses(fbWatch.current).join() === '127.0.0.1:7002', 30_000);
    } finally {
      await resolver.close();
      await fallback.close();
    }
  });
});
