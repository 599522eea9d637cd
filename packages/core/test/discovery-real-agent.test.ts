/**
 * Discovery where production hurts, against real Consul agents: bursts of
 * changes, an agent outage, lagging or leaderless stale reads (a fault proxy
 * in front of the real agent), a token-echoing stand-in, Enterprise
 * parameters on the wire, the catalog watch, datacenter failover over WAN
 * (client-side, and through a prepared query).
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import {
  BadResponseError,
  ConsulApiError,
  ConsulHttpClient,
  ConsulResolver,
  InvalidOptionError,
  InvalidServiceNameError,
  isProxylessError,
  type ConsulRequest,
  type ConsulResponse,
  type ServiceWatch,
} from '@proxyless/core';
import { startConsulAgent, type ConsulAgent } from '../../../test/support/consul.js';
import { until } from '../../../test/support/wait.js';
import { startAndTimeFirstAnswer } from '../../../test/support/agent-back.js';
import { startFaultProxy, withJsonBody, type FaultProxy } from '../../../test/support/fault-proxy.js';

async function put(agent: ConsulAgent | string, path: string, body?: unknown): Promise<void> {
  const base = typeof agent === 'string' ? agent : agent.httpUrl;
  const res = await fetch(`${base}${path}`, { method: 'PUT', body: body === undefined ? null : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`PUT ${path} answered ${res.status}: ${text}`);
}

const register = (agent: ConsulAgent, service: string, id: string, port: number): Promise<void> =>
  put(agent, '/v1/agent/service/register', { Name: service, ID: id, Address: '127.0.0.1', Port: port, Check: { CheckID: `${id}-ttl`, Name: 'ttl', TTL: '300s', Status: 'passing' } });
const deregister = (agent: ConsulAgent, id: string): Promise<void> => put(agent, `/v1/agent/service/deregister/${encodeURIComponent(id)}`);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

describe('Discovery against a real agent', function () {
  this.timeout(180_000);
  let agent: ConsulAgent;
  let serial = 0;
  const fresh = (): string => `disc-${process.pid}-${++serial}`;

  before(async () => {
    agent = await startConsulAgent();
  });
  after(async () => {
    await agent?.stop();
  });

  it('follows a burst of 200 changes with 0-30 ms gaps: every change reaches the subscriber, p99 < 50 ms from its acknowledgement', async function () {
    // The machine is shared, and CPU starvation delays every process alike. So the watch runs
    // side by side with an ideal loop (re-polls at once after every answer, no rate limit):
    // the rate limit may add less than 40 ms to the p99, always; and when the ideal loop itself
    // shows the machine was not starved (its p99 < 15 ms), the watch's p99 must be < 50 ms.
    // Up to three bursts; the old fixed 100-150 ms sleep fails both checks every time.
    this.timeout(300_000);
    const results: string[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const { watch, ideal } = await measureBurst();
      results.push(`watch p50 ${watch.p50.toFixed(1)} / p99 ${watch.p99.toFixed(1)} / max ${watch.max.toFixed(1)} ms; ideal loop p99 ${ideal.p99.toFixed(1)} ms`);
      process.stderr.write(`      burst ${attempt} of 200 changes, change → event: ${results.at(-1)!}\n`);
      if (watch.p99 - ideal.p99 < 40 && (ideal.p99 >= 15 || watch.p99 < 50)) return;
    }
    assert.fail(`the rate limit added too much: ${results.join('; ')}`);
  });

  interface Percentiles {
    p50: number;
    p99: number;
    max: number;
  }

  async function measureBurst(): Promise<{ watch: Percentiles; ideal: Percentiles }> {
    const service = fresh();
    const resolver = new ConsulResolver({ address: agent.httpAddr, env: {} });
    const seen = new Map<string, number>(); // "+id" / "-id" → performance.now()
    const idealSeen = new Map<string, number>();
    const stopIdeal = new AbortController();
    try {
      const watch = resolver.watch(service);
      watch.on('update', (_snapshot, change) => {
        const now = performance.now();
        for (const i of change.added) if (!seen.has(`+${i.id}`)) seen.set(`+${i.id}`, now);
        for (const i of change.removed) if (!seen.has(`-${i.id}`)) seen.set(`-${i.id}`, now);
      });
      await register(agent, service, `${service}-base`, 9000);
      await until('base instance', () => watch.current?.instances.length === 1);
      const idealLoop = (async () => {
        let index = '1';
        let previous = new Set<string>();
        while (!stopIdeal.signal.aborted) {
          try {
            const res = await fetch(`${agent.httpUrl}/v1/health/service/${service}?passing&stale&index=${index}&wait=60s`, { signal: stopIdeal.signal });
            const body = (await res.json()) as { Service: { ID: string } }[];
            const now = performance.now();
            index = res.headers.get('x-consul-index') ?? index;
            const ids = new Set(body.map((e) => e.Service.ID));
            for (const id of ids) if (!previous.has(id) && !idealSeen.has(`+${id}`)) idealSeen.set(`+${id}`, now);
            for (const id of previous) if (!ids.has(id) && !idealSeen.has(`-${id}`)) idealSeen.set(`-${id}`, now);
            previous = ids;
          } catch {
            return;
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 200));
      const acked = new Map<string, number>();
      for (let i = 0; i < 200; i++) {
        const id = `${service}-${i % 100}`;
        if (i < 100) await register(agent, service, id, 10_000 + i);
        else await deregister(agent, id);
        acked.set(`${i < 100 ? '+' : '-'}${id}`, performance.now());
        await new Promise((r) => setTimeout(r, Math.random() * 30));
      }
      await until('every change seen', () => [...acked.keys()].every((k) => seen.has(k) && idealSeen.has(k)), 30_000);
      stopIdeal.abort();
      await idealLoop;
      assert.deepEqual(watch.current?.instances.map((i) => i.id), [`${service}-base`]);
      const stats = (m: Map<string, number>): Percentiles => {
        const latencies = [...acked].map(([k, at]) => Math.max(0, m.get(k)! - at)).sort((a, b) => a - b);
        return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1)! };
      };
      return { watch: stats(seen), ideal: stats(idealSeen) };
    } finally {
      stopIdeal.abort();
      await resolver.close();
    }
  }

  it('after a 10 s outage of the agent, every watch converges within 1 s of the agent answering again, spread in time (3 runs)', async function () {
    this.timeout(300_000);
    const service = fresh();
    // Separate resolvers stand for separate processes (each has its own client and probe).
    // Nobody registers the instance again here, so the reset grace would hold it: this measures the
    // loop's recovery alone (the grace is shown in test/registry-reset.e2e.test.ts).
    const resolvers = Array.from({ length: 8 }, () => new ConsulResolver({ address: agent.httpAddr, env: {}, resetGraceMs: 0 }));
    try {
      for (let run = 0; run < 3; run++) {
        await register(agent, service, `${service}-1`, 7001);
        const watches = resolvers.map((r) => r.watch(service));
        await until('all see the instance', () => watches.every((w) => w.current?.instances.length === 1 && !w.current.stale));
        await agent.stop();
        await until('all stale', () => watches.every((w) => w.current?.stale === true));
        await new Promise((r) => setTimeout(r, 10_000));
        const converged = new Map<ServiceWatch, number>();
        for (const w of watches) {
          w.on('update', (s) => {
            // A dev agent comes back empty: the (confirmed) empty set is the truth.
            if (!s.stale && s.instances.length === 0 && !converged.has(w)) converged.set(w, performance.now());
          });
        }
        // "Back" = the first moment the agent answers a health read: a fresh probe every
        // 10 ms, not waiting for the previous one (a half-started agent may accept and stall).
        const backAt = await startAndTimeFirstAnswer(agent, `/v1/health/service/${service}?stale`);
        await until('all converged', () => converged.size === watches.length, 30_000);
        const after = [...converged.values()].map((t) => t - backAt).sort((a, b) => a - b);
        process.stderr.write(`      run ${run + 1}: converged ${after.map((t) => t.toFixed(0)).join(', ')} ms after the agent answered again\n`);
        assert.ok(after.at(-1)! <= 1000, `slowest ${after.at(-1)!.toFixed(0)} ms`);
        assert.ok(after.at(-1)! - after[0]! > 20, 'recoveries are spread in time, not in lockstep');
        await Promise.all(watches.map((w) => w.close()));
      }
    } finally {
      await Promise.all(resolvers.map((r) => r.close()));
    }
  });
});

describe('Discovery through a fault proxy in front of a real agent', function () {
  this.timeout(120_000);
  let agent: ConsulAgent;
  let proxy: FaultProxy;
  let serial = 0;
  const fresh = (): string => `lag-${process.pid}-${++serial}`;
  const isStaleRead = (url: string): boolean => /[?&]stale(&|=|$)/.test(url);
  const isHealth = (url: string): boolean => url.startsWith('/v1/health/service/');

  before(async () => {
    agent = await startConsulAgent();
    proxy = await startFaultProxy(agent.httpAddr);
  });
  afterEach(() => {
    proxy.hooks = {};
  });
  after(async () => {
    await proxy?.close();
    await agent?.stop();
  });

  it('a client started through a follower that has not caught up never sees an empty first set (confirmed with a consistent read)', async () => {
    const service = fresh();
    await register(agent, service, `${service}-1`, 7101);
    // The follower's stale reads say "nothing yet", as in the measured failure.
    proxy.hooks.response = (req, res) => (isHealth(req.url) && isStaleRead(req.url) ? withJsonBody(res, []) : undefined);
    const resolver = new ConsulResolver({ address: proxy.addr, env: {} });
    try {
      const watch = resolver.watch(service);
      const sizes: number[] = [];
      watch.on('update', (s) => sizes.push(s.instances.length));
      const first = await watch.ready({ timeoutMs: 10_000 });
      assert.equal(first.instances.length, 1);
      assert.ok(proxy.requests.some((r) => isHealth(r.url) && /[?&]consistent/.test(r.url)));
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(sizes.every((n) => n === 1), `sizes: ${sizes.join(',')}`);
      assert.deepEqual(await resolver.resolve(service), first.instances);
    } finally {
      await resolver.close();
    }
  });

  it('a lagging stale answer (LastContact above maxStaleMs) is replaced by a leader read; a leaderless empty one never empties the set', async () => {
    const service = fresh();
    await register(agent, service, `${service}-1`, 7201);
    const resolver = new ConsulResolver({ address: proxy.addr, env: {}, maxStaleMs: 2000 });
    try {
      const watch = resolver.watch(service);
      await until('instance', () => watch.current?.instances.length === 1);
      // The follower falls 10 s behind and has lost the instance; the leader still has it.
      proxy.hooks.response = (req, res) => {
        if (!isHealth(req.url) || !isStaleRead(req.url)) return undefined;
        return { ...withJsonBody(res, []), headers: { ...res.headers, 'x-consul-lastcontact': '10000' } };
      };
      await register(agent, service, `${service}-2`, 7202); // move the index so the watch gets an answer
      await until('second instance via the leader', () => watch.current?.instances.length === 2);
      assert.equal(watch.current?.stale, false);
      // Now no leader at all: follower answers empty with KnownLeader=false; leader reads fail.
      const errors: Error[] = [];
      watch.on('error', (e) => errors.push(e));
      proxy.hooks.request = (req) => (isHealth(req.url) && !isStaleRead(req.url)
        ? { status: 500, headers: { 'content-type': 'text/plain' }, body: Buffer.from('No cluster leader') }
        : undefined);
      proxy.hooks.response = (req, res) => {
        if (!isHealth(req.url) || !isStaleRead(req.url)) return undefined;
        return { ...withJsonBody(res, []), headers: { ...res.headers, 'x-consul-knownleader': 'false' } };
      };
      await register(agent, service, `${service}-3`, 7203);
      await until('errors reported', () => errors.length >= 2);
      assert.equal(watch.current?.instances.length, 2, 'the set was never emptied');
      assert.ok(errors.every((e) => isProxylessError(e, 'ERR_RESOLUTION_FAILED')));
      // The leader comes back: the watch converges on the truth (3 instances).
      proxy.hooks = {};
      await until('three instances', () => watch.current?.instances.length === 3 && !watch.current.stale, 20_000);
    } finally {
      await resolver.close();
    }
  });

  it('never puts the ACL token into errors, even when the agent (or a proxy) echoes it back', async () => {
    const token = '3f0c1a52-8f6e-4d2b-9c41-7a1e5b2d9e80';
    proxy.hooks.request = (req) => ({
      status: 403,
      headers: { 'content-type': 'text/plain' },
      body: Buffer.from(`Permission denied: token "${String(req.headers['x-consul-token'])}" lacks service:read\nheaders: ${JSON.stringify(req.headers)}\nX-Consul-Token: ${String(req.headers['x-consul-token']).toUpperCase()}`),
    });
    const client = new ConsulHttpClient({ address: proxy.addr, token }, {});
    const resolver = new ConsulResolver({ client, env: {} });
    try {
      const failure = await client.request({ path: '/v1/health/service/web' }).then(() => undefined, (e: unknown) => e);
      assert.ok(failure instanceof ConsulApiError && failure.status === 403);
      const watch = resolver.watch('web');
      const errors: Error[] = [];
      watch.on('error', (e) => errors.push(e));
      await until('watch error', () => errors.length > 0);
      const resolveError = await resolver.resolve('web').then(() => undefined, (e: unknown) => e as Error);
      assert.equal(proxy.requests.at(-1)?.headers['x-consul-token'], token, 'the token was sent (in the header)');
      for (const error of [failure, errors[0]!, resolveError!]) {
        const everything = [String(error), error.message, error.stack ?? '', JSON.stringify(error), String(error.cause), (error.cause as Error | undefined)?.message ?? '', failure.consulMessage];
        for (const text of everything) assert.ok(!text.toLowerCase().includes(token), `token leaked in: ${text}`);
      }
      assert.match(failure.consulMessage, /Permission denied: token "<redacted>"/);
    } finally {
      await resolver.close();
      await client.close();
    }
  });

  it('sends namespace and partition (options or CONSUL_NAMESPACE / CONSUL_PARTITION), validates them, and keeps them in the watch identity', async () => {
    const service = fresh();
    await register(agent, service, `${service}-1`, 7301);
    // Consul's free edition refuses ns/partition: the proxy records them, then strips them.
    proxy.hooks.request = (req) => {
      const [path, query = ''] = req.url.split('?');
      const kept = query.split('&').filter((p) => p !== '' && !/^(ns|partition)=/.test(p));
      return kept.length > 0 ? `${path}?${kept.join('&')}` : path!;
    };
    const resolver = new ConsulResolver({ address: proxy.addr, env: { CONSUL_NAMESPACE: 'team-a', CONSUL_PARTITION: 'part-1' } });
    try {
      const a = resolver.watch(service);
      const b = resolver.watch(service, { namespace: 'team-b' });
      await Promise.all([a.ready({ timeoutMs: 10_000 }), b.ready({ timeoutMs: 10_000 })]);
      assert.equal(resolver.activeWatches, 2, 'namespace is part of the watch identity');
      const urls = proxy.requests.filter((r) => r.url.startsWith(`/v1/health/service/${service}`)).map((r) => r.url);
      assert.ok(urls.some((u) => /[?&]ns=team-a(&|$)/.test(u) && /[?&]partition=part-1(&|$)/.test(u)), urls.join('\n'));
      assert.ok(urls.some((u) => /[?&]ns=team-b(&|$)/.test(u) && /[?&]partition=part-1(&|$)/.test(u)), urls.join('\n'));
      const catalog = resolver.watchServices();
      await catalog.ready({ timeoutMs: 10_000 });
      assert.ok(proxy.requests.some((r) => r.url.startsWith('/v1/catalog/services') && /[?&]ns=team-a(&|$)/.test(r.url)));
      for (const bad of ['', 'a/b', 'x&partition=y', 'a b', '-lead', 'x'.repeat(64)]) {
        assert.throws(() => resolver.watch(service, { namespace: bad }), InvalidServiceNameError);
        assert.throws(() => resolver.watch(service, { partition: bad }), InvalidServiceNameError);
      }
      assert.throws(() => new ConsulResolver({ env: { CONSUL_NAMESPACE: 'a/b' } }), (e: unknown) => e instanceof InvalidServiceNameError && e.option === 'CONSUL_NAMESPACE');
      // Without them configured, nothing is sent (the free edition would answer 400).
      const plain = new ConsulResolver({ address: agent.httpAddr, env: {} });
      try {
        const w = plain.watch(service);
        await w.ready({ timeoutMs: 10_000 });
      } finally {
        await plain.close();
      }
    } finally {
      await resolver.close();
    }
  });

  it('hostile answers (huge body, wrong shape, index going backwards or to 0, garbage headers) give typed errors and keep the last good set', async () => {
    const service = fresh();
    await register(agent, service, `${service}-1`, 7401);
    const resolver = new ConsulResolver({ address: proxy.addr, env: {}, maxResponseBytes: 64 * 1024 });
    try {
      const watch = resolver.watch(service);
      await until('instance', () => watch.current?.instances.length === 1);
      const errors: Error[] = [];
      watch.on('error', (e) => errors.push(e));
      const faults: Array<(res: { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }) => typeof res> = [
        (res) => ({ ...res, body: Buffer.alloc(256 * 1024, 0x20) }),
        (res) => withJsonBody(res, { Node: 'not an array' }),
        (res) => ({ ...res, body: Buffer.from('[{"Node": ') }),
        (res) => ({ ...res, headers: { ...res.headers, 'x-consul-index': 'garbage' } }),
        (res) => ({ ...res, headers: { ...res.headers, 'x-consul-index': undefined } }),
      ];
      let n = 0;
      for (const fault of faults) {
        const before = errors.length;
        proxy.hooks.response = (req, res) => (isHealth(req.url) ? fault(res) : undefined);
        await register(agent, service, `${service}-x${n++}`, 7450 + n);
        await until(`typed error for fault ${n}`, () => errors.length > before);
        assert.ok(watch.current!.instances.length >= 1, 'never an accidental empty set');
        assert.equal(watch.current?.stale, true);
      }
      assert.ok(errors.every((e) => isProxylessError(e, 'ERR_RESOLUTION_FAILED') && isProxylessError(e.cause)), errors.map((e) => e.message).join('\n'));
      // Index to 0 and backwards: no spin (bounded request rate), converges to the truth.
      let index = 0;
      proxy.hooks.response = (req, res) => (isHealth(req.url) ? { ...res, headers: { ...res.headers, 'x-consul-index': String(index++ % 2 === 0 ? 0 : 5) } } : undefined);
      const sent = proxy.requests.length;
      await new Promise((r) => setTimeout(r, 1000));
      const rate = proxy.requests.length - sent;
      // The token bucket: 20 back to back, then one per 20 ms, so at most ~70 in a second (a spin would be thousands).
      assert.ok(rate <= 80, `requests in 1 s with a flapping index: ${rate}`);
      proxy.hooks = {};
      await until('fresh truth', () => watch.current?.stale === false && watch.current.instances.length === 1 + faults.length);
    } finally {
      await resolver.close();
    }
  });

  it('watchServices() follows the catalog: a new service appears, a removed one disappears', async () => {
    const resolver = new ConsulResolver({ address: agent.httpAddr, env: {} });
    try {
      const catalog = resolver.watchServices({ rateLimit: { burst: 2, minIntervalMs: 100 } });
      const initial = await catalog.ready({ timeoutMs: 10_000 });
      assert.ok(initial.has('consul'));
      const service = fresh();
      await register(agent, service, `${service}-1`, 7501);
      await until('new service listed', () => catalog.services?.has(service) === true);
      await deregister(agent, `${service}-1`);
      await until('service gone', () => catalog.services?.has(service) === false);
      await catalog.close();
      await catalog.close();
    } finally {
      await resolver.close();
    }
  });
});

describe('Datacenter failover across two agents joined over WAN (client-side, and through prepared queries)', function () {
  this.timeout(180_000);
  let dc1: ConsulAgent;
  let dc2: ConsulAgent;

  before(async () => {
    [dc1, dc2] = await Promise.all([
      startConsulAgent({ args: ['-datacenter=dc1'] }),
      startConsulAgent({ args: ['-datacenter=dc2'] }),
    ]);
    await put(dc2, `/v1/agent/join/127.0.0.1:${dc1.ports.serfWan}?wan=1`);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const known = (await (await fetch(`${dc1.httpUrl}/v1/catalog/datacenters`)).json()) as string[];
      if (known.includes('dc2')) break;
      if (Date.now() > deadline) throw new Error(`dc1 does not know dc2: ${known.join()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });
  after(async () => {
    await Promise.all([dc1?.stop(), dc2?.stop()]);
  });

  it('serves from dc2 while dc1 has no healthy instance, and comes back to dc1 when it has one again', async () => {
    const service = `dcsvc-${process.pid}`;
    await register(dc2, service, `${service}-dc2`, 8102);
    await register(dc1, service, `${service}-dc1`, 8101);
    const resolver = new ConsulResolver({ address: dc1.httpAddr, env: {} });
    try {
      const watch = resolver.watch(service, { failoverDatacenters: ['dc2'] });
      const served: string[] = [];
      watch.on('update', (s) => served.push(`${s.info?.datacenter}:${s.instances.map((i) => i.id).join()}`));
      await until('local instance', () => watch.current?.info?.datacenter === 'dc1' && watch.current.instances.length === 1);
      await deregister(dc1, `${service}-dc1`);
      await until('failover to dc2', () => watch.current?.info?.datacenter === 'dc2', 20_000);
      assert.deepEqual(watch.current?.instances.map((i) => [i.id, i.datacenter]), [[`${service}-dc2`, 'dc2']]);
      assert.equal(watch.current?.stale, false);
      // resolve() follows the same rule.
      assert.deepEqual((await resolver.resolve(service, { failoverDatacenters: ['dc2'] })).map((i) => i.datacenter), ['dc2']);
      // An instance in dc1 again: failback.
      await register(dc1, service, `${service}-dc1`, 8101);
      await until('failback to dc1', () => watch.current?.info?.datacenter === 'dc1', 20_000);
      assert.deepEqual(watch.current?.instances.map((i) => i.id), [`${service}-dc1`]);
      assert.ok(!served.some((s) => s.endsWith(':')), `never an empty set in between: ${served.join(' | ')}`);
      // Nothing anywhere: the empty set is published as a decision.
      await deregister(dc1, `${service}-dc1`);
      await deregister(dc2, `${service}-dc2`);
      await until('empty everywhere', () => watch.current?.instances.length === 0, 20_000);
    } finally {
      await resolver.close();
    }
  });

  class CountingClient extends ConsulHttpClient {
    requests = 0;
    override async request(req: ConsulRequest): Promise<ConsulResponse> {
      this.requests++;
      return super.request(req);
    }
  }

  async function createQuery(agent: ConsulAgent, definition: unknown): Promise<void> {
    const res = await fetch(`${agent.httpUrl}/v1/query`, { method: 'POST', body: JSON.stringify(definition) });
    assert.equal(res.status, 200, await res.text());
  }

  it('follows the query\'s server-side Failover: dc2 while dc1 has no healthy instance, dc1 again once it has one; one read per interval', async () => {
    const service = `pqsvc-${process.pid}`;
    await register(dc2, service, `${service}-dc2`, 8202);
    await register(dc1, service, `${service}-dc1`, 8201);
    await createQuery(dc1, { Name: `${service}-q`, Service: { Service: service, Failover: { Datacenters: ['dc2'] } } });
    const client = new CountingClient({ address: dc1.httpAddr }, {});
    const resolver = new ConsulResolver({ client, env: {}, preparedQueryIntervalMs: 200 });
    try {
      const watch = resolver.watch(service, { preparedQuery: `${service}-q` });
      const served: string[] = [];
      watch.on('update', (s) => served.push(`${s.info?.datacenter}:${s.instances.map((i) => i.id).join()}`));
      await until('local instance', () => watch.current?.info?.datacenter === 'dc1' && watch.current.instances.length === 1);
      // Prepared queries do not block: the loop polls, one read per 200 ms (+ up to 20 ms jitter), no faster.
      const before = client.requests;
      await new Promise((r) => setTimeout(r, 1000));
      const polls = client.requests - before;
      assert.ok(polls >= 2 && polls <= 6, `${polls} reads in 1 s at a 200 ms interval`);
      await deregister(dc1, `${service}-dc1`);
      await until('failover to dc2', () => watch.current?.info?.datacenter === 'dc2', 20_000);
      assert.deepEqual(watch.current?.instances.map((i) => [i.id, i.datacenter]), [[`${service}-dc2`, 'dc2']]);
      assert.equal(watch.current?.stale, false);
      assert.deepEqual((await resolver.resolve(service, { preparedQuery: `${service}-q` })).map((i) => i.datacenter), ['dc2']);
      await register(dc1, service, `${service}-dc1`, 8201);
      await until('failback to dc1', () => watch.current?.info?.datacenter === 'dc1', 20_000);
      assert.deepEqual(watch.current?.instances.map((i) => i.id), [`${service}-dc1`]);
      assert.ok(!served.some((s) => s.endsWith(':')), `never an empty set in between: ${served.join(' | ')}`);
    } finally {
      await resolver.close();
      await client.close();
    }
  });

  it('an unknown query, or one that serves another service, is a typed error and never a wrong set; options the query defines are refused', async () => {
    const service = `pqbad-${process.pid}`;
    await register(dc1, 'pq-other', 'pq-other-1', 8301);
    await createQuery(dc1, { Name: `${service}-other`, Service: { Service: 'pq-other' } });
    const resolver = new ConsulResolver({ address: dc1.httpAddr, env: {}, preparedQueryIntervalMs: 200 });
    try {
      assert.throws(() => resolver.watch(service, { preparedQuery: `${service}-q`, tags: ['v2'] }), InvalidOptionError);
      assert.throws(() => resolver.watch(service, { preparedQuery: `${service}-q`, failoverDatacenters: ['dc2'] }), InvalidOptionError);
      assert.throws(() => resolver.watch(service, { preparedQuery: '../agent/self' }), InvalidServiceNameError);
      assert.throws(() => new ConsulResolver({ address: dc1.httpAddr, env: {}, preparedQueryIntervalMs: 10 }), InvalidOptionError);
      for (const [name, expected] of [[`${service}-unknown`, ConsulApiError], [`${service}-other`, BadResponseError]] as const) {
        const watch = resolver.watch(service, { preparedQuery: name });
        const errors: Error[] = [];
        watch.on('error', (e) => errors.push(e));
        await until(`an error for ${name}`, () => errors.length > 0);
        assert.ok(errors[0]!.cause instanceof expected, `${name}: ${String(errors[0]!.cause)}`);
        if (errors[0]!.cause instanceof ConsulApiError) assert.equal(errors[0]!.cause.status, 404);
        assert.equal(watch.current, undefined, 'no snapshot published');
        await watch.close();
      }
    } finally {
      await resolver.close();
    }
  });
});

describe('Many watches in one process', function () {
  this.timeout(180_000);

  const catalogRegister = (base: string, service: string, port: number): Promise<void> =>
    put(base, '/v1/catalog/register', { Node: 'many-node', Address: '127.0.0.1', Service: { ID: `${service}-${port}`, Service: service, Port: port } });

  async function registerAll(base: string, services: string[]): Promise<void> {
    for (let i = 0; i < services.length; i += 16) {
      await Promise.all(services.slice(i, i + 16).map((s, j) => catalogRegister(base, s, 20_000 + i + j)));
    }
  }

  it('over HTTPS, 300 watches (more than the 200 connections Consul allows per client) each hold a long poll on HTTP/2 and see a change at once', async () => {
    const { startTlsConsulAgent } = await import('../../../test/support/consul-tls.js');
    const tls = await startTlsConsulAgent();
    const resolver = new ConsulResolver({ address: tls.httpsUrl, tls: { ca: tls.ca }, env: {} });
    try {
      const services = Array.from({ length: 300 }, (_, i) => `many-${i}`);
      await registerAll(tls.agent.httpUrl, services);
      const watches = services.map((s) => resolver.watch(s));
      const errors: Error[] = [];
      for (const w of watches) w.on('error', (e) => errors.push(e));
      await Promise.all(watches.map((w) => w.ready({ timeoutMs: 30_000 })));
      await new Promise((r) => setTimeout(r, 1000)); // every watch is now in its long poll
      for (const i of [0, 150, 299]) {
        const started = performance.now();
        await catalogRegister(tls.agent.httpUrl, services[i]!, 30_000 + i);
        await until(`change of ${services[i]}`, () => watches[i]!.current?.instances.length === 2, 10_000);
        const took = performance.now() - started;
        process.stderr.write(`      ${services[i]}: change seen after ${took.toFixed(0)} ms\n`);
        assert.ok(took < 1500, `took ${took.toFixed(0)} ms: the watch was not holding its own long poll`);
      }
      assert.deepEqual(errors, []);
    } finally {
      await resolver.close();
      await tls.stop();
    }
  });

  it('over HTTP/1.1 with fewer connections than watches, the watches take turns with short waits: no timeouts, every change arrives', async () => {
    const agent = await startConsulAgent();
    const resolver = new ConsulResolver({ address: agent.httpAddr, env: {}, maxConnections: 8 });
    try {
      const services = Array.from({ length: 20 }, (_, i) => `turns-${i}`);
      await registerAll(agent.httpUrl, services);
      const watches = services.map((s) => resolver.watch(s));
      const errors: Error[] = [];
      for (const w of watches) w.on('error', (e) => errors.push(e));
      await Promise.all(watches.map((w) => w.ready({ timeoutMs: 30_000 })));
      await new Promise((r) => setTimeout(r, 1500));
      await Promise.all(services.map((s, i) => catalogRegister(agent.httpUrl, s, 31_000 + i)));
      // 20 watches over 6 long-poll slots with 1 s waits: a few seconds per round.
      await until('every change', () => watches.every((w) => w.current?.instances.length === 2), 20_000);
      assert.deepEqual(errors, []);
    } finally {
      await resolver.close();
      await agent.stop();
    }
  });
});
