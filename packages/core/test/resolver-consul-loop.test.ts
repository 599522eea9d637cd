/**
 * The blocking-query loop rules, against scripted answers a real agent does
 * not give on demand (index 0, an index that jumps backwards, bodies of the
 * wrong shape). The behaviour against the real agent is in resolver-consul.test.ts.
 */
import assert from 'node:assert/strict';
import { BadResponseError, ConsulHttpClient, ConsulResolver, ConsulUnreachableError, ResolutionFailedError, type ConsulRequest, type ConsulResponse } from '@proxyless/core';
import { StallRecorder } from '../../../test/support/stalls.js';
import { until } from '../../../test/support/wait.js';

interface Sent {
  path: string;
  at: number;
  index: string | undefined;
  wait: string | undefined;
  timeoutMs: number | undefined;
  query: ConsulRequest['query'];
}

type Script = (n: number, req: ConsulRequest) => ConsulResponse | Error;

class ScriptedClient extends ConsulHttpClient {
  readonly sent: Sent[] = [];
  constructor(readonly script: Script) {
    super({ address: '127.0.0.1:1' }, {});
  }
  override async request(req: ConsulRequest): Promise<ConsulResponse> {
    const q = req.query ?? {};
    this.sent.push({ at: Date.now(), path: req.path, index: q['index'] as string | undefined, wait: q['wait'] as string | undefined, timeoutMs: req.timeoutMs, query: q });
    const out = this.script(this.sent.length - 1, req);
    await new Promise((r) => setTimeout(r, 1));
    if (out instanceof Error) throw out;
    return out;
  }
}

const entry = (port: number): unknown => ({
  Node: { Node: 'n1', Address: '10.0.0.1', Datacenter: 'dc1' },
  Service: { ID: `web-${port}`, Service: 'web', Address: '', Port: port },
  Checks: [{ Status: 'passing' }],
});

const ok = (index: number | string, ports: number[]): ConsulResponse => ({
  status: 200,
  headers: { 'x-consul-index': String(index), 'x-consul-knownleader': 'true', 'x-consul-lastcontact': '0', 'x-consul-query-backend': 'blocking-query' },
  body: ports.map(entry),
});

describe('ConsulResolver blocking-query loop', function () {
  this.timeout(30_000);

  it('sends the first query without an index, then blocks on the last index with a client timeout above wait×17/16', async () => {
    const client = new ScriptedClient((n) => ok(10 + n, [80]));
    const resolver = new ConsulResolver({ client, waitMs: 32_000, rateLimit: { burst: 1, minIntervalMs: 10, jitterMs: 0 } });
    try {
      resolver.watch('web');
      await until('three requests', () => client.sent.length >= 3, 10_000);
      assert.equal(client.sent[0]!.index, undefined);
      assert.equal(client.sent[1]!.index, '10');
      assert.equal(client.sent[2]!.index, '11');
      assert.equal(client.sent[1]!.wait, '32s');
      assert.ok(client.sent[1]!.timeoutMs! > (32_000 * 17) / 16, String(client.sent[1]!.timeoutMs));
      // Defaults: passing-only, stale reads; no passing=false, no empty parameters.
      assert.equal(client.sent[0]!.query!['passing'], true);
      assert.equal(client.sent[0]!.query!['stale'], true);
      assert.equal(client.sent[0]!.query!['consistent'], undefined);
    } finally {
      await resolver.close();
    }
  });

  it('never sends index 0: an answer with index 0 is followed by index 1', async () => {
    const client = new ScriptedClient(() => ok(0, [80]));
    const resolver = new ConsulResolver({ client, rateLimit: { burst: 1, minIntervalMs: 10, jitterMs: 0 } });
    try {
      resolver.watch('web');
      await until('four requests', () => client.sent.length >= 4, 10_000);
      assert.deepEqual(client.sent.slice(0, 4).map((s) => s.index), [undefined, '1', '1', '1']);
    } finally {
      await resolver.close();
    }
  });

  it('resets when the index goes backwards, and converges on the new data', async () => {
    const indexes = [100, 101, 5, 6, 7, 8, 9, 10];
    const client = new ScriptedClient((n) => ok(indexes[Math.min(n, indexes.length - 1)]!, n < 2 ? [80] : [81]));
    const resolver = new ConsulResolver({ client, resetGraceMs: 0, rateLimit: { burst: 1, minIntervalMs: 10, jitterMs: 0 } });
    try {
      const watch = resolver.watch('web');
      await until('five requests', () => client.sent.length >= 5, 10_000);
      assert.deepEqual(client.sent.slice(0, 5).map((s) => s.index), [undefined, '100', '101', undefined, '6']);
      assert.deepEqual(watch.current?.instances.map((i) => i.port), [81]);
      assert.equal(watch.current?.instances[0]?.address, '10.0.0.1'); // empty Service.Address → Node.Address
    } finally {
      await resolver.close();
    }
  });

  it('after the index went backwards, holds the instances the new history lacks (stale) for the grace; new ones join at once', async () => {
    const indexes = [100, 101, 5, 6, 7, 8, 9, 10];
    const client = new ScriptedClient((n) => ok(indexes[Math.min(n, indexes.length - 1)]!, n < 2 ? [80] : [81]));
    const resolver = new ConsulResolver({ client, resetGraceMs: 600, rateLimit: { burst: 1, minIntervalMs: 10, jitterMs: 0 } });
    try {
      const watch = resolver.watch('web');
      await until('the new instance', () => watch.current?.instances.some((i) => i.port === 81) === true, 10_000);
      const ports = (): number[] => (watch.current?.instances ?? []).map((i) => i.port).sort();
      assert.deepEqual(ports(), [80, 81], 'the instance the reset dropped is held');
      assert.equal(watch.current?.stale, true);
      await until('the grace to end', () => watch.current?.stale === false, 5000);
      assert.deepEqual(ports(), [81], 'gone for good once the grace ended');
    } finally {
      await resolver.close();
    }
  });

  it('believes an empty answer at once when the index did not go backwards', async () => {
    const client = new ScriptedClient((n) => ok(10 + n, n < 2 ? [80] : []));
    const resolver = new ConsulResolver({ client, consistency: 'default', resetGraceMs: 60_000, rateLimit: { burst: 1, minIntervalMs: 10, jitterMs: 0 } });
    try {
      const watch = resolver.watch('web');
      await until('the empty set', () => watch.current?.instances.length === 0, 2000);
      assert.equal(watch.current?.stale, false);
    } finally {
      await resolver.close();
    }
  });

  it('token bucket: re-polls at once for a burst, then keeps the minimum gap even when Consul answers at once', async () => {
    const client = new ScriptedClient((n) => ok(10 + n, [80]));
    const resolver = new ConsulResolver({ client, rateLimit: { burst: 4, minIntervalMs: 100, jitterMs: 0 } });
    const stalls = new StallRecorder();
    try {
      resolver.watch('web');
      await new Promise((r) => setTimeout(r, 1000));
      stalls.stop();
      const sent = client.sent.map((s) => s.at - performance.timeOrigin); // performance.now() time, as the stalls
      const gaps = sent.slice(1).map((t, i) => t - sent[i]!);
      // The limit, on any machine: in any stretch of time the polls are at most the bucket (4) plus
      // one per 100 ms refill (+1 for where the stretch starts between refills, +2 ms for Date.now's
      // rounding). A timer firing late never lets more through; a stall can only delay polls.
      for (let i = 0; i < sent.length; i++) {
        for (let j = i + 1; j < sent.length; j++) {
          const allowed = 4 + 1 + Math.floor((sent[j]! - sent[i]! + 2) / 100);
          assert.ok(j - i + 1 <= allowed, `${j - i + 1} polls within ${(sent[j]! - sent[i]!).toFixed(0)} ms (at most ${allowed}); gaps: ${gaps.map((g) => g.toFixed(0)).join(',')}`);
        }
      }
      // Liveness: the burst goes out back to back (each scripted answer takes ~1 ms), unless this
      // process stood still meanwhile...
      for (let i = 0; i < 4; i++) {
        const stalled = stalls.stalledMs(sent[i]!, sent[i + 1]!);
        assert.ok(gaps[i]! < 60 + stalled, `burst gap ${gaps[i]!.toFixed(0)} ms (stalled ${stalled.toFixed(0)} ms); gaps: ${gaps.map((g) => g.toFixed(0)).join(',')}`);
      }
      // ...and refills keep it polling: 1 first call + 4 from the bucket + about 9 refills in the second
      // (at least 8 in all, less one per 100 ms this process was stalled).
      const stalledMs = stalls.stalls.reduce((sum, [a, b]) => sum + (b - a), 0);
      assert.ok(sent.length >= 8 - Math.ceil(stalledMs / 100), `requests: ${sent.length} (this process stalled ${stalledMs.toFixed(0)} ms)`);
    } finally {
      stalls.stop();
      await resolver.close();
    }
  });

  it('on errors: keeps the snapshot marked stale, emits typed errors, backs off, and recovers', async () => {
    let failing = false;
    const client = new ScriptedClient((n) => (failing ? new Error('connect ECONNREFUSED') : ok(10 + n, [80])));
    const resolver = new ConsulResolver({ client, rateLimit: { burst: 1, minIntervalMs: 10, jitterMs: 0 }, backoff: { initialMs: 50, maxMs: 400 } });
    try {
      const watch = resolver.watch('web');
      const errors: Error[] = [];
      const stale: boolean[] = [];
      watch.on('error', (e) => errors.push(e));
      watch.on('update', (s) => stale.push(s.stale));
      const first = await watch.ready({ timeoutMs: 5000 });
      failing = true;
      await until('errors', () => errors.length >= 3, 10_000);
      const sentWhileFailing = client.sent.length;
      await new Promise((r) => setTimeout(r, 1000));
      // Backoff up to 400 ms with full jitter: a handful of retries per second, not a busy loop.
      assert.ok(client.sent.length - sentWhileFailing < 30, `retries: ${client.sent.length - sentWhileFailing}`);
      assert.equal(watch.current?.stale, true);
      assert.equal(watch.current?.updatedAt, first.updatedAt);
      assert.deepEqual(watch.current?.instances.map((i) => i.port), [80]);
      assert.ok(errors.every((e) => e instanceof ResolutionFailedError));
      failing = false;
      await until('fresh again', () => watch.current?.stale === false, 10_000);
      assert.deepEqual(stale, [false, true, false]);
      assert.equal(watch.lastError, undefined);
    } finally {
      await resolver.close();
    }
  });

  it('treats a body of the wrong shape as an error (stale-if-error), never as an empty set', async () => {
    let bad = false;
    const client = new ScriptedClient((n) => (bad ? { status: 200, headers: { 'x-consul-index': String(50 + n) }, body: { not: 'an array' } } : ok(10 + n, [80])));
    const resolver = new ConsulResolver({ client, rateLimit: { burst: 1, minIntervalMs: 10, jitterMs: 0 }, backoff: { initialMs: 20, maxMs: 50 } });
    try {
      const watch = resolver.watch('web');
      const errors: Error[] = [];
      watch.on('error', (e) => errors.push(e));
      await watch.ready({ timeoutMs: 5000 });
      bad = true;
      await until('error', () => errors.length >= 1, 10_000);
      assert.ok(errors[0]!.cause instanceof BadResponseError);
      assert.equal(watch.current?.instances.length, 1);
      assert.equal(watch.current?.stale, true);
    } finally {
      await resolver.close();
    }
  });

  it('leaves no poll running after close(), and rejects new calls with ERR_CLOSED', async () => {
    const client = new ScriptedClient((n) => ok(10 + n, [80]));
    const resolver = new ConsulResolver({ client, rateLimit: { burst: 1, minIntervalMs: 10, jitterMs: 0 } });
    const watch = resolver.watch('web');
    await watch.ready({ timeoutMs: 5000 });
    await resolver.close();
    const count = client.sent.length;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(client.sent.length, count);
    assert.throws(() => resolver.watch('web'), { code: 'ERR_CLOSED' });
    await assert.rejects(resolver.resolve('web'), { code: 'ERR_CLOSED' });
  });

  it('treats a missing or garbage X-Consul-Index as a typed error: last snapshot kept, backoff, no spin', async () => {
    let garbage: string | undefined;
    const client = new ScriptedClient((n) => {
      if (garbage === undefined) return ok(10 + n, [80]);
      const res = ok(10 + n, []);
      if (garbage === '') delete res.headers['x-consul-index'];
      else res.headers['x-consul-index'] = garbage;
      return res;
    });
    const resolver = new ConsulResolver({ client, rateLimit: { burst: 1, minIntervalMs: 10, jitterMs: 0 }, backoff: { initialMs: 50, maxMs: 200 } });
    try {
      const watch = resolver.watch('web');
      const errors: Error[] = [];
      watch.on('error', (e) => errors.push(e));
      await watch.ready({ timeoutMs: 5000 });
      for (const value of ['', 'abc', '-1', '1e9', '99999999999999999999', '12, 13']) {
        garbage = value;
        const before = errors.length;
        await until(`error for ${JSON.stringify(value)}`, () => errors.length > before, 10_000);
      }
      const sent = client.sent.length;
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(client.sent.length - sent < 20, `requests in 500 ms: ${client.sent.length - sent}`);
      assert.ok(errors.every((e) => e.cause instanceof BadResponseError), errors.map((e) => e.message).join('\n'));
      assert.deepEqual(watch.current?.instances.map((i) => i.port), [80]);
      assert.equal(watch.current?.stale, true);
    } finally {
      await resolver.close();
    }
  });

  it('re-asks a stale answer whose LastContact exceeds maxStaleMs (or that knows no leader) with default consistency', async () => {
    let lag = '0';
    let leader = 'true';
    const client = new ScriptedClient((n, req) => {
      const fresh = req.query?.['stale'] !== true;
      const res = ok(10 + n, fresh ? [81] : [80]);
      if (!fresh) {
        res.headers['x-consul-lastcontact'] = lag;
        res.headers['x-consul-knownleader'] = leader;
      }
      return res;
    });
    const resolver = new ConsulResolver({ client, maxStaleMs: 1000, rateLimit: { burst: 1, minIntervalMs: 10, jitterMs: 0 } });
    try {
      const watch = resolver.watch('web');
      await watch.ready({ timeoutMs: 5000 });
      assert.deepEqual(watch.current?.instances.map((i) => i.port), [80]);
      assert.ok(client.sent.every((s) => s.query?.['stale'] === true));
      lag = '1500';
      await until('leader answer', () => watch.current?.instances[0]?.port === 81, 10_000);
      const reasked = client.sent.filter((s) => s.query?.['stale'] !== true);
      assert.ok(reasked.length > 0 && reasked.every((s) => s.index === undefined && s.query?.['consistent'] === undefined));
      lag = '0';
      await until('back to the follower', () => watch.current?.instances[0]?.port === 80, 10_000);
      leader = 'false';
      await until('leader answer again', () => watch.current?.instances[0]?.port === 81, 10_000);
      assert.equal(watch.current?.stale, false);
    } finally {
      await resolver.close();
    }
  });

  it('publishes a lagging answer flagged stale when no leader can be asked, but never lets it empty the set', async () => {
    let ports = [80];
    const client = new ScriptedClient((n, req) => {
      if (req.query?.['stale'] !== true) return Object.assign(new Error('No cluster leader'), {});
      const res = ok(10 + n, ports);
      res.headers['x-consul-knownleader'] = n === 0 ? 'true' : 'false';
      return res;
    });
    const resolver = new ConsulResolver({ client, rateLimit: { burst: 1, minIntervalMs: 10, jitterMs: 0 }, backoff: { initialMs: 20, maxMs: 50 } });
    try {
      const watch = resolver.watch('web');
      await watch.ready({ timeoutMs: 5000 });
      await until('flagged stale', () => watch.current?.stale === true, 10_000);
      ports = [80, 82];
      await until('stale data published', () => watch.current?.instances.length === 2, 10_000);
      assert.equal(watch.current?.stale, true);
      ports = [];
      const errors: Error[] = [];
      watch.on('error', (e) => errors.push(e));
      await until('unconfirmed empty reported', () => errors.length >= 2, 10_000);
      assert.equal(watch.current?.instances.length, 2);
      assert.match(errors[0]!.message, /could not be confirmed|consistent read/);
    } finally {
      await resolver.close();
    }
  });

  it('confirms an empty stale answer with a consistent read before publishing it (first answer and after a non-empty set)', async () => {
    let followerPorts: number[] = [];
    let leaderPorts: number[] = [80];
    const client = new ScriptedClient((n, req) => ok(10 + n, req.query?.['consistent'] === true ? leaderPorts : followerPorts));
    const resolver = new ConsulResolver({ client, rateLimit: { burst: 1, minIntervalMs: 10, jitterMs: 0 } });
    try {
      const watch = resolver.watch('web');
      const seen: number[] = [];
      watch.on('update', (snap) => seen.push(snap.instances.length));
      const first = await watch.ready({ timeoutMs: 5000 });
      // The follower had nothing yet; the leader had the instance: no empty first set.
      assert.deepEqual(first.instances.map((i) => i.port), [80]);
      assert.equal(client.sent[1]?.query?.['consistent'], true);
      followerPorts = [80];
      await new Promise((r) => setTimeout(r, 100));
      // Now the service really is gone: the empty set is confirmed, then published.
      followerPorts = [];
      leaderPorts = [];
      await until('empty published', () => watch.current?.instances.length === 0, 10_000);
      assert.ok(seen.every((len, i) => i === seen.length - 1 || len > 0), `sizes: ${seen.join(',')}`);
      const consistentReads = client.sent.filter((s) => s.query?.['consistent'] === true).length;
      await new Promise((r) => setTimeout(r, 100));
      // Empty after empty needs no confirmation.
      assert.equal(client.sent.filter((s) => s.query?.['consistent'] === true).length, consistentReads);
    } finally {
      await resolver.close();
    }
  });

  it('while the agent refuses connections, watches wait on one shared probe and resume spread in time', async () => {
    let down = false;
    const client = new ScriptedClient((n, req) => {
      if (down) return new ConsulUnreachableError('http://127.0.0.1:1', { cause: new Error('connect ECONNREFUSED') });
      if (req.path === '/v1/status/leader') return { status: 200, headers: {}, body: '127.0.0.1:8300' };
      return ok(10 + n, [80]);
    });
    const resolver = new ConsulResolver({ client, probeMaxMs: 100, recoverySpreadMs: 300, rateLimit: { burst: 1, minIntervalMs: 10, jitterMs: 0 } });
    try {
      const services = Array.from({ length: 20 }, (_, i) => `s${i}`);
      const watches = services.map((s) => resolver.watch(s));
      await Promise.all(watches.map((w) => w.ready({ timeoutMs: 5000 })));
      down = true;
      await until('all stale', () => watches.every((w) => w.current?.stale === true), 10_000);
      const sent = client.sent.length;
      await new Promise((r) => setTimeout(r, 1000));
      const during = client.sent.slice(sent);
      // One probe loop for 20 watches (≤ ~100 ms apart), not 20 retry loops.
      assert.ok(during.every((s) => s.path === '/v1/status/leader'), during.map((s) => s.path).join(','));
      assert.ok(during.length <= 40, `probes: ${during.length}`);
      const back = Date.now();
      down = false;
      await until('all fresh', () => watches.every((w) => w.current?.stale === false), 10_000);
      const resumed = client.sent.filter((s) => s.at >= back && s.path.startsWith('/v1/health/')).map((s) => s.at - back);
      const spread = Math.max(...resumed) - Math.min(...resumed);
      assert.ok(spread > 50, `resume times: ${resumed.join(',')}`);
    } finally {
      await resolver.close();
    }
  });
});
