import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  BadResponseError,
  ConsulResolver,
  DnsSrvResolver,
  FallbackResolver,
  InvalidOptionError,
  InvalidServiceNameError,
  NoHealthyInstancesError,
  ResolutionFailedError,
  StaticResolver,
  createServiceInstance,
  decodeAddrTarget,
  diffInstances,
  isProxylessError,
  orderSrvRecords,
  type ServiceInstance,
  type ServiceSnapshot,
  type InstanceDiff,
} from '@proxyless/core';
import { mapHealthEntries, consulInfo } from '../src/resolver-consul.js';
import { TtlCache, validateDnsName } from '../src/resolver-dns-srv.js';
import { decodeDnsMessage, matchesQuery } from '../src/dns-transport.js';
import { until } from '../../../test/support/wait.js';

function instance(port: number, extra: Partial<Parameters<typeof createServiceInstance>[0]> = {}): ServiceInstance {
  return createServiceInstance({ service: 'web', address: '10.0.0.1', port, ...extra });
}

describe('createServiceInstance', () => {
  it('returns a frozen instance with defaults', () => {
    const i = instance(80, { meta: { zone: 'a' } });
    assert.ok(Object.isFrozen(i) && Object.isFrozen(i.tags) && Object.isFrozen(i.meta) && Object.isFrozen(i.weights));
    assert.equal(i.key, '10.0.0.1:80');
    assert.equal(i.zone, 'a');
    assert.deepEqual(i.weights, { passing: 1, warning: 1 });
    assert.equal(i.health, 'passing');
  });

  it('rejects absurd ports, unusable addresses and bad weights with a typed error naming the field', () => {
    for (const port of [0, -1, 65536, 1.5, Number.NaN]) {
      assert.throws(() => instance(port), (e: unknown) => e instanceof InvalidOptionError && e.option === 'instance.port');
    }
    for (const address of ['', '0.0.0.0', '::', 'bad host', 'a/b', '999.1.1.1']) {
      assert.throws(() => createServiceInstance({ service: 'web', address, port: 1 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'instance.address');
    }
    assert.throws(() => instance(1, { weights: { passing: -1, warning: 0 } }), InvalidOptionError);
  });
});

describe('diffInstances', () => {
  it('reports added, removed and updated by key, ignoring order', () => {
    const a = instance(1);
    const b = instance(2);
    const c = instance(3);
    const b2 = instance(2, { tags: ['v2'] });
    const diff = diffInstances([a, b], [c, b2]);
    assert.deepEqual(diff.added, [c]);
    assert.deepEqual(diff.removed, [a]);
    assert.deepEqual(diff.updated, [b2]);
    const same = diffInstances([a, b], [instance(2), instance(1)]);
    assert.equal(same.added.length + same.removed.length + same.updated.length, 0);
  });

  it('sees a change in meta or weights as an update', () => {
    assert.equal(diffInstances([instance(1, { meta: { a: '1' } })], [instance(1, { meta: { a: '2' } })]).updated.length, 1);
    assert.equal(diffInstances([instance(1)], [instance(1, { weights: { passing: 5, warning: 1 } })]).updated.length, 1);
  });
});

describe('mapping Consul health entries', () => {
  const entry = (overrides: Record<string, unknown> = {}, svc: Record<string, unknown> = {}): unknown => ({
    Node: { Node: 'n1', Address: '10.1.1.1', Datacenter: 'dc1' },
    Service: { ID: 'web-1', Service: 'web', Address: '10.2.2.2', Port: 8080, Tags: ['a'], Meta: { zone: 'z1' }, Weights: { Passing: 3, Warning: 1 }, ...svc },
    Checks: [{ Status: 'passing' }],
    ...overrides,
  });

  it('maps a well-formed entry', () => {
    const { instances } = mapHealthEntries([entry()], 'web');
    assert.equal(instances.length, 1);
    const i = instances[0]!;
    assert.equal(i.key, 'n1/web-1');
    assert.equal(i.address, '10.2.2.2');
    assert.equal(i.datacenter, 'dc1');
    assert.equal(i.zone, 'z1');
    assert.deepEqual(i.weights, { passing: 3, warning: 1 });
  });

  it('uses Node.Address when Service.Address is empty', () => {
    assert.equal(mapHealthEntries([entry({}, { Address: '' })], 'web').instances[0]?.address, '10.1.1.1');
  });

  it('drops entries with absurd ports, another service name, bad shapes or unhealthy checks', () => {
    const body = [
      entry({}, { Port: 70000 }),
      entry({}, { Port: '80' }),
      entry({}, { Service: 'db' }),
      entry({}, { Tags: [1] }),
      entry({ Checks: [{ Status: 'critical' }] }),
      entry({ Node: null }),
      entry({}, { Address: '', ID: 'x' }),
      null,
      'x',
    ];
    (body[6] as { Node: { Address: string } }).Node.Address = '';
    const { instances, dropped } = mapHealthEntries(body, 'web');
    assert.equal(instances.length, 0);
    assert.equal(dropped, body.length);
  });

  it('keeps warning instances when not passing-only, with their health', () => {
    const { instances } = mapHealthEntries([entry({ Checks: [{ Status: 'passing' }, { Status: 'warning' }] })], 'web', false);
    assert.equal(instances[0]?.health, 'warning');
  });

  it('throws a typed BadResponseError when the body is not an array', () => {
    for (const body of [{}, 'x', null, 1]) assert.throws(() => mapHealthEntries(body, 'web'), BadResponseError);
  });

  it('never crashes on random JSON: a typed error or valid instances only', () => {
    const anyEntry = fc.record({
      Node: fc.oneof(fc.anything(), fc.record({ Node: fc.oneof(fc.string(), fc.anything()), Address: fc.oneof(fc.ipV4(), fc.string(), fc.anything()) })),
      Service: fc.oneof(
        fc.anything(),
        fc.record({
          ID: fc.oneof(fc.string(), fc.anything()),
          Service: fc.constantFrom('web', 'db', ''),
          Address: fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain(), fc.string(), fc.anything()),
          Port: fc.oneof(fc.integer({ min: -10, max: 70000 }), fc.double(), fc.anything()),
          Tags: fc.oneof(fc.array(fc.string()), fc.anything()),
          Meta: fc.oneof(fc.dictionary(fc.string(), fc.string()), fc.anything()),
          Weights: fc.oneof(fc.record({ Passing: fc.integer({ min: -5, max: 100000 }), Warning: fc.integer({ min: -5, max: 10 }) }), fc.anything()),
        }),
      ),
      Checks: fc.oneof(fc.array(fc.record({ Status: fc.constantFrom('passing', 'warning', 'critical', 'x') })), fc.anything()),
    });
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.array(anyEntry), fc.array(fc.anything())), (body) => {
        try {
          const { instances } = mapHealthEntries(body, 'web');
          for (const i of instances) {
            assert.ok(Object.isFrozen(i));
            assert.equal(i.service, 'web');
            assert.ok(Number.isInteger(i.port) && i.port >= 1 && i.port <= 65535);
            assert.ok(typeof i.address === 'string' && i.address.length > 0);
            assert.equal(i.health, 'passing');
          }
          assert.equal(new Set(instances.map((i) => i.key)).size, instances.length);
        } catch (error) {
          assert.ok(error instanceof BadResponseError, String(error));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('reads consistency headers into snapshot info', () => {
    const info = consulInfo({ 'x-consul-index': '42', 'x-consul-knownleader': 'false', 'x-consul-lastcontact': '120', 'x-cache': 'HIT', age: '3' });
    assert.deepEqual(info, { index: 42, indexValid: true, knownLeader: false, lastContactMs: 120, cacheHit: true, cacheAgeSeconds: 3 });
    for (const garbage of ['-5', 'abc', '1e3', '', '1, 2']) assert.deepEqual([consulInfo({ 'x-consul-index': garbage }).index, consulInfo({ 'x-consul-index': garbage }).indexValid], [0, false]);
    // Garbage in the other headers is ignored, never guessed at.
    assert.deepEqual(consulInfo({ 'x-consul-index': '7', 'x-consul-knownleader': 'yes', 'x-consul-lastcontact': '-1', 'x-cache': 'maybe' }), { index: 7, indexValid: true });
  });
});

describe('validation of names and options', () => {
  it('rejects service names, tags and datacenters that could inject a path, parameter or label', async () => {
    const consul = new ConsulResolver({ address: '127.0.0.1:1' }, );
    try {
      for (const bad of ['', 'a/b', '../x', 'web?x=1', 'a.b', 'web%2f', 'x'.repeat(64), 'a b']) {
        assert.throws(() => consul.watch(bad), (e: unknown) => e instanceof InvalidServiceNameError && e.value === bad);
        await assert.rejects(consul.resolve(bad), InvalidServiceNameError);
      }
      assert.throws(() => consul.watch('web', { tags: ['a b'] }), InvalidServiceNameError);
      assert.throws(() => consul.watch('web', { datacenter: 'dc1&x=y' }), InvalidServiceNameError);
      assert.throws(() => consul.watch('web', { filter: 'a\nb' }), InvalidOptionError);
      assert.throws(() => consul.watch('web', { consistency: 'consistent', cached: true }), InvalidOptionError);
      assert.throws(() => new ConsulResolver({ waitMs: 10 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'waitMs');
      assert.throws(() => new ConsulResolver({ backoff: { initialMs: 0 } }), InvalidOptionError);
    } finally {
      await consul.close();
    }
    const dns = new DnsSrvResolver({ servers: ['127.0.0.1:1'] });
    try {
      assert.throws(() => dns.watch('web', { tags: ['a.b'] }), InvalidServiceNameError);
      assert.throws(() => dns.watch('web', { tags: ['a', 'b'] }), InvalidOptionError);
      assert.throws(() => dns.watch('web', { name: '_web._tcp.exa mple.com' }), InvalidServiceNameError);
      assert.equal(dns.srvName('web', { tags: ['v2'], datacenter: 'dc1' }), 'v2.web.service.dc1.consul');
      assert.equal(dns.srvName('web', { name: '_web._tcp.example.com.' }), '_web._tcp.example.com');
    } finally {
      await dns.close();
    }
    assert.throws(() => new DnsSrvResolver({ servers: ['localhost:53'] }), InvalidOptionError);
    assert.throws(() => new DnsSrvResolver({ minTtlMs: 10, maxTtlMs: 5 }), InvalidOptionError);
    assert.equal(new DnsSrvResolver({ style: 'rfc2782' }).srvName('web'), '_web._tcp.service.consul');
    assert.throws(() => validateDnsName('a..b'), InvalidServiceNameError);
  });
});

describe('timer-bound options (checkNumber: named, bounded below a Node timer\'s 2^31 ms)', () => {
  it('a raised minTtlMs raises the TTL defaults with it instead of failing on options the user never set', async () => {
    const dns = new DnsSrvResolver({ minTtlMs: 10_000 });
    await dns.close();
    assert.throws(
      () => new DnsSrvResolver({ minTtlMs: 10, maxTtlMs: 5 }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'maxTtlMs' && e.message.includes('must be ≥ minTtlMs (10)'),
    );
  });

  it('rejects waits a Node timer cannot make (it would fire at once), naming the option', async () => {
    const { DnsTransport } = await import('@proxyless/core');
    const named = (option: string) => (e: unknown) => e instanceof InvalidOptionError && e.option === option;
    assert.throws(() => new FallbackResolver({ primary: new StaticResolver(), secondary: new StaticResolver(), primaryTimeoutMs: 3e9 }), named('primaryTimeoutMs'));
    assert.throws(() => new DnsTransport({ timeoutMs: 3e9 }), named('timeoutMs'));
    assert.throws(() => new DnsSrvResolver({ minTtlMs: 3e9 }), named('minTtlMs'));
  });
});

describe('DNS helpers', () => {
  it('decodes Consul .addr. targets: 8 hex digits are IPv4, 32 are IPv6', () => {
    assert.equal(decodeAddrTarget('7f000007.addr.dc1.consul.'), '127.0.0.7');
    assert.equal(decodeAddrTarget('c0a80001.addr.dc1.consul'), '192.168.0.1');
    assert.equal(decodeAddrTarget('20010db8000000000000000000000001.addr.dc1.consul'), '2001:db8::1');
    assert.equal(decodeAddrTarget('7f00007.addr.dc1.consul'), undefined);
    assert.equal(decodeAddrTarget('node1.node.dc1.consul'), undefined);
    assert.equal(decodeAddrTarget('zz000007.addr.dc1.consul'), undefined);
  });

  it('orders SRV records by priority, then weighted random (RFC 2782)', () => {
    const records = [
      { priority: 2, weight: 100, id: 'late' },
      { priority: 1, weight: 30, id: 'a' },
      { priority: 1, weight: 10, id: 'b' },
      { priority: 1, weight: 0, id: 'z' },
    ];
    const firsts = new Map<string, number>();
    const runs = 20_000;
    let seed = 1;
    const random = (): number => {
      seed = (seed * 16807) % 2147483647;
      return (seed - 1) / 2147483646;
    };
    for (let i = 0; i < runs; i++) {
      const ordered = orderSrvRecords(records, random);
      assert.equal(ordered.length, 4);
      assert.equal(ordered[3]!.id, 'late');
      firsts.set(ordered[0]!.id, (firsts.get(ordered[0]!.id) ?? 0) + 1);
    }
    // Weight share of the first pick: a 30/41, b 10/41, z (weight 0) 1/41.
    assert.ok(Math.abs(firsts.get('a')! / runs - 30 / 41) < 0.02, JSON.stringify([...firsts]));
    assert.ok(Math.abs(firsts.get('b')! / runs - 10 / 41) < 0.02, JSON.stringify([...firsts]));
    assert.ok((firsts.get('z') ?? 0) / runs < 0.05);
  });

  it('caches with a TTL floor and ceiling, and NXDOMAIN for the negative TTL', () => {
    let now = 1000;
    const cache = new TtlCache<string>(1000, 60_000, 5000, 3, () => now);
    assert.equal(cache.set('a', 'x', 0), 1000); // Consul's TTL 0 → the floor
    assert.equal(cache.set('b', 'y', 3600), 60_000); // ceiling
    assert.equal(cache.set('c', 'z', 10), 10_000);
    now += 999;
    assert.equal(cache.get('a')?.value, 'x');
    now += 1;
    assert.equal(cache.get('a'), undefined);
    assert.equal(cache.setNegative('n', 'none', 0), 1000);
    assert.equal(cache.setNegative('m', 'none', 3600), 5000);
    assert.equal(cache.get('m')?.negative, true);
    // maxEntries = 3: the oldest went.
    assert.equal(cache.get('b'), undefined);
  });

  it('never throws untyped on random bytes fed to the decoder', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        try {
          const packet = decodeDnsMessage(Buffer.from(bytes));
          matchesQuery(packet, 1, 'web.service.consul', 'SRV');
        } catch (error) {
          assert.ok(error instanceof BadResponseError, String(error));
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('rejects a compression loop and a truncated packet with a typed error', () => {
    // Header (1 question) then a name that points at itself: offset 12 → 0xc00c.
    const loop = Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 33, 0, 1]);
    assert.throws(() => decodeDnsMessage(loop), BadResponseError);
    const truncated = Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 3, 0x77, 0x65]);
    assert.throws(() => decodeDnsMessage(truncated), BadResponseError);
  });
});

describe('shared watches (StaticResolver)', () => {
  it('delivers the current snapshot to a new subscriber asynchronously, never from watch()', async () => {
    const resolver = new StaticResolver({ services: { web: [{ address: '10.0.0.1', port: 80 }] } });
    try {
      const first = resolver.watch('web');
      await first.ready({ timeoutMs: 5000 });
      const events: InstanceDiff[] = [];
      const second = resolver.watch('web');
      second.on('update', (_s, change) => events.push(change));
      assert.equal(events.length, 0);
      await until('one event', () => events.length === 1, 5000);
      assert.equal(events[0]!.added.length, 1);
    } finally {
      await resolver.close();
    }
  });

  it('emits only real changes, with what changed', async () => {
    const resolver = new StaticResolver({ services: { web: [{ address: '10.0.0.1', port: 80 }] } });
    try {
      const watch = resolver.watch('web');
      const updates: [ServiceSnapshot, InstanceDiff][] = [];
      watch.on('update', (s, c) => updates.push([s, c]));
      await until('one update', () => updates.length === 1, 5000);
      resolver.set('web', [{ address: '10.0.0.1', port: 80 }]); // same set
      resolver.set('web', [{ address: '10.0.0.1', port: 80 }, { address: '10.0.0.2', port: 80 }]);
      await until('a second update', () => updates.length >= 2, 5000);
      await new Promise((r) => setImmediate(r));
      assert.equal(updates.length, 2);
      assert.deepEqual(updates[1]![1].added.map((i) => i.address), ['10.0.0.2']);
      assert.equal(updates[1]![0].instances.length, 2);
      assert.ok(Object.isFrozen(updates[1]![0]));
    } finally {
      await resolver.close();
    }
  });

  it('computes one diff per change: every subscriber gets the same frozen change object with the snapshot', async () => {
    const resolver = new StaticResolver({ services: { web: [{ address: '10.0.0.1', port: 80 }] } });
    try {
      const watches = [resolver.watch('web'), resolver.watch('web'), resolver.watch('web')];
      const heard = watches.map(() => [] as [ServiceSnapshot, InstanceDiff][]);
      watches.forEach((w, i) => w.on('update', (s, c) => heard[i]!.push([s, c])));
      await until('the first snapshot everywhere', () => heard.every((h) => h.length === 1), 5000);
      resolver.set('web', [{ address: '10.0.0.2', port: 80 }]);
      await until('the change everywhere', () => heard.every((h) => h.length === 2), 5000);
      for (const h of heard) {
        assert.equal(h[0]![1], heard[0]![0]![1], 'one first diff for all');
        assert.equal(h[1]![1], heard[0]![1]![1], 'one diff of the change for all');
        assert.equal(h[1]![0], heard[0]![1]![0], 'one snapshot for all');
      }
      const change = heard[0]![1]![1];
      assert.ok(Object.isFrozen(change));
      assert.deepEqual([change.added.map((i) => i.key), change.removed.map((i) => i.key), change.updated.length], [['10.0.0.2:80'], ['10.0.0.1:80'], 0]);
    } finally {
      await resolver.close();
    }
  });

  it('late joiners share one diff from empty per set (not one per subscriber), whose added list is the snapshot itself', async () => {
    const resolver = new StaticResolver({ services: { web: [{ address: '10.0.0.1', port: 80 }, { address: '10.0.0.2', port: 80 }] } });
    try {
      await resolver.watch('web').ready({ timeoutMs: 5000 });
      const late = [resolver.watch('web'), resolver.watch('web'), resolver.watch('web')];
      const heard: [ServiceSnapshot, InstanceDiff][] = [];
      for (const w of late) w.on('update', (s, c) => heard.push([s, c]));
      await until('three greetings', () => heard.length === 3, 5000);
      const [snapshot, change] = heard[0]!;
      for (const [s, c] of heard) assert.ok(s === snapshot && c === change, 'the same snapshot and change object for every late joiner');
      assert.equal(change.added, snapshot.instances, 'from empty, nothing is copied or compared');
      assert.deepEqual([change.removed.length, change.updated.length], [0, 0]);
    } finally {
      await resolver.close();
    }
  });

  it('a late joiner that hears a newer set before its greeting gets the shared diff from empty of that set', async () => {
    const resolver = new StaticResolver({ services: { web: [{ address: '10.0.0.1', port: 80 }] } });
    try {
      const early = resolver.watch('web');
      await early.ready({ timeoutMs: 5000 });
      const heard: InstanceDiff[] = [];
      early.on('update', (_s, c) => heard.push(c));
      const late = [resolver.watch('web'), resolver.watch('web')];
      const lateHeard: [ServiceSnapshot, InstanceDiff][] = [];
      for (const w of late) w.on('update', (s, c) => lateHeard.push([s, c]));
      resolver.set('web', [{ address: '10.0.0.1', port: 80 }, { address: '10.0.0.3', port: 80 }]); // before their greeting
      await until('both late joiners', () => lateHeard.length === 2, 5000);
      await new Promise((r) => setImmediate(r));
      assert.equal(lateHeard.length, 2, 'no second greeting after the newer set');
      assert.equal(lateHeard[0]![1], lateHeard[1]![1]);
      assert.deepEqual(lateHeard[0]![1].added.map((i) => i.key), ['10.0.0.1:80', '10.0.0.3:80']);
      assert.deepEqual(heard.map((c) => c.added.map((i) => i.key)), [['10.0.0.3:80']], 'the early subscriber hears only what changed');
    } finally {
      await resolver.close();
    }
  });

  it('ready() rejects with ERR_CLOSED when the watch closes first, and close() is idempotent', async () => {
    const resolver = new StaticResolver();
    const watch = resolver.watch('web');
    const ready = watch.ready();
    await watch.close();
    await watch.close();
    await assert.rejects(ready, (e: unknown) => isProxylessError(e, 'ERR_CLOSED'));
    await resolver.close();
    await resolver.close();
    assert.throws(() => resolver.watch('web'), (e: unknown) => isProxylessError(e, 'ERR_CLOSED'));
    await assert.rejects(resolver.resolve('web'), (e: unknown) => isProxylessError(e, 'ERR_CLOSED'));
  });

  it('resolve() throws NoHealthyInstancesError for an empty service', async () => {
    const resolver = new StaticResolver();
    await assert.rejects(resolver.resolve('web'), NoHealthyInstancesError);
    await resolver.close();
  });
});

describe('FallbackResolver', () => {
  it('uses the secondary while the primary fails, and the primary when it answers', async () => {
    const secondary = new StaticResolver({ services: { web: [{ address: '10.9.9.9', port: 80 }] } });
    const primary = new StaticResolver();
    const resolver = new FallbackResolver({ primary, secondary, closeResolvers: true });
    try {
      assert.equal((await resolver.resolve('web'))[0]?.address, '10.9.9.9');
      primary.set('web', [{ address: '10.0.0.1', port: 80 }]);
      assert.equal((await resolver.resolve('web'))[0]?.address, '10.0.0.1');
      primary.set('web', []);
      secondary.set('web', []);
      await assert.rejects(resolver.resolve('web'), NoHealthyInstancesError);
    } finally {
      await resolver.close();
    }
  });

  it('watch: serves the secondary while the primary cannot reach Consul, and reports the primary errors', async () => {
    const consul = new ConsulResolver({ address: '127.0.0.1:1', backoff: { initialMs: 50, maxMs: 100 }, timeoutMs: 1000 });
    const secondary = new StaticResolver({ services: { web: [{ address: '10.9.9.9', port: 80 }] } });
    const resolver = new FallbackResolver({ primary: consul, secondary, closeResolvers: true });
    try {
      const watch = resolver.watch('web');
      const errors: Error[] = [];
      watch.on('error', (e) => errors.push(e));
      const snapshot = await watch.ready({ timeoutMs: 10_000 });
      assert.equal(snapshot.source, 'static');
      assert.equal(snapshot.instances[0]?.address, '10.9.9.9');
      assert.equal(snapshot.stale, false);
      await until('an error', () => errors.length > 0, 10_000);
      assert.ok(errors[0] instanceof ResolutionFailedError);
    } finally {
      await resolver.close();
    }
  });
});

describe('FallbackResolver with a hung primary', () => {
  it('opens the secondary when the primary has not answered within primaryTimeoutMs', async () => {
    const { createServer } = await import('node:net');
    // Accepts connections and never answers: a hung agent, not a refused one.
    const sockets = new Set<import('node:net').Socket>();
    const hung = createServer((socket) => sockets.add(socket));
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const { port } = hung.address() as { port: number };
    const consul = new ConsulResolver({ address: `127.0.0.1:${String(port)}`, env: {}, timeoutMs: 60_000 });
    const secondary = new StaticResolver({ services: { web: [{ address: '10.9.9.9', port: 80 }] } });
    const resolver = new FallbackResolver({ primary: consul, secondary, closeResolvers: true, primaryTimeoutMs: 200 });
    try {
      const started = Date.now();
      const snapshot = await resolver.watch('web').ready({ timeoutMs: 5000 });
      assert.equal(snapshot.source, 'static');
      assert.ok(Date.now() - started < 3000, `took ${String(Date.now() - started)} ms`);
    } finally {
      await resolver.close();
      for (const s of sockets) s.destroy();
      hung.close();
    }
  });

  it('rejects a negative primaryTimeoutMs, naming it', () => {
    assert.throws(
      () => new FallbackResolver({ primary: new StaticResolver(), secondary: new StaticResolver(), primaryTimeoutMs: -1 }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'primaryTimeoutMs',
    );
  });
});

describe('FallbackResolver with a query the secondary cannot honour', () => {
  it('DNS refuses a Consul filter instead of silently widening the set; the fallback reports it and keeps going', async () => {
    const dns = new DnsSrvResolver({ servers: ['127.0.0.1:1'] });
    assert.throws(() => dns.watch('web', { filter: 'Service.Meta.zone == "a"' } as never), (e: unknown) => e instanceof InvalidOptionError && e.option === 'filter');
    const consul = new ConsulResolver({ address: '127.0.0.1:1', backoff: { initialMs: 50, maxMs: 100 }, timeoutMs: 1000 });
    const resolver = new FallbackResolver({ primary: consul, secondary: dns, closeResolvers: true });
    try {
      const watch = resolver.watch('web', { filter: 'Service.Meta.zone == "a"' });
      const errors: Error[] = [];
      watch.on('error', (e) => errors.push(e));
      await until('an InvalidOptionError', () => errors.some((e) => e instanceof InvalidOptionError), 10_000);
      assert.equal(watch.current, undefined);
    } finally {
      await resolver.close();
    }
  });
});

describe('DnsTransport servers', () => {
  it('accepts host:port, [v6]:port and bare IPs, canonicalising IPv6 for source matching', async () => {
    const { DnsTransport } = await import('@proxyless/core');
    const t = new DnsTransport({ servers: ['127.0.0.1:8600', '[0:0::1]:53', '::1', { host: '10.0.0.1' }] });
    assert.deepEqual(t.servers.map((s) => `${s.host}|${s.port}`), ['127.0.0.1|8600', '::1|53', '::1|53', '10.0.0.1|53']);
    assert.throws(() => new DnsTransport({ servers: ['dns.example:53'] }), InvalidOptionError);
    assert.throws(() => new DnsTransport({ servers: ['127.0.0.1:70000'] }), InvalidOptionError);
    assert.throws(() => new DnsTransport({ servers: [] }), InvalidOptionError);
    await t.close();
  });
});
