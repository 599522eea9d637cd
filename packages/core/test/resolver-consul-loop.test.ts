/**
 * The blocking-query loop rules, against scripted answers a real agent does
 * not give on demand (index 0, an index that jumps backwards, bodies of the
 * wrong shape). The behaviour against the real agent is in resolver-consul.test.ts.
 */
import assert from 'node:assert/strict';
import { BadResponseError, ConsulHttpClient, ConsulResolver, ResolutionFailedError, type ConsulRequest, type ConsulResponse } from '@proxyless/core';

interface Sent {
  at: number;
  index: string | undefined;
  wait: string | undefined;
  timeoutMs: number | undefined;
  query: ConsulRequest['query'];
}

type Script = (n: number) => ConsulResponse | Error;

class ScriptedClient extends ConsulHttpClient {
  readonly sent: Sent[] = [];
  constructor(readonly script: Script) {
    super({ address: '127.0.0.1:1' }, {});
  }
  override async request(req: ConsulRequest): Promise<ConsulResponse> {
    const q = req.query ?? {};
    this.sent.push({ at: Date.now(), index: q['index'] as string | undefined, wait: q['wait'] as string | undefined, timeoutMs: req.timeoutMs, query: q });
    const out = this.script(this.sent.length - 1);
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

async function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('ConsulResolver blocking-query loop', function () {
  this.timeout(30_000);

  it('sends the first query without an index, then blocks on the last index with a client timeout above wait×17/16', async () => {
    const client = new ScriptedClient((n) => ok(10 + n, [80]));
    const resolver = new ConsulResolver({ client, waitMs: 32_000, minPollIntervalMs: 10, pollJitterMs: 0 });
    try {
      resolver.watch('web');
      await until('three requests', () => client.sent.length >= 3);
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
    const resolver = new ConsulResolver({ client, minPollIntervalMs: 10, pollJitterMs: 0 });
    try {
      resolver.watch('web');
      await until('four requests', () => client.sent.length >= 4);
      assert.deepEqual(client.sent.slice(0, 4).map((s) => s.index), [undefined, '1', '1', '1']);
    } finally {
      await resolver.close();
    }
  });

  it('resets when the index goes backwards, and converges on the new data', async () => {
    const indexes = [100, 101, 5, 6, 7, 8, 9, 10];
    const client = new ScriptedClient((n) => ok(indexes[Math.min(n, indexes.length - 1)]!, n < 2 ? [80] : [81]));
    const resolver = new ConsulResolver({ client, minPollIntervalMs: 10, pollJitterMs: 0 });
    try {
      const watch = resolver.watch('web');
      await until('five requests', () => client.sent.length >= 5);
      assert.deepEqual(client.sent.slice(0, 5).map((s) => s.index), [undefined, '100', '101', undefined, '6']);
      assert.deepEqual(watch.current?.instances.map((i) => i.port), [81]);
      assert.equal(watch.current?.instances[0]?.address, '10.0.0.1'); // empty Service.Address → Node.Address
    } finally {
      await resolver.close();
    }
  });

  it('keeps at least the minimum gap between polls even when Consul answers at once', async () => {
    const client = new ScriptedClient((n) => ok(10 + n, [80]));
    const resolver = new ConsulResolver({ client, minPollIntervalMs: 100, pollJitterMs: 50 });
    try {
      resolver.watch('web');
      await new Promise((r) => setTimeout(r, 1000));
      assert.ok(client.sent.length <= 11, `requests: ${client.sent.length}`);
      for (let i = 1; i < client.sent.length; i++) assert.ok(client.sent[i]!.at - client.sent[i - 1]!.at >= 95);
    } finally {
      await resolver.close();
    }
  });

  it('on errors: keeps the snapshot marked stale, emits typed errors, backs off, and recovers', async () => {
    let failing = false;
    const client = new ScriptedClient((n) => (failing ? new Error('connect ECONNREFUSED') : ok(10 + n, [80])));
    const resolver = new ConsulResolver({ client, minPollIntervalMs: 10, pollJitterMs: 0, backoff: { initialMs: 50, maxMs: 400 } });
    try {
      const watch = resolver.watch('web');
      const errors: Error[] = [];
      const stale: boolean[] = [];
      watch.on('error', (e) => errors.push(e));
      watch.on('update', (s) => stale.push(s.stale));
      const first = await watch.ready({ timeoutMs: 5000 });
      failing = true;
      await until('errors', () => errors.length >= 3);
      const sentWhileFailing = client.sent.length;
      await new Promise((r) => setTimeout(r, 1000));
      // Backoff up to 400 ms with full jitter: a handful of retries per second, not a busy loop.
      assert.ok(client.sent.length - sentWhileFailing < 30, `retries: ${client.sent.length - sentWhileFailing}`);
      assert.equal(watch.current?.stale, true);
      assert.equal(watch.current?.updatedAt, first.updatedAt);
      assert.deepEqual(watch.current?.instances.map((i) => i.port), [80]);
      assert.ok(errors.every((e) => e instanceof ResolutionFailedError));
      failing = false;
      await until('fresh again', () => watch.current?.stale === false);
      assert.deepEqual(stale, [false, true, false]);
      assert.equal(watch.lastError, undefined);
    } finally {
      await resolver.close();
    }
  });

  it('treats a body of the wrong shape as an error (stale-if-error), never as an empty set', async () => {
    let bad = false;
    const client = new ScriptedClient((n) => (bad ? { status: 200, headers: { 'x-consul-index': String(50 + n) }, body: { not: 'an array' } } : ok(10 + n, [80])));
    const resolver = new ConsulResolver({ client, minPollIntervalMs: 10, pollJitterMs: 0, backoff: { initialMs: 20, maxMs: 50 } });
    try {
      const watch = resolver.watch('web');
      const errors: Error[] = [];
      watch.on('error', (e) => errors.push(e));
      await watch.ready({ timeoutMs: 5000 });
      bad = true;
      await until('error', () => errors.length >= 1);
      assert.ok(errors[0]!.cause instanceof BadResponseError);
      assert.equal(watch.current?.instances.length, 1);
      assert.equal(watch.current?.stale, true);
    } finally {
      await resolver.close();
    }
  });

  it('leaves no poll running after close(), and rejects new calls with ERR_CLOSED', async () => {
    const client = new ScriptedClient((n) => ok(10 + n, [80]));
    const resolver = new ConsulResolver({ client, minPollIntervalMs: 10, pollJitterMs: 0 });
    const watch = resolver.watch('web');
    await watch.ready({ timeoutMs: 5000 });
    await resolver.close();
    const count = client.sent.length;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(client.sent.length, count);
    assert.throws(() => resolver.watch('web'), { code: 'ERR_CLOSED' });
    await assert.rejects(resolver.resolve('web'), { code: 'ERR_CLOSED' });
  });
});
