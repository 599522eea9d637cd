import assert from 'node:assert/strict';
import { createClient, type ClientResponse, type ProxylessClient } from '@proxyless/http-client';
import { FakeResolver, instance, ok, startServer, until, type TestServer } from './helpers.js';

describe('http-client: pick explanations (explain: true)', () => {
  let servers: TestServer[] = [];
  let client: ProxylessClient | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
  });

  it('records the strategy, the two P2C candidates with their scores, and the chosen one (the cheaper)', async () => {
    servers = await Promise.all([startServer(ok), startServer(ok), startServer(ok)]);
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    client = createClient({ service: 'svc', resolver });
    for (let i = 0; i < 20; i++) await (await client.request('/')).body.dump(); // warm estimates
    const res = await client.text({ path: '/', explain: true });
    assert.equal(res.picks?.length, 1);
    const pick = res.picks[0]!;
    assert.equal(pick.attempt, 1);
    assert.equal(pick.strategy, 'prequal-when-reported', 'the default: peak EWMA until every server reports');
    assert.equal(pick.chosen, res.endpoint.label);
    assert.equal(pick.candidates.length, 2);
    assert.notEqual(pick.candidates[0]!.endpoint, pick.candidates[1]!.endpoint);
    for (const c of pick.candidates) assert.ok(typeof c.score === 'number' && c.score >= 0, `score ${String(c.score)}`);
    const chosen = pick.candidates.find((c) => c.endpoint === pick.chosen);
    assert.ok(chosen, 'the chosen endpoint is one of the candidates');
    assert.ok(pick.candidates.every((c) => chosen.score! <= c.score!), 'the cheaper candidate wins');
    assert.ok(pick.signal === 'latency' || pick.signal === 'in-flight' || pick.signal === 'random', `the signal that decided: ${String(pick.signal)}`);
    assert.deepEqual(pick.excluded, []);
    assert.equal(pick.panic, false);
    // Off by default: no record, no cost.
    const plain = await client.request('/');
    assert.equal(plain.picks, undefined);
    await plain.body.dump();
  });

  it('names excluded endpoints with the reason: draining, ejected, already tried', async () => {
    const bad = await startServer((_req, res) => res.writeHead(503).end('down'));
    const slow = await startServer((_q, res) => setTimeout(() => res.end('slow'), 2_000));
    servers = [bad, await startServer(ok), await startServer(ok), slow];
    const resolver = new FakeResolver();
    const [b, g1, g2, s] = servers.map((srv) => instance(srv.port));
    client = createClient({ service: 'svc', resolver, outlierDetection: { consecutiveFailures: 1 }, failureStatuses: [503], retry: { maxRetries: 3, initialMs: 0 } });
    const c = client;
    // A request in flight on the slow instance, then the instance leaves: it drains.
    resolver.set([s!]);
    const inFlight = c.request('/');
    await until(() => slow.hits === 1, 5_000, 'request on the slow instance');
    resolver.set([b!, g1!, g2!]);
    // Traffic until the 503 instance is picked once: that request is retried elsewhere, and the instance ejected.
    let retried: ClientResponse | undefined;
    for (let i = 0; i < 500 && retried === undefined; i++) {
      const res = await c.request({ path: '/', explain: true });
      await res.body.dump();
      if (res.attempts > 1) retried = res;
    }
    assert.ok(retried, 'the 503 instance was never picked');
    const badLabel = `127.0.0.1:${bad.port}`;
    const slowLabel = `127.0.0.1:${slow.port}`;
    assert.equal(retried.picks?.length, 2);
    assert.equal(retried.picks[0]!.chosen, badLabel);
    assert.deepEqual(retried.picks[1]!.excluded.find((x) => x.endpoint === badLabel), { endpoint: badLabel, reason: 'alreadyTried' });
    const res = await c.request({ path: '/', explain: true });
    await res.body.dump();
    const excluded = res.picks![0]!.excluded;
    assert.deepEqual(excluded.find((x) => x.endpoint === badLabel), { endpoint: badLabel, reason: 'ejected' });
    assert.deepEqual(excluded.find((x) => x.endpoint === slowLabel), { endpoint: slowLabel, reason: 'draining' });
    assert.equal(await (await inFlight).body.text(), 'slow');
  });
});
