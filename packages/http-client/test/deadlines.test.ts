import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { request as undiciRequest } from 'undici';
import { createClient, createDispatcher, DeadlineExceededError, RequestError, RequestFailedError, type ClientOptions, type ProxylessClient } from '@proxyless/http-client';
import { StallRecorder } from '../../../test/support/stalls.js';
import { startUnansweredListener } from '../../../test/support/unanswered-connect.js';
import { FakeResolver, instance, startServer, until, type TestServer } from './helpers.js';

/** Deadlines and per-try timeouts are the client's own timers: they hold to the millisecond on real sockets. */
describe('http-client: deadlines and per-try timeouts that hold', function () {
  this.timeout(120_000);
  let servers: TestServer[] = [];
  let client: ProxylessClient | undefined;
  const hung: NetServer[] = [];
  const sockets = new Set<Socket>();
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const child of children.splice(0)) {
      child.stdin?.end(); // it exits when its stdin closes
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    }
    await client?.close();
    client = undefined;
    await Promise.all(servers.splice(0).map((s) => s.close()));
    for (const s of sockets) s.destroy();
    sockets.clear();
    await Promise.all(hung.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  /** `count` backends answering at once, in a child process; stopped after the test. */
  async function okBackends(count: number): Promise<number[]> {
    const child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/ok-backends.mjs', import.meta.url)), String(count)], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(child);
    const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
    return JSON.parse(line) as number[];
  }

  /** A backend that accepts connections, reads requests and never answers. */
  async function hungBackend(): Promise<number> {
    const server = createNetServer((socket) => {
      sockets.add(socket);
      socket.on('data', () => undefined);
      socket.on('error', () => undefined);
      socket.once('close', () => sockets.delete(socket));
    });
    hung.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as AddressInfo).port;
  }

  it('a 100 ms per-try timeout leaves a hung backend within 100–150 ms', async () => {
    const resolver = new FakeResolver();
    resolver.set([instance(await hungBackend())]);
    client = createClient({ service: 'svc', resolver, perTryTimeoutMs: 100, timeoutMs: 5_000, retry: false });
    const c = client;
    const stalls = new StallRecorder();
    const spans = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const t0 = performance.now();
        await assert.rejects(c.request('/'), (e: unknown) => e instanceof RequestFailedError && e.reason === 'timeout' && e.attempts === 1);
        return [t0, performance.now()] as const;
      }),
    );
    stalls.stop();
    const elapsed = spans.map(([t0, t1]) => t1 - t0);
    console.log(
      `      [measure] per-try 100 ms against a hung backend: ${Math.min(...elapsed).toFixed(1)}–${Math.max(...elapsed).toFixed(1)} ms (20 requests; longest event-loop stall ${stalls.longestMs.toFixed(1)} ms)`,
    );
    // 100–150 ms when this process runs freely (as in CI); on a starved machine, a request may be
    // late by no more than the time this process itself stood still while it ran.
    for (const [t0, t1] of spans) {
      const stalled = stalls.stalledMs(t0, t1);
      assert.ok(t1 - t0 >= 99.5 && t1 - t0 <= 150 + stalled, `left after ${(t1 - t0).toFixed(1)} ms (this process stalled ${stalled.toFixed(1)} ms meanwhile)`);
    }
  });

  it('over 1,000 requests with a 500 ms deadline, none ends more than 20 ms after its deadline', async () => {
    const resolver = new FakeResolver();
    // One hung backend and one answering anywhere between at once and well past the deadline.
    servers = [await startServer((_q, res) => setTimeout(() => res.end('late or not'), Math.random() * 900))];
    resolver.set([instance(await hungBackend()), instance(servers[0]!.port)]);
    // Breakers and ejection off: every request has to meet its deadline against both backends.
    client = createClient({ service: 'svc', resolver, timeoutMs: 500, breaker: false, outlierDetection: false });
    const c = client;
    const spans: [number, number][] = [];
    let answered = 0;
    let deadlines = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next++ < 1_000) {
        const t0 = performance.now();
        try {
          const res = await c.request('/');
          await res.body.dump();
          answered++;
        } catch (error) {
          assert.ok(error instanceof RequestError, String(error)); // typed, carrying attempts and endpoints
          if (error instanceof DeadlineExceededError) deadlines++;
        }
        spans.push([t0, performance.now()]);
      }
    };
    // The machine may be shared: record when this process itself stood still, so a late end can be
    // told apart from a coarse timer (undici's would end such requests ~0.5–1 s late).
    const stalls = new StallRecorder();
    await Promise.all(Array.from({ length: 32 }, worker));
    stalls.stop();
    const worst = Math.max(...spans.map(([t0, t1]) => t1 - t0));
    console.log(
      `      [measure] 1,000 requests, 500 ms deadline: slowest ended at ${worst.toFixed(1)} ms (${answered} answered, ${deadlines} deadline errors; longest event-loop stall ${stalls.longestMs.toFixed(1)} ms)`,
    );
    assert.ok(deadlines > 0, 'the deadline was reached by some requests');
    // Alone (as in CI) the 20 ms bound holds as it is; on a starved machine a request may end later
    // by no more than the time this process stood still while that request ran.
    for (const [t0, t1] of spans) {
      const stalled = stalls.stalledMs(t0, t1);
      assert.ok(t1 - t0 <= 520 + stalled, `a request ended ${(t1 - t0 - 500).toFixed(1)} ms after its deadline (this process stalled ${stalled.toFixed(1)} ms meanwhile)`);
    }
  });

  it('with default options, one hung backend among five: 20,000 idempotent GETs at 64 in flight, 500 ms deadline, 0 failures', async () => {
    const started = performance.now();
    const resolver = new FakeResolver();
    // The four answering backends run in a process of their own, as backends do: a stall of this
    // (client) process does not also stall them, and theirs does not stall the client.
    const ports = await okBackends(4);
    resolver.set([instance(await hungBackend()), ...ports.map((port) => instance(port))]);
    client = createClient({ service: 'svc', resolver, timeoutMs: 500 });
    const c = client;
    // What the client decided about its endpoints, to say why if requests fail.
    const decisions: string[] = [];
    const note = (what: string) => (ep: { port: number }, durationMs?: number) => decisions.push(`${(performance.now() - started).toFixed(0)} ms ${what} :${ep.port}${durationMs === undefined ? '' : ` for ${durationMs} ms`}`);
    for (const event of ['eject', 'restore', 'breakerOpen', 'breakerHalfOpen', 'breakerClose'] as const) c.on(event, note(event));
    c.on('panic', (active) => decisions.push(`${(performance.now() - started).toFixed(0)} ms panic ${String(active)}`));
    let next = 0;
    const failed: { code: string; t0: number; t1: number }[] = [];
    let retried = 0;
    const stalls = new StallRecorder();
    const worker = async (): Promise<void> => {
      while (next++ < 20_000) {
        const t0 = performance.now();
        try {
          const res = await c.request('/');
          if (res.attempts > 1) retried++;
          await res.body.dump();
          if (res.statusCode !== 200) failed.push({ code: `HTTP ${res.statusCode}`, t0, t1: performance.now() });
        } catch (error) {
          failed.push({ code: (error as { code?: string }).code ?? String(error), t0, t1: performance.now() });
        }
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
    stalls.stop();
    console.log(
      `      [measure] 20,000 GETs, 1 hung of 5, defaults + 500 ms deadline: ${failed.length} failures, ${retried} answered on a retry, ` +
        `${((performance.now() - started) / 1000).toFixed(1)} s (longest event-loop stall of this process ${stalls.longestMs.toFixed(1)} ms)`,
    );
    // 0 failures whenever this process runs freely (as in CI). On a starved machine a request that
    // this process itself left standing for ≥ 100 ms of its 500 ms may miss its deadline (its first
    // try at the hung backend takes 200 ms, a retry elsewhere a few); nothing else may fail — not a
    // request that was not starved, and not with another error (an open breaker, a spent budget).
    const unexplained = failed
      .map((f) => ({ ...f, stalledMs: Math.round(stalls.stalledMs(f.t0, f.t1)) }))
      .filter((f) => f.code !== 'ERR_DEADLINE_EXCEEDED' || f.stalledMs < 100);
    const endpoints = c.stats().endpoints.map((e) => `${e.label} ${e.successes}/${e.failures}`).join(', ');
    const byCode = new Map<string, number>();
    for (const f of failed) byCode.set(f.code, (byCode.get(f.code) ?? 0) + 1);
    assert.deepEqual(unexplained.slice(0, 5), [], `${unexplained.length} failures not explained by a stall of this process; all failures by code: ${JSON.stringify([...byCode])}; the client's decisions: ${decisions.slice(0, 30).join(', ')}; endpoints (successes/failures): ${endpoints}`);
  });

  it('a timeout whose timer fired late because this process stalled is not charged to the endpoint; one on time is', async () => {
    const resolver = new FakeResolver();
    resolver.set([instance(await hungBackend())]);
    // A breaker that opens on the first failure it is told of.
    client = createClient({
      service: 'svc', resolver, perTryTimeoutMs: 50, timeoutMs: 5_000, retry: false, outlierDetection: false,
      breaker: { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeoutMs: 60_000 },
    });
    const c = client;
    await until(() => c.stats().endpoints.length === 1, 5_000, 'the snapshot');
    const stalled = c.request('/');
    // This process stands still for 200 ms (as under GC or CPU starvation): the 50 ms timer fires ~150 ms late.
    const until200 = performance.now() + 200;
    while (performance.now() < until200) {
      // busy
    }
    await assert.rejects(stalled, (e: unknown) => e instanceof RequestFailedError && e.reason === 'timeout');
    assert.equal(c.stats().endpoints[0]!.breaker, 'closed', 'a stalled timeout opened the breaker');
    await assert.rejects(c.request('/'), (e: unknown) => e instanceof RequestFailedError && e.reason === 'timeout');
    assert.equal(c.stats().endpoints[0]!.breaker, 'open', 'a timeout on time is charged to the endpoint');
  });

  // undici settles a request waiting in its pool's queue (for a free connection, or for a connect still
  // in progress) only once a connection takes it up (nodejs/undici#386). The client settles an attempt
  // itself when it stops it, so a wait for a connection ends at the deadline too, on both paths.
  describe('a request waiting for a connection ends at its deadline', () => {
    const SLACK_MS = 100; // a loaded CI machine; without the fix these waits last seconds or forever
    let dispatcher: ReturnType<typeof createDispatcher> | undefined;
    afterEach(async () => {
      await dispatcher?.destroy();
      dispatcher = undefined;
    });

    /** Sends GET `path` to the service on `port` by `way`, with deadline `timeoutMs`; resolves with the status and the unread body. */
    function sender(way: 'client.request()' | 'the dispatcher', port: number, options: Omit<ClientOptions, 'service' | 'resolver'>) {
      const resolver = new FakeResolver();
      resolver.set([instance(port)]);
      if (way === 'client.request()') {
        const c = createClient({ service: 'svc', resolver, ...options });
        client = c;
        return async (path: string, timeoutMs: number) => {
          const res = await c.request({ path, timeoutMs });
          return { status: res.statusCode, body: res.body };
        };
      }
      const d = createDispatcher({ resolver, client: options });
      dispatcher = d;
      return async (path: string, timeoutMs: number) => {
        const res = await undiciRequest(`http://svc${path}`, { dispatcher: d, timeoutMs } as Parameters<typeof undiciRequest>[1]);
        return { status: res.statusCode, body: res.body };
      };
    }

    /** A deadline error, by either path (the dispatcher hands the client's error to undici's caller). */
    function isDeadline(error: unknown): boolean {
      return error instanceof DeadlineExceededError || (error as { code?: string }).code === 'ERR_DEADLINE_EXCEEDED';
    }

    it('a connect that never completes fails as a connect failure after connectTimeoutMs, on our own timer', async () => {
      const listener = await startUnansweredListener();
      try {
        const send = sender('client.request()', listener.port, { connectTimeoutMs: 300, perTryTimeoutMs: 2_000, timeoutMs: 5_000, retry: false, outlierDetection: false, breaker: false, logger: false });
        const t0 = performance.now();
        const error = await send('/', 5_000).then(() => undefined, (e: unknown) => e);
        const took = performance.now() - t0;
        console.log(`      [measure] connect never completes, connectTimeoutMs 300: failed after ${took.toFixed(1)} ms`);
        assert.ok(error instanceof RequestFailedError && error.reason === 'connect', `a connect failure, not ${String(error)}`);
        // undici's own connect timeout runs on its coarse timer wheel: 300 ms took 0.9 s.
        assert.ok(took >= 295 && took < 300 + SLACK_MS, `took ${took.toFixed(1)} ms`);
      } finally {
        await listener.close();
      }
    });

    for (const way of ['client.request()', 'the dispatcher'] as const) {
      it(`through ${way}: queued behind the endpoint's one connection, held by a body still being read`, async () => {
        // /stream answers its head and a first chunk and never ends; / answers at once.
        const backend = await startServer((req, res) => {
          if (req.url === '/stream') res.writeHead(200).write('first chunk');
          else res.end('ok');
        });
        servers.push(backend);
        const send = sender(way, backend.port, { connectionsPerEndpoint: 1, retry: false, outlierDetection: false, breaker: false, logger: false });
        const streaming = await send('/stream', 10_000);
        assert.equal(streaming.status, 200);
        const t0 = performance.now();
        const error = await send('/', 300).then(() => undefined, (e: unknown) => e);
        const took = performance.now() - t0;
        console.log(`      [measure] ${way}: queued for a held connection, 300 ms deadline: failed after ${took.toFixed(1)} ms`);
        assert.ok(isDeadline(error), `a deadline error, not ${String(error)}`);
        assert.ok(took >= 295 && took < 300 + SLACK_MS, `took ${took.toFixed(1)} ms`);
        streaming.body.destroy();
      });

      it(`through ${way}: a connect that never completes ends at the deadline, not at the connect timeout`, async () => {
        const listener = await startUnansweredListener();
        try {
          const send = sender(way, listener.port, { connectTimeoutMs: 10_000, retry: false, outlierDetection: false, breaker: false, logger: false });
          const t0 = performance.now();
          const error = await send('/', 300).then(() => undefined, (e: unknown) => e);
          const took = performance.now() - t0;
          console.log(`      [measure] ${way}: connect never completes, 300 ms deadline, 10 s connect timeout: failed after ${took.toFixed(1)} ms`);
          assert.ok(isDeadline(error), `a deadline error, not ${String(error)}`);
          assert.ok(took >= 295 && took < 300 + SLACK_MS, `took ${took.toFixed(1)} ms`);
        } finally {
          await listener.close();
        }
      });
    }
  });

  describe('honest deadline errors, and no connection left behind', () => {
    /** One request's end: how long it took by the caller's clock, and how. */
    async function timed(send: () => Promise<unknown>): Promise<{ ms: number; error: unknown }> {
      const t0 = performance.now();
      try {
        await send();
        return { ms: performance.now() - t0, error: undefined };
      } catch (error) {
        return { ms: performance.now() - t0, error };
      }
    }

    it('ERR_DEADLINE_EXCEEDED only once the deadline has passed; when no retry fits the time left, the last attempt\'s own error at once', async () => {
      const resolver = new FakeResolver();
      resolver.set([instance(await hungBackend()), instance(await hungBackend())]);
      // Default retries: per-try 2/5 of 300 ms, so after two timed-out attempts the next backoff often does not fit.
      // Breakers, ejection and the budget off: every request makes its attempts (else most fail fast, unmeasured).
      const options: Partial<ClientOptions> = { timeoutMs: 300, breaker: false, outlierDetection: false, retry: { budget: { ratio: 1, minRetriesPerSecond: 1_000 } } };
      client = createClient({ service: 'svc', resolver, ...options });
      const dispatcher = createDispatcher({ resolver, client: options });
      const c = client;
      const ends: { ms: number; error: unknown }[] = [];
      try {
        // 60 requests in batches of 10 (the early error hit 1–2 of 10 before the fix), both ways in.
        for (let batch = 0; batch < 6; batch++) {
          const viaDispatcher = batch % 2 === 1;
          ends.push(...(await Promise.all(Array.from({ length: 10 }, () => timed(() => viaDispatcher
            ? undiciRequest('http://svc.service.consul/', { dispatcher }).then((r) => r.body.dump())
            : c.request('/'))))));
        }
      } finally {
        await dispatcher.close();
      }
      const deadline = ends.filter((e) => e.error instanceof DeadlineExceededError);
      const lastAttempt = ends.filter((e) => e.error instanceof RequestFailedError);
      const early = deadline.filter((e) => e.ms < 300);
      const fmt = (list: { ms: number }[]): string => list.length === 0 ? '-' : `${Math.min(...list.map((e) => e.ms)).toFixed(0)}–${Math.max(...list.map((e) => e.ms)).toFixed(0)} ms`;
      console.log(`      [measure] 60 requests, 300 ms deadline, hung backends: ${deadline.length} ERR_DEADLINE_EXCEEDED at ${fmt(deadline)}, ` +
        `${lastAttempt.length} ended with the last attempt's timeout at ${fmt(lastAttempt)}`);
      const other = ends.filter((e) => !(e.error instanceof DeadlineExceededError) && !(e.error instanceof RequestFailedError));
      assert.deepEqual(other.map((e) => `${(e.error as Error | undefined)?.name}: ${(e.error as Error | undefined)?.message}`), [], 'every request fails with one of the two');
      assert.deepEqual(early.map((e) => Math.round(e.ms)), [], 'ERR_DEADLINE_EXCEEDED before the deadline passed');
      for (const e of lastAttempt) {
        assert.equal((e.error as RequestFailedError).reason, 'timeout');
        assert.ok(e.ms >= 200, `before two per-try timeouts could pass (${e.ms.toFixed(0)} ms)`);
      }
    });

    it('closes the connection of every abandoned request (deadline, per-try timeout, caller abort), through the client and the dispatcher', async () => {
      const resolver = new FakeResolver();
      resolver.set([instance(await hungBackend())]);
      // A keep-alive far longer than the test waits: a connection left idle would still be open.
      const options: Partial<ClientOptions> = { timeoutMs: 300, keepAliveTimeoutMs: 60_000 };
      client = createClient({ service: 'svc', resolver, ...options });
      const dispatcher = createDispatcher({ resolver, client: options });
      const c = client;
      try {
        for (let round = 0; round < 3; round++) {
          const controller = new AbortController();
          setTimeout(() => controller.abort(), 50);
          await Promise.all([
            ...Array.from({ length: 5 }, () => c.request('/').catch(() => undefined)),
            ...Array.from({ length: 5 }, () => undiciRequest('http://svc.service.consul/', { dispatcher }).then((r) => r.body.dump(), () => undefined)),
            c.request({ path: '/', signal: controller.signal }).catch(() => undefined),
            undiciRequest('http://svc.service.consul/', { dispatcher, signal: controller.signal }).then((r) => r.body.dump(), () => undefined),
          ]);
        }
        const t0 = performance.now();
        await until(() => sockets.size === 0, 2_000, `every connection to the hung backend to close (${sockets.size} open)`);
        console.log(`      [measure] 36 abandoned requests: connections at the backend 0 within ${(performance.now() - t0).toFixed(0)} ms of the last one ending`);
      } finally {
        await dispatcher.close();
      }
    });
  });
});
