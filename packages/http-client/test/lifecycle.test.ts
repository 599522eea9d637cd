import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AbortedError, ClosedError, createClient } from '@proxyless/http-client';
import { FakeResolver, instance, ok, startServer, until } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));

describe('http-client: close() and destroy()', () => {
  const hung: NetServer[] = [];
  const sockets = new Set<Socket>();
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(hung.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

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

  it('destroy() fails in-flight requests at once and leaves no socket', async () => {
    const resolver = new FakeResolver();
    resolver.set([instance(await hungBackend()), instance(await hungBackend())]);
    const client = createClient({ service: 'svc', resolver, timeoutMs: 30_000 });
    const inFlight = Array.from({ length: 10 }, () => client.request('/').then(() => 'answered', (e: unknown) => e));
    await until(() => sockets.size >= 2, 2_000, 'connections to the hung backends');
    const t0 = performance.now();
    const reason = new Error('shutting down');
    await client.destroy(reason);
    const results = await Promise.all(inFlight);
    const took = performance.now() - t0;
    console.log(`      [measure] destroy() with 10 requests in flight: all failed within ${took.toFixed(1)} ms`);
    for (const r of results) assert.equal(r, reason);
    assert.ok(took < 200, `took ${took.toFixed(1)} ms`);
    await until(() => sockets.size === 0, 2_000, 'every socket to be closed');
    await assert.rejects(client.request('/'), (e: unknown) => e === reason);
    await client.destroy(); // idempotent
    await client.close(); // resolves too
  });

  it('close() lets requests in progress finish, then rejects new ones with ClosedError; both are idempotent', async () => {
    const server = await startServer((_q, res) => setTimeout(() => res.end('slow ok'), 200));
    try {
      const resolver = new FakeResolver();
      resolver.set([instance(server.port)]);
      const client = createClient({ service: 'svc', resolver });
      const pending = client.text('/');
      await until(() => server.hits === 1, 2_000, 'the request to reach the server');
      const closing = client.close();
      await assert.rejects(client.request('/'), ClosedError);
      assert.equal((await pending).body, 'slow ok');
      await closing;
      await client.close();
      await client.destroy();
    } finally {
      await server.close();
    }
  });

  it('discards the body of a retryable answer when the request is cancelled before its retry, so the connection is reused', async () => {
    // A 503 with a body larger than undici reads ahead, then 200s. One connection per endpoint: a body left unread would hold it.
    const server = await startServer((_q, res, s) => {
      if (s.hits === 1) res.writeHead(503, { 'content-type': 'text/plain' }).end('busy, try again\n'.repeat(16_384));
      else res.end('ok');
    });
    const resolver = new FakeResolver();
    resolver.set([instance(server.port)]);
    const client = createClient({
      service: 'svc',
      resolver,
      connectionsPerEndpoint: 1,
      retry: { maxRetries: 2, initialMs: 0 },
      outlierDetection: { consecutiveFailures: 1 },
      breaker: false,
      logger: false,
    });
    try {
      // The 503's outcome ejects the endpoint; the ejection cancels the request at that very moment,
      // between the answer and its retry.
      const controller = new AbortController();
      const cancelled = new Error('caller gave up');
      client.once('eject', () => controller.abort(cancelled));
      await assert.rejects(client.request({ path: '/', signal: controller.signal }), AbortedError);
      assert.equal(server.hits, 1, 'no retry after the cancel');
      const next = await client.text({ path: '/', timeoutMs: 2_000 });
      assert.equal(next.body, 'ok');
      assert.equal(server.hits, 2);
    } finally {
      await client.destroy();
      await server.close();
    }
  });

  it('lets the process exit by itself after close()', async () => {
    const server = await startServer(ok);
    try {
    const child = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', join(here, 'fixtures', 'exit-after-close.ts'), String(server.port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    assert.equal(code, 0, `child did not exit by itself: ${out}`);
    assert.match(out, /status 200/);
    } finally {
      await server.close();
    }
  });
});
