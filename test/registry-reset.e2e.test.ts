/**
 * Registry resets under load: a real etcd wiped, a real Consul dev agent
 * restarted (it comes back empty), while three live registrars heartbeat and
 * a balancing client sends requests. The client must lose nothing while the
 * registrars register again; an empty answer from a registry that did not
 * reset is still believed at once. And a Consul agent that freezes (SIGSTOP)
 * under a long poll is noticed within the watch's idle bound.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConsulHttpClient, ConsulResolver, isProxylessError, type CatalogWatch, type Resolver, type ServiceSnapshot } from '@proxyless/core';
import { EtcdResolver, etcdRegistry } from '@proxyless/etcd';
import { createClient, type DiscoveryStale } from '@proxyless/http-client';
import { Registrar, consulRegistry, type RegistrarOptions } from '@proxyless/registrar';
import { startAndTimeFirstAnswer } from './support/agent-back.js';
import { startConsulAgent, type ConsulAgent } from './support/consul.js';
import { startEtcd } from './support/etcd.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';
import { until, untilSnapshot } from './support/wait.js';

const TTL_MS = 3000;
const HEARTBEAT_MS = 1000;
/** The rule under test: the grace is the registrations' TTL. */
const GRACE_MS = TTL_MS;

async function backend(): Promise<Server> {
  const server = createServer((_req, res) => res.end('ok'));
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

const portOf = (server: Server): number => (server.address() as AddressInfo).port;

/** A bounded GET loop through the balancing client: `workers` in parallel, each pausing `pauseMs` between calls. */
function startLoad(request: () => Promise<void>, workers = 4, pauseMs = 5, max = 100_000) {
  let stopped = false;
  let ok = 0;
  const failures = new Map<string, number>();
  const worker = async (): Promise<void> => {
    while (!stopped && ok + [...failures.values()].reduce((a, b) => a + b, 0) < max) {
      try {
        await request();
        ok++;
      } catch (error) {
        const code = (error as { code?: string }).code ?? String(error);
        failures.set(code, (failures.get(code) ?? 0) + 1);
      }
      await sleep(pauseMs);
    }
  };
  const running = Promise.all(Array.from({ length: workers }, worker));
  return {
    async stop(): Promise<{ ok: number; failed: number; failures: Map<string, number> }> {
      stopped = true;
      await running;
      return { ok, failed: [...failures.values()].reduce((a, b) => a + b, 0), failures };
    },
  };
}

/**
 * Three live registrars, a balancing client under load, and `resets` registry
 * resets; returns what was measured.
 */
async function resetsUnderLoad(options: {
  service: string;
  resolver: Resolver;
  /** The service-list watch (the gateway's view). */
  catalog: () => CatalogWatch;
  registry: Pick<RegistrarOptions, 'registry'>;
  /** Resets the registry; resolves with the performance.now() at which it answers again. */
  reset: () => Promise<number>;
  resets: number;
}) {
  const servers = await Promise.all([backend(), backend(), backend()]);
  const registrars = servers.map((server, i) => {
    const registrar = new Registrar({
      name: options.service, id: `${options.service}-${i}`, port: portOf(server), address: '127.0.0.1',
      ttlMs: TTL_MS, heartbeatIntervalMs: HEARTBEAT_MS, logger: false, ...options.registry,
    });
    registrar.on('error', () => undefined);
    return registrar;
  });
  const client = createClient({ service: options.service, resolver: options.resolver, timeoutMs: 2000 });
  // The client's own view of each reset: stale while the registry is away or held in its grace, then fresh.
  const clientStale = { started: 0, ended: 0, longestMs: 0 };
  client.on('discoveryStale', () => clientStale.started++);
  client.on('discoveryFresh', (_s, ms) => {
    clientStale.ended++;
    clientStale.longestMs = Math.max(clientStale.longestMs, ms);
  });
  client.on('error', () => undefined);
  const watch = options.resolver.watch(options.service);
  // Every fresh snapshot with fewer than the three live instances is a wrong answer published as the truth.
  const shrunk: number[] = [];
  let recording = false;
  watch.on('update', (s) => {
    if (recording && !s.stale && s.instances.length < 3) shrunk.push(s.instances.length);
  });
  watch.on('error', () => undefined);
  // The gateway's view: the service list must not lose the service either.
  const catalog = options.catalog();
  catalog.on('error', () => undefined);
  let unlisted = 0;
  catalog.on('update', (services) => {
    if (recording && !services.has(options.service)) unlisted++;
  });
  let load: ReturnType<typeof startLoad> | undefined;
  try {
    await Promise.all(registrars.map((r) => r.start({ timeoutMs: 20_000 })));
    await untilSnapshot(watch, (s) => !s.stale && s.instances.length === 3, 20_000, 'the three instances');
    const listedBy = Date.now() + 10_000;
    while (!catalog.services?.has(options.service) && Date.now() < listedBy) await sleep(20);
    assert.ok(catalog.services?.has(options.service), 'the service is listed');
    recording = true;
    load = startLoad(async () => {
      const res = await client.request('/');
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    });
    await sleep(300);
    const backToFull: number[] = [];
    for (let i = 0; i < options.resets; i++) {
      const backAt = await options.reset();
      await untilSnapshot(watch, (s) => !s.stale && s.instances.length === 3, GRACE_MS + 10_000, 'the three instances fresh again');
      backToFull.push(Math.round(performance.now() - backAt));
      await sleep(300);
    }
    const result = await load.stop();
    load = undefined;
    recording = false;
    await until('the client fresh again', () => !client.stats().discovery.stale, 5000);
    const staleAtEnd = client.stats().discovery.stale;
    // Control: the registrars leave, the registry did not reset: the empty set is believed at once.
    const leftAt = performance.now();
    await Promise.all(registrars.map((r) => r.close({ timeoutMs: 5000 })));
    const empty = await untilSnapshot(watch, (s) => s.instances.length === 0, GRACE_MS, 'an empty fresh set');
    const emptyAfter = Math.round(performance.now() - leftAt);
    return { ...result, shrunk, unlisted, backToFull, emptyAfter, emptyStale: empty.stale, clientStale, staleAtEnd };
  } finally {
    await load?.stop();
    await watch.close();
    await catalog.close();
    await client.close();
    await Promise.all(registrars.map((r) => r.close({ timeoutMs: 3000 }).catch(() => undefined)));
    for (const server of servers) server.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

function report(what: string, r: Awaited<ReturnType<typeof resetsUnderLoad>>): void {
  console.log(`      [measure] ${what}: ${r.ok} GETs ok, ${r.failed} failed ${JSON.stringify([...r.failures])}; fresh smaller sets published: ${r.shrunk.length}; service unlisted: ${r.unlisted}×; ` +
    `registry back → fresh full set: ${r.backToFull.join(', ')} ms (grace ${GRACE_MS} ms); deregistered → empty believed after ${r.emptyAfter} ms; ` +
    `client discoveryStale ${r.clientStale.started}×, discoveryFresh ${r.clientStale.ended}× (longest ${r.clientStale.longestMs} ms)`);
}

/** Each reset made the client's discovery stale (it said so), and every stale period ended. */
function assertClientSawStale(r: Awaited<ReturnType<typeof resetsUnderLoad>>, resets: number): void {
  assert.ok(r.clientStale.started >= resets, `the client said discovery was stale ${r.clientStale.started}× over ${resets} resets`);
  assert.equal(r.clientStale.ended, r.clientStale.started, 'every stale period ended with discoveryFresh');
  assert.equal(r.staleAtEnd, false);
}

describe('registry resets under load, three live registrars', function () {
  this.timeout(180_000);

  it('etcd wiped three times: no request fails, no smaller set is published as fresh, the full set is fresh again within the grace', async () => {
    const etcd = await startEtcd();
    const resolver = new EtcdResolver({ endpoints: etcd.clientUrl, timeoutMs: 1000, backoff: { initialMs: 20, maxMs: 200 }, resetGraceMs: GRACE_MS });
    try {
      const result = await resetsUnderLoad({
        service: 'wiped',
        resolver,
        catalog: () => resolver.watchServices(),
        registry: { registry: etcdRegistry({ endpoints: etcd.clientUrl, timeoutMs: 1000 }) },
        reset: async () => {
          await etcd.wipe();
          return performance.now();
        },
        resets: 3,
      });
      report('etcd wiped ×3', result);
      assert.equal(result.failed, 0, `failed requests: ${JSON.stringify([...result.failures])}`);
      assert.deepEqual(result.shrunk, [], 'a smaller set was published as fresh');
      assert.equal(result.unlisted, 0, 'the service list lost the service');
      assert.ok(result.ok > 100, `only ${result.ok} requests went out`);
      for (const ms of result.backToFull) assert.ok(ms <= GRACE_MS, `full set fresh again ${ms} ms after etcd was back`);
      assert.equal(result.emptyStale, false);
      assert.ok(result.emptyAfter < GRACE_MS, `the empty set took ${result.emptyAfter} ms`);
      assertClientSawStale(result, 3);
    } finally {
      await resolver.close();
      await etcd.close();
    }
  });

  it('Consul dev agent restarted (empty) twice: no request fails, no smaller set is published as fresh, the full set is fresh again within the grace', async () => {
    const agent = await startConsulAgent();
    const resolver = new ConsulResolver({ address: agent.httpAddr, backoff: { initialMs: 20, maxMs: 200 }, probeMaxMs: 100, resetGraceMs: GRACE_MS });
    try {
      const result = await resetsUnderLoad({
        service: 'restarted',
        resolver,
        // Polled as often as the health watch, so a list without the service would be seen.
        catalog: () => resolver.watchServices({ rateLimit: { burst: 20, minIntervalMs: 20, jitterMs: 5 } }),
        registry: { registry: consulRegistry({ address: agent.httpAddr }) },
        reset: async () => {
          await agent.stop();
          return startAndTimeFirstAnswer(agent, '/v1/catalog/services');
        },
        resets: 2,
      });
      report('Consul agent restarted ×2', result);
      assert.equal(result.failed, 0, `failed requests: ${JSON.stringify([...result.failures])}`);
      assert.deepEqual(result.shrunk, [], 'a smaller set was published as fresh');
      assert.equal(result.unlisted, 0, 'the service list lost the service');
      assert.ok(result.ok > 100, `only ${result.ok} requests went out`);
      for (const ms of result.backToFull) assert.ok(ms <= GRACE_MS, `full set fresh again ${ms} ms after the agent was back`);
      assert.equal(result.emptyStale, false);
      assert.ok(result.emptyAfter < GRACE_MS, `the empty set took ${result.emptyAfter} ms`);
      assertClientSawStale(result, 2);
    } finally {
      await resolver.close();
      await agent.stop();
    }
  });
});

describe('a Consul agent that goes silent under a long poll', function () {
  this.timeout(60_000);
  let agent: ConsulAgent;
  before(async () => {
    agent = await startConsulAgent();
  });
  after(async () => {
    if (agent.pid !== undefined) process.kill(agent.pid, 'SIGCONT');
    await agent.stop();
  });

  it('frozen (SIGSTOP): the snapshot is stale within watchIdleMs + the check deadline; fresh again once it answers (SIGCONT)', async () => {
    const admin = new ConsulHttpClient({ address: agent.httpAddr }, {});
    await admin.request({ method: 'PUT', path: '/v1/agent/service/register', body: { ID: 'frozen-1', Name: 'frozen', Address: '127.0.0.1', Port: 9001 } });
    await admin.close();
    const idleMs = 1000;
    const resolver = new ConsulResolver({ address: agent.httpAddr, watchIdleMs: idleMs, backoff: { initialMs: 50, maxMs: 200 } }, );
    const pid = agent.pid;
    assert.ok(pid !== undefined);
    let closeClient = async (): Promise<void> => undefined;
    try {
      const watch = resolver.watch('frozen');
      watch.on('error', () => undefined);
      await untilSnapshot(watch, (s) => !s.stale && s.instances.length === 1, 10_000, 'the instance');
      // The balancing client on the same watch: it must say discovery is stale, and keep its endpoint.
      const client = createClient({ service: 'frozen', resolver, logger: false });
      const staleEvents: DiscoveryStale[] = [];
      const freshEvents: [DiscoveryStale, number][] = [];
      client.on('error', () => undefined);
      let staleSeenAt = 0;
      client.on('discoveryStale', (s) => {
        staleSeenAt = performance.now();
        staleEvents.push(s);
      });
      client.on('discoveryFresh', (s, ms) => freshEvents.push([s, ms]));
      closeClient = () => client.close();
      await sleep(50);
      assert.deepEqual([client.stats().discovery.stale, client.stats().endpoints.length], [false, 1]);
      await sleep(300); // the watch is now in its long poll (wait 60 s by default)
      process.kill(pid, 'SIGSTOP');
      const frozenAt = performance.now();
      let stale: ServiceSnapshot;
      try {
        stale = await untilSnapshot(watch, (s) => s.stale, 15_000, 'a stale snapshot');
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      const noticed = Math.round(performance.now() - frozenAt);
      const resumedAt = performance.now();
      assert.equal(stale.instances.length, 1, 'the last good set stays');
      assert.ok(isProxylessError(watch.lastError, 'ERR_RESOLUTION_FAILED'), String(watch.lastError));
      assert.equal(staleEvents.length, 1, 'the client said discovery is stale');
      assert.equal(staleEvents[0]!.service, 'frozen');
      assert.equal(staleEvents[0]!.lastConfirmedAt, stale.updatedAt);
      assert.ok(isProxylessError(staleEvents[0]!.cause, 'ERR_RESOLUTION_FAILED'), String(staleEvents[0]!.cause));
      const during = client.stats();
      assert.deepEqual([during.discovery.stale, during.discovery.staleSince, during.endpoints.length], [true, staleEvents[0]!.since, 1]);
      await untilSnapshot(watch, (s) => !s.stale && s.instances.length === 1, 15_000, 'a fresh snapshot');
      const fresh = Math.round(performance.now() - resumedAt);
      await until('the client fresh again', () => freshEvents.length === 1, 5000);
      assert.equal(freshEvents[0]![0], staleEvents[0]);
      assert.deepEqual([client.stats().discovery.stale, client.stats().discovery.staleSince, client.stats().endpoints.length], [false, undefined, 1]);
      console.log(`      [measure] client: discoveryStale ${Math.round(staleSeenAt - frozenAt)} ms after the freeze, discoveryFresh after ${freshEvents[0]![1]} ms stale`);
      console.log(`      [measure] Consul agent frozen under a long poll → stale after ${noticed} ms (watchIdleMs ${idleMs}, check deadline ${Math.min(2000, idleMs)} ms); SIGCONT → fresh after ${fresh} ms`);
      // At most watchIdleMs of silence, then the check's deadline; generous margin for a loaded machine.
      assert.ok(noticed <= idleMs + Math.min(2000, idleMs) + 3000, `noticed after ${noticed} ms`);
    } finally {
      await closeClient();
      await resolver.close();
    }
  });
});

describe('a Consul blip is no registry reset (Consul\'s rule: only an index that goes backwards is)', function () {
  this.timeout(90_000);
  /** Long enough that a wrongly held instance is still held when the test looks. */
  const graceMs = 60_000;
  let agent: ConsulAgent;
  let proxy: TcpProxy;
  let admin: ConsulHttpClient;
  const register = (id: string, name: string, port: number): Promise<unknown> =>
    admin.request({ method: 'PUT', path: '/v1/agent/service/register', body: { ID: id, Name: name, Address: '127.0.0.1', Port: port } });
  before(async () => {
    agent = await startConsulAgent();
    admin = new ConsulHttpClient({ address: agent.httpAddr }, {});
  });
  beforeEach(async () => {
    proxy = await startTcpProxy(agent.ports.http);
  });
  afterEach(async () => {
    await proxy.close();
  });
  after(async () => {
    await admin?.close();
    await agent?.stop();
  });

  it('connections refused for ~1 s, an instance and a service deregistered meanwhile: both gone as soon as the agent answers, fresh, nothing held', async () => {
    await register('blip-1', 'blip', 9101);
    await register('blip-2', 'blip', 9102);
    await register('blip-gone-1', 'blip-gone', 9103);
    // Through the proxy, as an application reaches its agent; small backoffs so the return is seen soon.
    const resolver = new ConsulResolver({ address: `127.0.0.1:${proxy.port}`, env: {}, resetGraceMs: graceMs, probeMaxMs: 100, backoff: { initialMs: 20, maxMs: 200 } });
    try {
      const watch = resolver.watch('blip');
      watch.on('error', () => undefined);
      const catalog = resolver.watchServices();
      catalog.on('error', () => undefined);
      await untilSnapshot(watch, (s) => !s.stale && s.instances.length === 2, 10_000, 'both instances');
      await until('blip-gone listed', () => catalog.services?.has('blip-gone') === true, 10_000);
      await sleep(300); // both watches in their long polls
      proxy.cut();
      const cutAt = performance.now();
      await untilSnapshot(watch, (s) => s.stale, 10_000, 'stale while the agent is unreachable');
      // Changes behind the blip, made on the agent itself: real departures, not a reset.
      await admin.request({ method: 'PUT', path: '/v1/agent/service/deregister/blip-2' });
      await admin.request({ method: 'PUT', path: '/v1/agent/service/deregister/blip-gone-1' });
      await sleep(Math.max(0, 1000 - (performance.now() - cutAt)));
      proxy.restore();
      const backAt = performance.now();
      const fresh = await untilSnapshot(watch, (s) => !s.stale, 15_000, 'a fresh snapshot after the blip');
      const freshAfter = Math.round(performance.now() - backAt);
      assert.deepEqual(fresh.instances.map((i) => i.id), ['blip-1'], 'the instance that left during the blip is gone, not held');
      await until('blip-gone unlisted', () => catalog.services?.has('blip-gone') === false, 15_000);
      assert.equal(catalog.stale, false, 'the service list holds nothing');
      console.log(`      [measure] blip of ${Math.round(backAt - cutAt)} ms: fresh ${freshAfter} ms after the agent was reachable again, with the departed instance gone (grace ${graceMs} ms)`);
      await catalog.close();
      await watch.close();
    } finally {
      await resolver.close();
    }
  });

  it('control: the dev agent restarted (its data gone) is still a reset: the instances it lost are held, stale', async () => {
    await register('restart-1', 'restart', 9201);
    const resolver = new ConsulResolver({ address: agent.httpAddr, env: {}, resetGraceMs: graceMs, probeMaxMs: 100, backoff: { initialMs: 20, maxMs: 200 } });
    try {
      const watch = resolver.watch('restart');
      watch.on('error', () => undefined);
      await untilSnapshot(watch, (s) => !s.stale && s.instances.length === 1, 10_000, 'the instance');
      const before = watch.current?.info?.index;
      await agent.restart();
      // The new agent knows nothing; its first answer must not be believed as the truth.
      const seen: ServiceSnapshot[] = [];
      watch.on('update', (s) => seen.push(s));
      await until('an answer from the new agent', () => watch.current?.info?.index !== before && watch.lastError === undefined, 20_000);
      console.log(`      [measure] index before the restart ${String(before)}, after ${String(watch.current?.info?.index)}; snapshots after: ${JSON.stringify(seen.map((s) => [s.instances.length, s.stale]))}`);
      assert.deepEqual(watch.current?.instances.map((i) => i.id), ['restart-1'], 'the instance is held through the reset');
      assert.equal(watch.current?.stale, true);
      assert.ok(!seen.some((s) => !s.stale && s.instances.length === 0), 'an empty set was published as fresh');
      await watch.close();
    } finally {
      await resolver.close();
    }
  });
});
