import assert from 'node:assert/strict';
import { peakEwma, type BalancerEndpoint } from '@proxyless/core';
import { createClient, type ProxylessClient } from '@proxyless/http-client';
import { LoadTracker } from '../src/endpoints/load.js';
import { EndpointSet } from '../src/endpoints/endpoint-set.js';
import { resolveOptions } from '../src/config/options.js';
import { FakeResolver, instance, startServer, type TestServer } from './helpers.js';

/** Peak EWMA as the client feeds it: no optimism about cold endpoints, penalties that end. */
describe('http-client: latency estimates (cold endpoints, failure penalties)', function () {
  this.timeout(60_000);
  let servers: TestServer[] = [];
  let client: ProxylessClient | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  /** Runs `concurrency` request loops until `stop()` is true. */
  async function load(c: ProxylessClient, concurrency: number, stop: () => boolean): Promise<void> {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (!stop()) {
          const res = await c.request('/');
          await res.body.dump();
        }
      }),
    );
  }

  it('a new endpoint wins the first pick it is drawn for, even against endpoints faster than the median; then none before it answers', () => {
    // The set's median (refreshed at most once a second) is 5 ms; the established endpoint answers in 1 ms.
    const neutral = { neutralMs: () => 5, nowMs: () => performance.now() };
    const fast = new LoadTracker(neutral);
    const t = performance.now();
    fast.started(t);
    fast.ended('success', 1, t + 1, t);
    const cold = new LoadTracker(neutral);
    const ep = (name: string, load: LoadTracker): BalancerEndpoint => ({ instance: instance(name === 'fast' ? 1 : 2), load });
    const endpoints = [ep('fast', fast), ep('cold', cold)];
    // random() = 0: the fast endpoint is drawn first, the cold one second.
    const picker = peakEwma({ random: () => 0 }).createPicker(endpoints);
    assert.equal(picker.pick(), endpoints[1], 'the cold endpoint, idle, is the cheaper candidate');
    cold.started(performance.now());
    assert.equal(picker.pick(), endpoints[0], 'with its first request outstanding, the cold endpoint is not picked again');
    assert.ok(cold.ewmaMs >= 1e6);
  });

  it('a cold endpoint receives no more than its fair share before its first answer', async () => {
    let coldFirstAnswerAt = Infinity;
    let sentToColdBeforeAnswer = 0;
    let total = 0;
    let totalBeforeAnswer = 0;
    const warm = await Promise.all([0, 1, 2, 3].map(() => startServer((_q, res) => setTimeout(() => res.end('warm'), 5))));
    // The new instance answers its first request after 300 ms (a cold start), then at once.
    const cold = await startServer((_q, res) => {
      if (coldFirstAnswerAt === Infinity) sentToColdBeforeAnswer++;
      const first = coldFirstAnswerAt === Infinity;
      setTimeout(() => {
        if (first && coldFirstAnswerAt === Infinity) coldFirstAnswerAt = performance.now();
        res.end('cold');
      }, first ? 300 : 5);
    });
    servers = [...warm, cold];
    for (const s of warm) s.server.on('request', () => {
      total++;
      if (coldFirstAnswerAt === Infinity && cold.hits > 0) totalBeforeAnswer++;
    });
    const resolver = new FakeResolver();
    resolver.set(warm.map((s) => instance(s.port)));
    client = createClient({ service: 'svc', resolver, timeoutMs: 5_000 });
    const c = client;
    const started = performance.now();
    const running = load(c, 32, () => performance.now() - started > 1_500);
    await new Promise((r) => setTimeout(r, 300)); // warm endpoints have estimates
    resolver.set([...warm, cold].map((s) => instance(s.port)));
    await running;
    const window = sentToColdBeforeAnswer + totalBeforeAnswer;
    console.log(`      [measure] cold endpoint before its first answer: ${sentToColdBeforeAnswer} of ${window} requests (fair share ${(window / 5).toFixed(0)}); ${total} total`);
    assert.ok(coldFirstAnswerAt < Infinity, 'the cold endpoint answered');
    assert.ok(sentToColdBeforeAnswer <= Math.max(1, window / 5), `${sentToColdBeforeAnswer} requests went to the cold endpoint before it answered`);
  });

  it('an endpoint that failed 200 times and then recovered is back to half its fair share within 5 s', async () => {
    let failing = true;
    let failuresServed = 0;
    const healthy = await Promise.all([0, 1, 2, 3].map(() => startServer((_q, res) => setTimeout(() => res.end('ok'), 10))));
    const flaky = await startServer((_q, res) => {
      if (failing) {
        failuresServed++;
        res.statusCode = 500;
        res.end('down');
        return;
      }
      setTimeout(() => res.end('ok'), 10);
    });
    servers = [...healthy, flaky];
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    // Breakers and ejection off: this pins the latency estimate alone (the pieces that usually hide it).
    client = createClient({ service: 'svc', resolver, timeoutMs: 5_000, breaker: false, outlierDetection: false, retry: false });
    const c = client;
    const flakyKey = instance(flaky.port).key;
    // Phase 1: load until the flaky endpoint has failed 200 times (bounded).
    const t0 = performance.now();
    await load(c, 16, () => failuresServed >= 200 || performance.now() - t0 > 30_000);
    assert.ok(failuresServed >= 200, `only ${failuresServed} failures were produced`);
    failing = false;
    // Phase 2: 5 s of load; the flaky endpoint's share over the last second must be ≥ half of 1/5.
    const recoveredAt = performance.now();
    let lastSecondTotal = 0;
    let lastSecondFlaky = 0;
    for (const s of servers) {
      s.server.on('request', () => {
        if (performance.now() - recoveredAt < 4_000) return;
        lastSecondTotal++;
        if (s === flaky) lastSecondFlaky++;
      });
    }
    await load(c, 16, () => performance.now() - recoveredAt > 5_000);
    const share = lastSecondFlaky / lastSecondTotal;
    const estimate = c.stats().endpoints.find((e) => e.key === flakyKey)?.ewmaMs ?? NaN;
    console.log(`      [measure] recovered after ${failuresServed} failures: share ${(share * 100).toFixed(1)} % in second 4–5 (fair 20 %), estimate ${estimate.toFixed(1)} ms`);
    assert.ok(share >= 0.1, `share ${(share * 100).toFixed(1)} % (fair share 20 %)`);
  });
});

/**
 * One request at a time (a script, a cron job, a gateway under light traffic):
 * the real endpoint set and peak EWMA, on an injected clock, so a minute of
 * traffic runs in milliseconds. An endpoint whose first (cold) answer was slow
 * must be tried again once its estimate has decayed, not starve.
 */
describe('http-client: one request at a time, no healthy endpoint starves', () => {
  /** Deterministic [0, 1) (mulberry32): the same draws on every run. */
  function seeded(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
    };
  }

  /**
   * Sends one request at a time for `durationMs` of the injected clock, `gapMs`
   * apart; every endpoint answers in 1–2 ms, except the first endpoint's first
   * answer (a cold start, 7.8 ms as measured through the gateway). Returns the
   * requests each endpoint served.
   */
  async function oneAtATime(endpoints: number, gapMs: number, durationMs: number): Promise<number[]> {
    let now = 1_000;
    const random = seeded(22);
    const set = new EndpointSet(resolveOptions({ service: 'svc', resolver: new FakeResolver(), logger: false }), peakEwma({ random: seeded(7) }), () => undefined, () => now);
    try {
      const instances = Array.from({ length: endpoints }, (_, i) => instance(42_001 + i));
      set.apply({ added: instances, removed: [], updated: [] });
      const served = instances.map(() => 0);
      while (now < 1_000 + durationMs) {
        const pick = set.pick(undefined, now);
        assert.equal(pick.kind, 'handle');
        if (pick.kind !== 'handle') break;
        const i = instances.findIndex((x) => x.key === pick.endpoint.instance.key);
        now += i === 0 && served[0] === 0 ? 7.8 : 1 + random();
        served[i]!++;
        pick.done('success');
        now += gapMs;
      }
      return served;
    } finally {
      await set.close(0);
    }
  }

  for (const [endpoints, gapMs, what] of [
    [2, 0, 'back to back'],
    [2, 2_700, '2.7 s apart (332 requests in 15 min, as measured through the gateway)'],
    [5, 0, 'back to back'],
    [5, 500, '0.5 s apart'],
  ] as const) {
    it(`over ${endpoints} endpoints for 60 s, ${what}: each gets ≥ 1/3 of its fair share`, async () => {
      const served = await oneAtATime(endpoints, gapMs, 60_000);
      const total = served.reduce((a, b) => a + b, 0);
      console.log(`      [measure] ${endpoints} endpoints, ${gapMs} ms apart: served ${served.join(' / ')} of ${total}`);
      for (const [i, n] of served.entries()) {
        assert.ok(n >= total / endpoints / 3, `endpoint ${i} served ${n} of ${total} (fair share ${(total / endpoints).toFixed(0)})`);
      }
    });
  }
});
