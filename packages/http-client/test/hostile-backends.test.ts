import assert from 'node:assert/strict';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { roundRobin } from '@proxyless/core';
import {
  createClient,
  CircuitOpenError,
  DeadlineExceededError,
  NoHealthyEndpointsError,
  RequestFailedError,
  ResponseTooLargeError,
  type ProxylessClient,
  type ClientResponse,
} from '@proxyless/http-client';
import { FakeResolver, freePort, instance, ok, startServer, until, type TestServer } from './helpers.js';

describe('http-client: failures and hostile backends', () => {
  let servers: TestServer[] = [];
  let client: ProxylessClient | undefined;
  const rawServers: NetServer[] = [];
  const rawSockets = new Set<Socket>();
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
    for (const s of rawSockets) s.destroy();
    rawSockets.clear();
    await Promise.all(rawServers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  /** Server-side sockets of `raw()` servers still open: the client must not leave any behind. */
  let openRaw = 0;
  async function raw(onSocket: (socket: Socket) => void): Promise<number> {
    const server = createNetServer((socket) => {
      rawSockets.add(socket);
      openRaw++;
      socket.once('close', () => openRaw--);
      socket.on('data', () => undefined); // keep reading, so the client's close is seen
      socket.on('error', () => undefined);
      onSocket(socket);
    });
    rawServers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as AddressInfo).port;
  }

  it('loses no idempotent request when an endpoint is killed mid-load', async () => {
    servers = await Promise.all([0, 1, 2].map(() => startServer((_q, res, s) => setTimeout(() => res.end(`ok ${s.port}`), 2))));
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    client = createClient({ service: 'svc', resolver, timeoutMs: 5_000 });
    const c = client;
    let failures = 0;
    let done = 0;
    let killed = false;
    const worker = async (): Promise<void> => {
      for (let i = 0; i < 60; i++) {
        try {
          const res = await c.request('/');
          assert.equal(res.statusCode, 200);
          await res.body.dump();
        } catch (error) {
          failures++;
          console.error(error);
        }
        done++;
        if (done === 200 && !killed) {
          killed = true;
          await servers[0]!.close();
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    assert.ok(killed);
    assert.equal(failures, 0);
    assert.equal(done, 960);
  });

  it('ejects an endpoint returning 500s and moves traffic to the others', async () => {
    const bad = await startServer((_q, res) => res.writeHead(500).end('boom'));
    const good = await Promise.all([startServer(ok), startServer(ok)]);
    servers = [bad, ...good];
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    // Round-robin keeps sending to the failing endpoint until ejection takes it out
    // (peak EWMA alone would already shy away from it after one failure).
    client = createClient({ service: 'svc', resolver, balancer: roundRobin(), outlierDetection: { consecutiveFailures: 3, baseEjectionTimeMs: 60_000 }, retry: { retryOnStatuses: [] } });
    const ejected: string[] = [];
    client.on('eject', (e) => ejected.push(e.label));
    for (let i = 0; i < 60; i++) await (await client.request('/')).body.dump();
    assert.deepEqual(ejected, [`127.0.0.1:${bad.port}`]);
    const hitsAfterEject = bad.hits;
    for (let i = 0; i < 60; i++) {
      const res = await client.request('/');
      assert.equal(res.statusCode, 200);
      await res.body.dump();
    }
    assert.equal(bad.hits, hitsAfterEject, 'ejected endpoint still got traffic');
    assert.ok(bad.hits <= 5, `bad endpoint got ${bad.hits} requests`);
    const stat = client.stats().endpoints.find((e) => e.label.endsWith(`:${bad.port}`));
    assert.equal(stat?.ejected, true);
  });

  it('retries 503 on another endpoint and honours Retry-After', async () => {
    const busy = await startServer((_q, res) => res.writeHead(503, { 'retry-after': '0' }).end());
    const fine = await startServer(ok);
    servers = [busy, fine];
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    client = createClient({ service: 'svc', resolver });
    for (let i = 0; i < 10; i++) {
      const res: ClientResponse = await client.request('/');
      assert.equal(res.statusCode, 200);
      assert.equal(res.endpoint.port, fine.port);
      await res.body.dump();
    }
  });

  it('fails fast with a typed error when every endpoint is down, then recovers when they return', async () => {
    const ports = await Promise.all([freePort(), freePort()]);
    const resolver = new FakeResolver();
    resolver.set(ports.map((p) => instance(p)));
    client = createClient({
      service: 'svc',
      resolver,
      breaker: { volumeThreshold: 4, resetTimeoutMs: 300, rollingWindowMs: 1000, rollingBuckets: 10 },
      outlierDetection: { consecutiveFailures: 2, baseEjectionTimeMs: 300 },
    });
    const started = Date.now();
    const errors: unknown[] = [];
    for (let i = 0; i < 10; i++) {
      try {
        await client.request('/');
      } catch (error) {
        errors.push(error);
      }
    }
    assert.equal(errors.length, 10);
    assert.ok(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
    for (const e of errors) {
      assert.ok(
        e instanceof RequestFailedError || e instanceof CircuitOpenError || e instanceof NoHealthyEndpointsError || e instanceof DeadlineExceededError,
        String(e),
      );
    }
    assert.ok(errors.some((e) => e instanceof CircuitOpenError), 'breakers should open');
    const first = errors[0] as RequestFailedError;
    assert.equal(first.reason, 'connect');
    assert.ok(first.endpointsTried.length >= 2, 'should have tried both endpoints');
    servers = await Promise.all(ports.map((p) => startServer(ok, p)));
    const c = client;
    await until(() => c.stats().endpoints.every((e) => e.breaker !== 'open' && !e.ejected), 5_000, 'breakers half-open');
    let okCount = 0;
    const deadline = Date.now() + 5_000;
    while (okCount < 20 && Date.now() < deadline) {
      try {
        const res: ClientResponse = await c.request('/');
        if (res.statusCode === 200) okCount++;
        await res.body.dump();
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    assert.equal(okCount, 20);
    // Peak EWMA may leave the endpoint that failed last without traffic (its penalty decays over time), so only one trial is sure to have closed a breaker.
    assert.ok(client.stats().endpoints.some((e) => e.breaker === 'closed'));
  });

  it('meets the deadline with a typed error when a backend accepts and never answers', async () => {
    const port = await raw(() => undefined);
    const resolver = new FakeResolver();
    resolver.set([instance(port)]);
    client = createClient({ service: 'svc', resolver, timeoutMs: 300 });
    const t0 = Date.now();
    // ERR_DEADLINE_EXCEEDED once the deadline has passed; or, when the last per-try timeout leaves no room for
    // another attempt, that attempt's own timeout (the honest-deadline rule: never "deadline exceeded" early).
    await assert.rejects(client.request('/'), (error) =>
      error instanceof DeadlineExceededError || (error instanceof RequestFailedError && error.reason === 'timeout'));
    assert.ok(Date.now() - t0 < 1_000, `took ${Date.now() - t0} ms`);
    // undici destroys the hung connection when the deadline aborts it (and may open a fresh idle one); close() leaves none.
    await client.close();
    await until(() => openRaw === 0, 2_000, 'every connection to the hung backend to be closed');
  });

  it('meets the deadline when a backend sends half a body', async () => {
    const port = await raw((socket) => {
      socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf'));
    });
    const resolver = new FakeResolver();
    resolver.set([instance(port)]);
    client = createClient({ service: 'svc', resolver, timeoutMs: 400 });
    const t0 = Date.now();
    await assert.rejects(client.text('/'), DeadlineExceededError);
    assert.ok(Date.now() - t0 < 1_500, `took ${Date.now() - t0} ms`);
    await client.close();
    await until(() => openRaw === 0, 2_000, 'every connection to the half-answering backend to be closed');
  });

  it('fails typed when a backend resets mid-response', async () => {
    const port = await raw((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial');
        setTimeout(() => socket.resetAndDestroy(), 20);
      });
    });
    const resolver = new FakeResolver();
    resolver.set([instance(port)]);
    client = createClient({ service: 'svc', resolver, timeoutMs: 2_000 });
    await assert.rejects(client.text('/'), (e: unknown) => e instanceof RequestFailedError && e.reason === 'reset');
  });

  it('fails typed when a reset happens before the response headers', async () => {
    const port = await raw((socket) => socket.once('data', () => socket.resetAndDestroy()));
    const resolver = new FakeResolver();
    resolver.set([instance(port)]);
    client = createClient({ service: 'svc', resolver, timeoutMs: 2_000 });
    await assert.rejects(client.request({ path: '/', method: 'POST', body: 'x' }), (e: unknown) => e instanceof RequestFailedError && e.reason === 'reset' && e.attempts === 1);
  });

  it('stops reading an oversized body at maxResponseBytes', async () => {
    servers = [await startServer((_q, res) => {
      const chunk = Buffer.alloc(64 * 1024, 97);
      const pump = (): void => {
        while (res.write(chunk)) { /* flood */ }
        res.once('drain', pump);
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
    })];
    const resolver = new FakeResolver();
    resolver.set([instance(servers[0]!.port)]);
    client = createClient({ service: 'svc', resolver, maxResponseBytes: 1024 * 1024, timeoutMs: 3_000 });
    await assert.rejects(client.text('/'), ResponseTooLargeError);
  });
});
