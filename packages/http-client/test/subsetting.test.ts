import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { StaticResolver, resolveSubset, type Resolver, roundRobin, subsetInstances, InvalidOptionError, type ServiceInstance, type SubsetOptions } from '@proxyless/core';
import { createClient, type ProxylessClient } from '@proxyless/http-client';
import { ok, startServer, until, type TestServer } from './helpers.js';

/** Real servers on loopback ports, each counting the connections it accepted. */
interface Backend extends TestServer {
  connections: number;
}

async function backends(n: number, failing = new Set<number>()): Promise<Backend[]> {
  const out: Backend[] = [];
  for (let i = 0; i < n; i++) {
    const s = (await startServer((req, res, t) => {
      if (failing.has(t.port)) {
        res.statusCode = 500;
        res.end('down');
      } else ok(req, res, t);
    })) as Backend;
    s.connections = 0;
    s.server.on('connection', (_socket: Socket) => s.connections++);
    out.push(s);
  }
  return out;
}

const portsOf = (xs: readonly ServiceInstance[]): number[] => xs.map((x) => x.port).sort((a, b) => a - b);
const reached = (bs: readonly Backend[]): number[] => bs.filter((b) => b.connections > 0).map((b) => b.port).sort((a, b) => a - b);

describe('http-client: subsetting (subset option) over a real resolver and real sockets', () => {
  let servers: Backend[] = [];
  let clients: ProxylessClient[] = [];
  let resolver: StaticResolver;
  const failing = new Set<number>();

  beforeEach(async () => {
    failing.clear();
    servers = await backends(8, failing);
    resolver = new StaticResolver({ services: { svc: servers.map((s) => ({ address: '127.0.0.1', port: s.port })) } });
  });
  afterEach(async () => {
    await Promise.all(clients.map((c) => c.destroy()));
    clients = [];
    await resolver.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  const client = (subset: SubsetOptions, extra: Record<string, unknown> = {}): ProxylessClient => {
    const c = createClient({ service: 'svc', resolver, balancer: roundRobin(), retry: false, breaker: false, logger: false, subset, ...extra });
    clients.push(c);
    return c;
  };
  const expected = async (subset: SubsetOptions, usable?: (i: ServiceInstance) => boolean): Promise<ServiceInstance[]> =>
    subsetInstances(await resolver.resolve('svc'), resolveSubset('subset', subset, () => assert.fail('clientId given')), usable);

  it('rendezvous: connects only to its subset (the one core computes for its client id), and stats say so', async () => {
    const subset = { size: 3, clientId: 'client-a' };
    const c = client(subset);
    for (let i = 0; i < 30; i++) assert.equal((await c.text('/')).statusCode, 200);
    const mine = await expected(subset);
    assert.deepEqual(reached(servers), portsOf(mine), 'no connection outside the subset, every member used');
    assert.deepEqual(c.stats().subset, { mode: 'rendezvous', size: 3, coordinate: undefined, members: 3, backups: 0, candidates: 8, joined: 3, left: 0 });
    assert.equal(c.stats().endpoints.length, 3);
    assert.deepEqual(c.explainConfig().subset, { mode: 'rendezvous', size: 3, clientId: 'client-a', coordinate: undefined, peers: undefined });
  });

  it('aperture: client 1 of 4 holds the 2 instances from ring position ⌊1 × 8 / 4⌋ = 2 of the key-sorted list', async () => {
    const subset = { size: 2, coordinate: { index: 1, count: 4 } };
    const c = client(subset);
    for (let i = 0; i < 20; i++) await c.text('/');
    const ring = [...(await resolver.resolve('svc'))].sort((a, b) => (a.key < b.key ? -1 : 1));
    assert.deepEqual(portsOf(await expected({ ...subset, clientId: 'x' })), portsOf(ring.slice(2, 4)));
    assert.deepEqual(reached(servers), portsOf(ring.slice(2, 4)));
    assert.equal(c.stats().subset?.mode, 'aperture');
  });

  it('aperture from the peers: the coordinate is read from a watch of its own service and follows it as peers join', async () => {
    const peer = (id: string, i: number): { address: string; port: number; id: string } => ({ address: `10.9.0.${i}`, port: 80, id });
    resolver.set('web', ['web-a', 'web-b', 'web-c', 'web-d'].map(peer));
    const c = client({ size: 2, clientId: 'x', peers: { service: 'web', id: 'web-c' } });
    for (let i = 0; i < 20; i++) await c.text('/');
    const ring = [...(await resolver.resolve('svc'))].sort((a, b) => (a.key < b.key ? -1 : 1));
    // web-c is 2 of 4: ring position ⌊2 × 8 / 4⌋ = 4.
    assert.deepEqual(c.stats().subset?.coordinate, { index: 2, count: 4 });
    assert.equal(c.stats().subset?.mode, 'aperture');
    assert.deepEqual(reached(servers), portsOf(ring.slice(4, 6)), 'only its aperture');
    // Two peers join before it: 4 of 6, position ⌊4 × 8 / 6⌋ = 5.
    resolver.set('web', ['web-0', 'web-00', 'web-a', 'web-b', 'web-c', 'web-d'].map(peer));
    await until(() => c.stats().subset?.coordinate?.index === 4, 5_000, 'the new coordinate');
    assert.deepEqual(c.stats().subset?.coordinate, { index: 4, count: 6 });
    const held = (): number[] => c.stats().endpoints.map((e) => Number(e.label.split(':')[1])).sort((a, b) => a - b);
    assert.deepEqual(held(), portsOf(ring.slice(5, 7)));
    assert.deepEqual(c.explainConfig().subset, { mode: 'aperture', size: 2, clientId: 'x', coordinate: undefined, peers: { service: 'web', id: 'web-c' } });
  });

  it('closes the peers watch with the client (nothing left open)', async () => {
    resolver.set('web', [{ address: '10.9.0.1', port: 80, id: 'web-a' }]);
    const opened: string[] = [];
    const closed: string[] = [];
    // The peers' resolver: the real StaticResolver, its watches' close() recorded.
    const peersResolver: Resolver = {
      resolve: (service, options) => resolver.resolve(service, options),
      watch: (service, options) => {
        const w = resolver.watch(service, options);
        opened.push(service);
        const close = w.close.bind(w);
        w.close = async () => {
          closed.push(service);
          await close();
        };
        return w;
      },
      close: async () => undefined,
    };
    const c = client({ size: 2, peers: { service: 'web', id: 'web-a', resolver: peersResolver } });
    await c.text('/');
    assert.deepEqual(c.stats().subset?.coordinate, { index: 0, count: 1 });
    await c.close();
    assert.deepEqual({ opened, closed }, { opened: ['web'], closed: ['web'] });
  });

  it('a member leaving the registry is replaced by exactly one new member; the others keep their endpoints', async () => {
    const subset = { size: 3, clientId: 'client-b' };
    const c = client(subset);
    for (let i = 0; i < 12; i++) await c.text('/');
    const before = await expected(subset);
    const gone = before[0]!;
    const added: number[] = [];
    const removed: number[] = [];
    c.on('endpointAdded', (e) => added.push(Number(e.label.split(':')[1])));
    c.on('endpointRemoved', (e) => removed.push(Number(e.label.split(':')[1])));
    resolver.set('svc', servers.filter((s) => s.port !== gone.port).map((s) => ({ address: '127.0.0.1', port: s.port })));
    await until(() => !c.stats().endpoints.some((e) => e.label.endsWith(`:${gone.port}`)), 5_000, 'the leaver dropped');
    const after = await expected(subset);
    assert.deepEqual(after.filter((x) => x.port !== gone.port).length, 3);
    const newcomer = portsOf(after).filter((p) => !portsOf(before).includes(p));
    assert.equal(newcomer.length, 1, 'one newcomer');
    for (let i = 0; i < 12; i++) await c.text('/');
    assert.deepEqual({ added, removed }, { added: newcomer, removed: [gone.port] }, 'the kept members keep their endpoints (and pools)');
    assert.deepEqual([c.stats().subset?.joined, c.stats().subset?.left], [4, 1], 'stats count the change: 3 first members + 1 newcomer joined, 1 left');
    assert.deepEqual(reached(servers).filter((p) => p !== gone.port), portsOf(after));
  });

  it('an ejected member is backed by the next candidate until it is ready again, so the client never runs out of usable members', async () => {
    const subset = { size: 2, clientId: 'client-c' };
    const mine = await expected(subset);
    failing.add(mine[0]!.port);
    const c = client(subset, { outlierDetection: { consecutiveFailures: 2, baseEjectionTimeMs: 1_500 } });
    for (let i = 0; i < 6; i++) await c.text('/');
    await until(() => c.stats().subset?.backups === 1, 5_000, 'a backup joined');
    const ranked = await expected(subset, (i) => i.port !== mine[0]!.port);
    assert.equal(ranked.length, 3);
    const backup = servers.find((s) => s.port === ranked[2]!.port)!;
    const hits = backup.hits;
    for (let i = 0; i < 10; i++) assert.equal((await c.text('/')).statusCode, 200, 'only usable members now');
    assert.ok(backup.hits - hits >= 4, `the backup serves its share (${backup.hits - hits} of 10)`);
    assert.deepEqual(c.stats().subset, { mode: 'rendezvous', size: 2, coordinate: undefined, members: 3, backups: 1, candidates: 8, joined: 3, left: 0 });
    assert.deepEqual(reached(servers), portsOf(ranked));
    // The member recovers: its ejection ends, it is ready, and its backup leaves.
    failing.delete(mine[0]!.port);
    await until(() => c.stats().subset?.backups === 0, 10_000, 'the backup left');
    assert.deepEqual(c.stats().endpoints.map((e) => Number(e.label.split(':')[1])).sort((a, b) => a - b), portsOf(mine));
    assert.equal(c.stats().subset?.left, 1, 'the backup left');
  });

  it('rejects bad subset options at createClient with InvalidOptionError naming the fix', () => {
    for (const [subset, message] of [
      [{ size: 0 }, /subset\.size.*≥ 1/],
      [{ size: 1.5 }, /subset\.size.*integer/],
      [{ size: 4, coordinate: { index: 4, count: 4 } }, /subset\.coordinate\.index.*< coordinate\.count/],
      [{ sizes: 4 }, /did you mean "size"/],
      [{ size: 4, peers: { service: 'web', id: 'w', resolver: 'consul' } }, /subset\.peers\.resolver.*must implement Resolver/],
      [{ size: 4, peers: { service: 'web', id: 'w' }, coordinate: { index: 0, count: 2 } }, /subset\.peers.*alternatives/],
    ] as const) {
      assert.throws(() => createClient({ service: 'svc', resolver, subset: subset as SubsetOptions }), (e: unknown) => e instanceof InvalidOptionError && message.test(e.message));
    }
  });
});
