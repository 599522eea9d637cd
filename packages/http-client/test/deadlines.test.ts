import assert from 'node:assert/strict';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createClient, DeadlineExceededError, RequestError, RequestFailedError, type ProxylessClient } from '@proxyless/http-client';
import { FakeResolver, instance, startServer, type TestServer } from './helpers.js';

/** Deadlines and per-try timeouts are the client's own timers: they hold to the millisecond on real sockets. */
describe('http-client: deadlines and per-try timeouts that hold', function () {
  this.timeout(120_000);
  let servers: TestServer[] = [];
  let client: ProxylessClient | undefined;
  const hung: NetServer[] = [];
  const sockets = new Set<Socket>();
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await Promise.all(servers.splice(0).map((s) => s.close()));
    for (const s of sockets) s.destroy();
    sockets.clear();
    await Promise.all(hung.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

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
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const elapsed = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const t0 = performance.now();
        await assert.rejects(c.request('/'), (e: unknown) => e instanceof RequestFailedError && e.reason === 'timeout' && e.attempts === 1);
        return performance.now() - t0;
      }),
    );
    loopDelay.disable();
    const stallMs = loopDelay.max / 1e6;
    console.log(
      `      [measure] per-try 100 ms against a hung backend: ${Math.min(...elapsed).toFixed(1)}–${Math.max(...elapsed).toFixed(1)} ms (20 requests; longest event-loop stall ${stallMs.toFixed(1)} ms)`,
    );
    // 100–150 ms alone (as in CI); on a starved machine, allow what this process's own stalls account for.
    for (const ms of elapsed) assert.ok(ms >= 99.5 && (ms <= 150 || ms - 100 <= 2 * stallMs + 20), `left after ${ms.toFixed(1)} ms (stall ${stallMs.toFixed(1)} ms)`);
  });

  it('over 1,000 requests with a 500 ms deadline, none ends more than 20 ms after its deadline', async () => {
    const resolver = new FakeResolver();
    // One hung backend and one answering anywhere between at once and well past the deadline.
    servers = [await startServer((_q, res) => setTimeout(() => res.end('late or not'), Math.random() * 900))];
    resolver.set([instance(await hungBackend()), instance(servers[0]!.port)]);
    // Breakers and ejection off: every request has to meet its deadline against both backends.
    client = createClient({ service: 'svc', resolver, timeoutMs: 500, breaker: false, outlierDetection: false });
    const c = client;
    let worst = 0;
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
        worst = Math.max(worst, performance.now() - t0);
      }
    };
    // The machine may be shared: record how long this process's event loop itself was stalled, so a
    // late end can be told apart from a coarse timer (undici's would end such requests ~0.5–1 s late).
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    await Promise.all(Array.from({ length: 32 }, worker));
    loopDelay.disable();
    const stallMs = loopDelay.max / 1e6;
    console.log(
      `      [measure] 1,000 requests, 500 ms deadline: slowest ended at ${worst.toFixed(1)} ms (${answered} answered, ${deadlines} deadline errors; longest event-loop stall ${stallMs.toFixed(1)} ms)`,
    );
    assert.ok(deadlines > 0, 'the deadline was reached by some requests');
    // Alone (as in CI) the 20 ms bound holds; on a starved machine the timers that were due during a
    // stall all fire after it, so lateness up to about twice the longest stall is the machine, not the client.
    assert.ok(worst <= 520 || worst - 500 <= 2 * stallMs + 20, `a request ended ${(worst - 500).toFixed(1)} ms after its deadline (event loop stalled at most ${stallMs.toFixed(1)} ms)`);
  });

  it('with default options, one hung backend among five: 20,000 idempotent GETs at 64 in flight, 500 ms deadline, 0 failures', async () => {
    const resolver = new FakeResolver();
    servers = await Promise.all([0, 1, 2, 3].map(() => startServer((_q, res, s) => res.end(`ok ${s.port}`))));
    resolver.set([instance(await hungBackend()), ...servers.map((s) => instance(s.port))]);
    client = createClient({ service: 'svc', resolver, timeoutMs: 500 });
    const c = client;
    let next = 0;
    let failures = 0;
    const errors = new Map<string, number>();
    let retried = 0;
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const t0 = performance.now();
    const worker = async (): Promise<void> => {
      while (next++ < 20_000) {
        try {
          const res = await c.request('/');
          if (res.attempts > 1) retried++;
          await res.body.dump();
          if (res.statusCode !== 200) failures++;
        } catch (error) {
          failures++;
          const code = (error as { code?: string }).code ?? String(error);
          errors.set(code, (errors.get(code) ?? 0) + 1);
        }
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
    console.log(
      `      [measure] 20,000 GETs, 1 hung of 5, defaults + 500 ms deadline: ${failures} failures, ${retried} answered on a retry, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    loopDelay.disable();
    const stallMs = loopDelay.max / 1e6;
    console.log(`      [measure] longest event-loop stall of this process during the run: ${stallMs.toFixed(1)} ms`);
    if (stallMs < 100) {
      assert.equal(failures, 0, `failures by code: ${JSON.stringify([...errors])}`);
    } else {
      // A starved machine (this process's loop stalled ≥ 100 ms, a fifth of the deadline): requests
      // queued behind the stall can miss their deadline whatever the client does. Alone (as in CI) the
      // first branch applies; here only deadline errors, and few of them, are accepted.
      assert.deepEqual([...errors.keys()].filter((code) => code !== 'ERR_DEADLINE_EXCEEDED'), [], `failures by code: ${JSON.stringify([...errors])}`);
      assert.ok(failures <= 200, `${failures} deadline errors with a ${stallMs.toFixed(0)} ms stall`);
    }
  });
});
