import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request as undiciRequest } from 'undici';
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { StaticResolver } from '@proxyless/core';
import { createClient, createDispatcher, telemetryReady, type ClientResponse, type EndpointInfo, type ProxylessClient, type ServiceDispatcher } from '@proxyless/http-client';
import { Registry } from 'prom-client';
import { registerClientMetrics } from '@proxyless/http-client/prometheus';
import { FakeResolver, instance, startServer, until, type TestServer } from './helpers.js';

/**
 * Backends that share one script: the next `stalls` requests to arrive (at
 * any of them) stall for `stallMs` before answering (those after the first
 * for `laterStallMs`, when set); the rest answer at once with `status`. Each
 * notes requests whose client went away before the answer.
 */
class Backends {
  servers: TestServer[] = [];
  stalls = 0;
  stallMs = 5_000;
  /** How long the stalled requests after the first stall, ms; default `stallMs`. */
  laterStallMs: number | undefined;
  #stalled = 0;
  status = 200;
  /** Stalled requests whose connection closed before they answered (the server saw the cancellation). */
  aborted: number[] = [];

  async start(n: number): Promise<void> {
    this.servers = await Promise.all(Array.from({ length: n }, () => startServer((req, res, s) => this.#handle(req, res, s))));
  }

  #handle(_req: IncomingMessage, res: ServerResponse, s: TestServer): void {
    if (this.stalls > 0) {
      this.stalls--;
      const ms = this.#stalled++ === 0 ? this.stallMs : (this.laterStallMs ?? this.stallMs);
      const timer = setTimeout(() => res.end(`slow ${s.port}`), ms);
      res.on('close', () => {
        clearTimeout(timer);
        if (!res.writableEnded) this.aborted.push(s.port);
      });
      return;
    }
    res.writeHead(this.status).end(`fast ${s.port}`);
  }

  label(port: number): string {
    return `127.0.0.1:${port}`;
  }

  async connections(port: number): Promise<number> {
    const server = this.servers.find((s) => s.port === port)?.server;
    return new Promise((resolve, reject) => server?.getConnections((e, n) => (e ? reject(e) : resolve(n))));
  }

  close(): Promise<unknown> {
    return Promise.all(this.servers.map((s) => s.close()));
  }
}

const portOf = (text: string): number => Number(text.split(' ')[1]);

describe('http-client: hedged requests', () => {
  let backends: Backends;
  let client: ProxylessClient | undefined;
  let dispatcher: ServiceDispatcher | undefined;
  let resolver: StaticResolver | undefined;

  beforeEach(() => {
    backends = new Backends();
  });
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await dispatcher?.close();
    dispatcher = undefined;
    await resolver?.close();
    resolver = undefined;
    await backends.close();
  });

  async function hedgedClient(n: number, extra: Parameters<typeof createClient>[0] extends infer O ? Partial<O> : never = {}): Promise<ProxylessClient> {
    await backends.start(n);
    const r = new FakeResolver();
    r.set(backends.servers.map((s) => instance(s.port)));
    client = createClient({ service: 'svc', resolver: r, outlierDetection: false, logger: false, ...extra });
    return client;
  }

  it('hedges a stalled request to another endpoint after the delay, returns the fast answer, cancels the stalled copy (the server sees it) and does not charge its endpoint', async () => {
    const c = await hedgedClient(2);
    const sent: [string, number, number][] = [];
    const settled: [string, number, string[]][] = [];
    c.on('hedge', (ep, copy, afterMs) => sent.push([ep.label, copy, afterMs]));
    c.on('hedgeSettled', (winner, copy, cancelled) => settled.push([winner.label, copy, cancelled.map((e: EndpointInfo) => e.label)]));
    backends.stalls = 1;
    const t0 = performance.now();
    const res = await c.request({ path: '/', hedge: { delayMs: 100 } });
    const elapsed = performance.now() - t0;
    const body = await res.body.text();
    assert.equal(res.statusCode, 200);
    assert.match(body, /^fast /);
    assert.equal(res.attempts, 2);
    assert.ok(elapsed >= 95, `answered after ${elapsed.toFixed(1)} ms, before the hedge delay`);
    assert.ok(elapsed < 2_000, `answered after ${elapsed.toFixed(1)} ms: the stalled copy (5 s) was awaited`);
    const fast = portOf(body);
    const stalled = backends.servers.find((s) => s.port !== fast)!.port;
    // The stalled server saw its request cancelled, and no socket of that copy stays open.
    await until(() => backends.aborted.length === 1, 5_000, 'the stalled server sees the cancellation');
    assert.deepEqual(backends.aborted, [stalled]);
    await until(() => c.stats().endpoints.every((e) => e.inFlight === 0), 5_000, 'no attempt in flight');
    let open = -1;
    for (let i = 0; i < 50 && open !== 0; i++) {
      open = await backends.connections(stalled);
      if (open !== 0) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(open, 0, 'the cancelled copy left a socket open');
    assert.equal(sent.length, 1);
    assert.equal(sent[0]![0], backends.label(fast));
    assert.equal(sent[0]![1], 1);
    assert.ok(sent[0]![2] >= 95, `hedged after ${sent[0]![2]} ms`);
    assert.deepEqual(settled, [[backends.label(fast), 1, [backends.label(stalled)]]]);
    const stats = c.stats();
    assert.deepEqual(stats.hedges, { sent: 1, won: 1, cancelled: 1, refused: 0 });
    const loser = stats.endpoints.find((e) => e.label === backends.label(stalled))!;
    assert.equal(loser.failures, 0, 'the cancelled copy is not a failure of its endpoint');
    assert.equal(loser.health, 'ready');
    // The loser's pool is usable at once (a new connection): later requests all answer, the stalled endpoint's too.
    let fromLoser = 0;
    for (let i = 0; i < 200 && fromLoser === 0; i++) {
      const r = await c.request({ path: '/', hedge: { delayMs: 1_000 } });
      assert.equal(r.statusCode, 200);
      if (portOf(await r.body.text()) === stalled) fromLoser++;
    }
    assert.equal(fromLoser, 1, 'the stalled endpoint answers again');
    assert.equal(c.stats().hedges.sent, 1);
  });

  it('counts hedges in the Prometheus metrics', async () => {
    const c = await hedgedClient(2);
    const registry = new Registry();
    const metrics = registerClientMetrics(c, { registry });
    backends.stalls = 1;
    await (await c.request({ path: '/', hedge: { delayMs: 30 } })).body.dump();
    const text = await registry.metrics();
    assert.match(text, /proxyless_http_client_hedges_total\{service="svc",result="sent"\} 1/);
    assert.match(text, /proxyless_http_client_hedges_total\{service="svc",result="won"\} 1/);
    assert.match(text, /proxyless_http_client_hedges_total\{service="svc",result="cancelled"\} 1/);
    metrics.unregister();
  });

  it('hedges through client.fetch and through the undici dispatcher too', async () => {
    const c = await hedgedClient(2);
    backends.stalls = 1;
    const t0 = performance.now();
    const res = await c.fetch('http://svc/x', { hedge: { delayMs: 50 } });
    assert.match(await res.text(), /^fast /);
    assert.ok(performance.now() - t0 < 2_000);
    assert.equal(c.stats().hedges.won, 1);
    await until(() => backends.aborted.length === 1, 5_000, 'fetch: the stalled copy is cancelled');

    resolver = new StaticResolver({ services: { users: backends.servers.map((s) => ({ address: '127.0.0.1', port: s.port })) } });
    const d = createDispatcher({ resolver, client: { outlierDetection: false, logger: false } });
    dispatcher = d;
    backends.stalls = 1;
    const t1 = performance.now();
    const viaDispatcher = await undiciRequest('http://users.service.consul/x', { dispatcher: d, hedge: { delayMs: 50 } } as Parameters<typeof undiciRequest>[1]);
    assert.match(await viaDispatcher.body.text(), /^fast /);
    assert.ok(performance.now() - t1 < 2_000);
    assert.deepEqual(d.client('users').stats().hedges, { sent: 1, won: 1, cancelled: 1, refused: 0 });
    await until(() => backends.aborted.length === 2, 5_000, 'dispatcher: the stalled copy is cancelled');
  });

  it('never hedges a request that is not safe to send twice (POST, a streamed body); hedges a POST marked idempotent', async () => {
    const c = await hedgedClient(2);
    backends.stallMs = 300;
    const hedge = { delayMs: 30 };
    for (const req of [
      { path: '/', method: 'POST', body: 'x', hedge },
      { path: '/', method: 'PUT', body: Readable.from(['streamed']), hedge },
    ]) {
      backends.stalls = 1;
      const res = await c.request(req);
      assert.match(await res.body.text(), /^slow /, `${req.method}: the stalled copy answered`);
      assert.equal(res.attempts, 1);
    }
    assert.equal(c.stats().hedges.sent, 0);
    assert.equal(backends.servers.reduce((n, s) => n + s.hits, 0), 2);
    backends.stalls = 1;
    const marked = await c.request({ path: '/', method: 'POST', body: 'x', idempotent: true, hedge });
    assert.match(await marked.body.text(), /^fast /);
    assert.equal(c.stats().hedges.sent, 1);
  });

  it('sends no hedge when the retry budget is spent', async () => {
    // Floor 0.1/s over 10 s: one token in the window.
    const c = await hedgedClient(2, { retry: { budget: { ratio: 0, minRetriesPerSecond: 0.1 } } });
    backends.stallMs = 300;
    backends.stalls = 1;
    const first = await c.request({ path: '/', hedge: { delayMs: 30 } });
    assert.match(await first.body.text(), /^fast /);
    backends.stalls = 1;
    const second = await c.request({ path: '/', hedge: { delayMs: 30 } });
    assert.match(await second.body.text(), /^slow /, 'no hedge: the stalled copy is the answer');
    assert.equal(second.attempts, 1);
    assert.deepEqual(c.stats().hedges, { sent: 1, won: 1, cancelled: 1, refused: 1 });
  });

  it('sends at most maxHedges hedges, each to an endpoint no copy is on', async () => {
    const c = await hedgedClient(4);
    backends.stallMs = 400;
    // The hedges stall far longer, so the first copy wins and both losers are still stalled when
    // cancelled: with all three at 400 ms, a loaded run fired the three timers in one tick and the
    // losers answered before their cancellation reached them (CI, Node 26, load 20).
    backends.laterStallMs = 10_000;
    backends.stalls = 3;
    const res = await c.request({ path: '/', hedge: { delayMs: 40, maxHedges: 2 }, explain: true });
    assert.match(await res.body.text(), /^slow /);
    assert.equal(res.attempts, 3);
    assert.equal(backends.servers.reduce((n, s) => n + s.hits, 0), 3, 'three copies, the fourth endpoint untouched');
    const picks = res.picks!;
    assert.deepEqual(picks.map((p) => p.hedge), [undefined, true, true]);
    assert.equal(new Set(picks.map((p) => p.chosen)).size, 3, 'three different endpoints');
    assert.deepEqual(picks[2]!.excluded.filter((e) => e.reason === 'hedgeInFlight').map((e) => e.endpoint).sort(), [picks[0]!.chosen, picks[1]!.chosen].sort());
    // The first copy won; the two hedges are cancelled.
    const stats = c.stats();
    assert.equal(stats.hedges.sent, 2);
    assert.equal(stats.hedges.cancelled, 2);
    assert.equal(stats.hedges.refused, 0);
    await until(() => backends.aborted.length === 2, 5_000, 'both losers are cancelled');
  });

  it('a retried status from one copy does not end the request while another copy is in flight', async () => {
    const c = await hedgedClient(2, { retry: { maxRetries: 0 } });
    backends.stallMs = 300;
    backends.stalls = 1;
    backends.status = 503; // every request but the stalled one
    const res = await c.request({ path: '/', hedge: { delayMs: 30 } });
    assert.equal(res.statusCode, 200);
    assert.match(await res.body.text(), /^slow /);
    assert.equal(res.attempts, 2);
    assert.deepEqual(c.stats().hedges, { sent: 1, won: 0, cancelled: 0, refused: 0 });
  });

  it('a percentile delay arms only after minSamples answers, and never below minDelayMs', async () => {
    const c = await hedgedClient(3);
    const afters: number[] = [];
    c.on('hedge', (_ep, _copy, afterMs) => afters.push(afterMs));
    const hedged = c.policy({ hedge: { percentile: 95, minSamples: 20, minDelayMs: 40 } });
    backends.stallMs = 300;
    const one = async (): Promise<ClientResponse> => {
      const res = await c.request({ path: '/', policy: hedged });
      await res.body.text().catch(() => undefined);
      return res;
    };
    for (let i = 0; i < 10; i++) await one();
    backends.stalls = 1;
    assert.equal((await one()).attempts, 1, 'not hedged with 10 samples');
    assert.equal(c.stats().hedges.sent, 0);
    for (let i = 0; i < 20; i++) await one();
    backends.stalls = 1;
    const t0 = performance.now();
    const res = await one();
    assert.equal(res.attempts, 2, 'hedged once 20 samples were seen');
    assert.ok(performance.now() - t0 < 290);
    assert.equal(afters.length, 1);
    assert.ok(afters[0]! >= 39, `hedged after ${afters[0]} ms, below the 40 ms floor`);
  });

  it('checks hedge options', async () => {
    const c = await hedgedClient(1);
    for (const [hedge, option] of [
      [{}, 'hedge'],
      [{ delayMs: 10, percentile: 95 }, 'hedge'],
      [{ delayMs: -1 }, 'hedge.delayMs'],
      [{ percentile: 20 }, 'hedge.percentile'],
      [{ delayMs: 10, maxHedges: 5 }, 'hedge.maxHedges'],
      [{ delayMs: 10, after: 1 }, 'hedge.after'],
    ] as const) {
      assert.throws(() => c.policy({ hedge: hedge as never }), (e: unknown) => (e as { option?: string }).option === option, JSON.stringify(hedge));
    }
  });

  describe('with OpenTelemetry', () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    before(async () => {
      assert.equal(await telemetryReady(), true);
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
      propagation.setGlobalPropagator(new W3CTraceContextPropagator());
      trace.setGlobalTracerProvider(provider);
    });
    after(async () => {
      trace.disable();
      propagation.disable();
      context.disable();
      await provider.shutdown();
    });

    it('marks the attempt spans as hedge copies, which one won and which was cancelled (not as an error)', async () => {
      const c = await hedgedClient(2);
      backends.stalls = 1;
      const res = await c.request({ path: '/', hedge: { delayMs: 50 } });
      const fast = portOf(await res.body.text());
      await until(() => exporter.getFinishedSpans().length === 3, 5_000, 'three spans');
      const spans = exporter.getFinishedSpans();
      const logical = spans.find((s) => s.name === 'GET svc')!;
      assert.equal(logical.attributes['proxyless.hedge.winner'], 1);
      assert.equal(logical.attributes['proxyless.hedge.copies'], 2);
      assert.ok(logical.events.some((e) => e.name === 'proxyless.hedge' && e.attributes?.['proxyless.hedge.copy'] === 1));
      const copies = spans.filter((s) => s !== logical).sort((a, b) => Number(a.attributes['proxyless.hedge.copy']) - Number(b.attributes['proxyless.hedge.copy']));
      assert.deepEqual(copies.map((s) => [s.attributes['proxyless.hedge.copy'], s.attributes['proxyless.hedge'], s.attributes['proxyless.hedge.result']]), [[0, false, 'lost'], [1, true, 'won']]);
      assert.equal(copies[1]!.attributes['server.port'], fast);
      assert.equal(copies[0]!.status.code, 0, 'a cancelled copy is not an error');
      assert.equal(copies[0]!.attributes['error.type'], undefined);
    });
  });
});
