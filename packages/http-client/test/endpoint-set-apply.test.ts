/**
 * The endpoint set applies the watch's diff of a change (computed once by the
 * watch for every subscriber) instead of comparing the whole list again; the
 * client hands it over, and keeps serving its last endpoints against a stale
 * empty answer.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'eventemitter3';
import { StaticResolver, roundRobin, type InstanceDiff, type ServiceInstance } from '@proxyless/core';
import { createClient } from '@proxyless/http-client';
import { EndpointSet } from '../src/endpoints/endpoint-set.js';
import { resolveOptions } from '../src/config/options.js';
import type { ClientEvents } from '../src/shared/events.js';
import { FakeResolver, freePort, instance, ok, startServer, until } from './helpers.js';
import { RequestFailedError, type DiscoveryStale } from '@proxyless/http-client';

const diff = (change: Partial<InstanceDiff>): InstanceDiff => ({ added: [], removed: [], updated: [], ...change });

describe('http-client: the endpoint set applies the watch diff', () => {
  it('added, removed, a changed address (a new endpoint, new pool) and changed data (same endpoint), touching nothing else', async () => {
    const events = new EventEmitter<ClientEvents>();
    const heard: string[] = [];
    events.on('endpointAdded', (e) => heard.push(`+${e.label}`));
    events.on('endpointRemoved', (e) => heard.push(`-${e.label}`));
    const set = new EndpointSet(resolveOptions({ service: 'svc', resolver: new FakeResolver(), logger: false }), roundRobin(), (event, ...args) => {
      (events.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
    });
    try {
      const a = instance(41_001);
      const b: ServiceInstance = Object.freeze({ ...instance(41_002), key: 'node-1/svc-b' });
      const c = instance(41_003);
      set.apply(diff({ added: [a, b, c] }));
      assert.ok(set.hasSnapshot);
      assert.deepEqual([...set.endpoints].map((ep) => ep.info.label), ['127.0.0.1:41001', '127.0.0.1:41002', '127.0.0.1:41003']);
      const [epA, epB, epC] = [...set.endpoints];

      set.apply(diff({ removed: [a] }));
      assert.deepEqual([...set.endpoints], [epB, epC], 'the others are the same endpoints');
      assert.ok(epA!.removed, 'the removed one drains');

      // Same identity (key), new address: a new endpoint with a new pool; the old one drains.
      const moved: ServiceInstance = Object.freeze({ ...b, address: '127.0.0.2' });
      set.apply(diff({ updated: [moved] }));
      const epMoved = [...set.endpoints].find((ep) => ep.instance.key === 'node-1/svc-b')!;
      assert.notEqual(epMoved, epB);
      assert.notEqual(epMoved.pool, epB!.pool);
      assert.ok(epB!.removed);
      assert.equal(epMoved.info.label, '127.0.0.2:41002');

      // Same address, new data (weights): the same endpoint, its instance replaced.
      const heavier: ServiceInstance = Object.freeze({ ...c, weights: { passing: 5, warning: 1 } });
      const picker = set.picker;
      set.apply(diff({ updated: [heavier] }));
      const epHeavier = [...set.endpoints].find((ep) => ep.instance.key === c.key)!;
      assert.equal(epHeavier, epC);
      assert.equal(epHeavier.instance, heavier);
      assert.notEqual(set.picker, picker, 'the picker sees the new weights');

      // Nothing new (an instance added again as it is, a removal of an unknown key): no change at all.
      const unchanged = set.picker;
      set.apply(diff({ added: [heavier], removed: [instance(41_999)] }));
      assert.equal(set.picker, unchanged);
      assert.equal(set.size, 2);

      assert.deepEqual(heard, [
        '+127.0.0.1:41001', '+127.0.0.1:41002', '+127.0.0.1:41003',
        '-127.0.0.1:41001',
        '-127.0.0.1:41002', '+127.0.0.2:41002',
      ]);
    } finally {
      await set.close(0);
    }
  });

  it('a stale empty answer never empties the client: it keeps serving, then follows the next fresh set exactly', async () => {
    const one = await startServer(ok);
    const two = await startServer(ok);
    const resolver = new FakeResolver();
    resolver.set([instance(one.port), instance(two.port)]);
    const client = createClient({ service: 'svc', resolver, logger: false });
    try {
      await until(() => client.stats().endpoints.length === 2, 5000, 'both endpoints');
      resolver.set([], { stale: true });
      await until(() => client.stats().discovery.stale, 5000, 'stale');
      assert.equal(client.stats().endpoints.length, 2, 'the last known endpoints stay');
      assert.equal((await client.text('/')).statusCode, 200);
      resolver.set([instance(two.port)]);
      await until(() => !client.stats().discovery.stale, 5000, 'fresh');
      assert.deepEqual(client.stats().endpoints.map((e) => e.label), [`127.0.0.1:${two.port}`]);
    } finally {
      await client.close();
      await one.close();
      await two.close();
    }
  });

  it('a client created while the watch already has a set is usable at once, then follows the watch exactly (also when the set changes before its greeting)', async () => {
    const one = await startServer(ok);
    const two = await startServer(ok);
    const resolver = new StaticResolver({ services: { svc: [{ address: '127.0.0.1', port: one.port }] } });
    const other = resolver.watch('svc');
    try {
      await other.ready({ timeoutMs: 5000 });
      const client = createClient({ service: 'svc', resolver, logger: false });
      try {
        assert.equal(client.stats().endpoints.length, 1, 'applied from the current snapshot');
        resolver.set('svc', [{ address: '127.0.0.1', port: two.port }]); // before the watch greets the client
        await new Promise((r) => setImmediate(r));
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(client.stats().endpoints.map((e) => e.label), [`127.0.0.1:${two.port}`]);
        assert.equal((await client.text('/')).statusCode, 200);
      } finally {
        await client.close();
      }
    } finally {
      await resolver.close();
      await one.close();
      await two.close();
    }
  });
});

describe('http-client: stale discovery', () => {
  it('says so (event, stats, request errors, pick explanations), keeps serving its endpoints, and says when it ends', async () => {
    const live = await startServer(ok);
    const gone = await freePort(); // an instance that died while the registry could not say so
    const resolver = new FakeResolver();
    resolver.set([instance(live.port), instance(gone)]);
    const client = createClient({ service: 'svc', resolver, logger: false, retry: false });
    const stale: DiscoveryStale[] = [];
    const fresh: [DiscoveryStale, number][] = [];
    client.on('discoveryStale', (s) => stale.push(s));
    client.on('discoveryFresh', (s, ms) => fresh.push([s, ms]));
    client.on('error', () => undefined);
    try {
      await until(() => client.stats().endpoints.length === 2, 5000, 'both endpoints');
      const confirmed = client.stats().discovery.lastConfirmedAt;
      assert.deepEqual({ ...client.stats().discovery, lastConfirmedAt: 0 }, { stale: false, staleSince: undefined, lastConfirmedAt: 0, source: 'fake' });
      const before = Date.now();
      resolver.fail(new Error('registry unreachable'));
      await until(() => stale.length === 1, 5000, 'the discoveryStale event');
      assert.equal(stale[0]!.service, 'svc');
      assert.ok(stale[0]!.since >= before);
      assert.equal(stale[0]!.lastConfirmedAt, confirmed);
      assert.equal(stale[0]!.cause?.message, 'registry unreachable');
      const stats = client.stats().discovery;
      assert.deepEqual([stats.stale, stats.staleSince, stats.lastConfirmedAt], [true, stale[0]!.since, confirmed]);
      assert.equal(client.stats().endpoints.length, 2, 'the last known endpoints keep serving');
      // A request that fails while stale says why the endpoint may be wrong.
      let failed: RequestFailedError | undefined;
      for (let i = 0; i < 6 && failed === undefined; i++) {
        try {
          await client.text({ path: '/', explain: true });
        } catch (error) {
          assert.ok(error instanceof RequestFailedError, String(error));
          failed = error;
        }
      }
      assert.ok(failed, 'a request reached the dead instance');
      assert.equal(failed.discoveryStale, stale[0]);
      assert.match(failed.message, /discovery stale since .*, last confirmed [\d.]+ s ago \(registry unreachable\): the endpoints may be out of date/);
      assert.equal(failed.picks?.[0]?.discoveryStale, true);
      const served = await client.text({ path: '/', explain: true }).catch(() => client.text({ path: '/', explain: true }));
      assert.equal(served.picks?.[0]?.discoveryStale, true);

      resolver.set([instance(live.port)]);
      await until(() => fresh.length === 1, 5000, 'the discoveryFresh event');
      assert.equal(fresh[0]![0], stale[0]);
      assert.ok(fresh[0]![1] >= 0);
      assert.equal(client.stats().discovery.stale, false);
      assert.equal(client.stats().discovery.staleSince, undefined);
      const again = await client.text({ path: '/', explain: true });
      assert.equal(again.picks?.[0]?.discoveryStale, false);
      assert.equal(stale.length, 1, 'one event per stale period');
    } finally {
      await client.close();
      await live.close();
    }
  });
});
