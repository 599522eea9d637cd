/**
 * End to end: @proxyless/gateway (packages/gateway) against a real Consul
 * dev agent and real backend services on loopback, its status page driven in
 * headless Chromium; then the same gateway on a real etcd.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type BrowserContext } from 'playwright-core';
import { chromiumBinary } from './support/chromium.js';
import { createTestCa } from './support/certificates.js';
import { startConsulAgent, type ConsulAgent } from './support/consul.js';
import { startEtcd, type EtcdServer } from './support/etcd.js';
import { EtcdClient } from '@proxyless/etcd';
import { createGateway, type Gateway, type GatewayStatus, type RouteCounters } from '@proxyless/gateway';
import { eventually } from './support/wait.js';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** What a backend saw of one request. */
interface Seen {
  instance: string;
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

interface Backend {
  readonly name: string;
  readonly server: Server;
  readonly port: number;
  readonly seen: Seen[];
  /** Resolvers waiting for the streaming test's signals; `flooded`: bytes /flood has handed to its socket so far. */
  readonly hooks: { firstChunk?: () => void; release?: Promise<void>; flooded?: number };
}

/** What the /flood route sends: far more than the socket buffers of two loopback hops hold. */
const FLOOD_BYTES = 96 << 20;

async function startBackend(name: string): Promise<Backend> {
  const seen: Seen[] = [];
  const hooks: Backend['hooks'] = {};
  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    seen.push({ instance: name, method: req.method ?? '', url, headers: req.headers });
    if (url.startsWith('/echo-body')) {
      // Streams the request body straight back.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-instance': name });
      req.pipe(res);
      return;
    }
    if (url.startsWith('/stream')) {
      // Request direction: report the first chunk before the client has finished.
      req.once('data', () => hooks.firstChunk?.());
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first;');
      void Promise.all([hooks.release ?? Promise.resolve(), once(req, 'end')]).then(() => res.end('last'));
      return;
    }
    if (url.startsWith('/flood')) {
      // As fast as its socket takes it: FLOOD_BYTES in 1 MiB chunks, waiting for 'drain' only when write() says so.
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': FLOOD_BYTES });
      const chunk = Buffer.alloc(1 << 20, 120);
      let sent = 0;
      const pump = (): void => {
        while (sent < FLOOD_BYTES) {
          sent += chunk.length;
          hooks.flooded = sent;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    if (url.startsWith('/reported')) {
      // A server that reports its load (ORCA's inline header), for the status page's column.
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'endpoint-load-metrics': 'TEXT application_utilization=0.75, rps_fractional=120, eps=0' });
      res.end('reported');
      return;
    }
    if (url.startsWith('/delay')) {
      // A known service time, for the measured latency on the status page.
      const timer = setTimeout(() => res.end('done'), 40);
      res.once('close', () => clearTimeout(timer));
      req.resume();
      return;
    }
    const status = /^\/status\/(\d{3})/.exec(url);
    if (status) {
      req.resume();
      res.writeHead(Number(status[1]), { 'content-type': 'text/plain' });
      res.end('as asked');
      return;
    }
    if (url.startsWith('/break')) {
      // Headers and a first chunk, then the instance dies mid-body.
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial;');
      setTimeout(() => res.socket?.destroy(), 50);
      return;
    }
    if (url.startsWith('/slow')) {
      const timer = setTimeout(() => res.end('late'), 3_000);
      res.once('close', () => clearTimeout(timer));
      req.resume();
      return;
    }
    req.resume();
    res.writeHead(200, {
      'content-type': 'application/json',
      'x-instance': name,
      // Hop-by-hop headers the gateway must not pass back to the client.
      connection: 'keep-alive, X-Backend-Hop',
      'x-backend-hop': 'secret',
      'keep-alive': 'timeout=5',
    });
    res.end(JSON.stringify({ instance: name, method: req.method, url }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { name, server, port: (server.address() as AddressInfo).port, seen, hooks };
}

async function stopBackend(backend: Backend): Promise<void> {
  backend.server.closeAllConnections();
  backend.server.close();
  await once(backend.server, 'close').catch(() => undefined);
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function send(url: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer | string; agent?: Agent } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: options.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Runs the `proxyless-gateway` bin (packages/gateway/src/cli.ts) as a child process with `env`; resolves once it listens. */
async function startGatewayProcess(env: Record<string, string>, args: string[] = []): Promise<{ child: ChildProcess; url: string; output: () => string; exited: Promise<unknown[]> }> {
  const child = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', 'packages/gateway/src/cli.ts', ...args], {
    env: { ...process.env, ...env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = once(child, 'exit');
  try {
    const url = await eventually('the gateway to listen', () => /listening on (http:\/\/\S+)/.exec(output)?.[1], 30_000);
    return { child, url, output: () => output, exited };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

/** A request through a gateway process reaches `instance`; then SIGTERM, and the process exits 0. */
async function routesThenExits(gw: Awaited<ReturnType<typeof startGatewayProcess>>, path: string, instance: string): Promise<void> {
  const reply = await eventually('a request through the child gateway', async () => {
    const r = await send(gw.url + path);
    return r.status === 200 ? r : undefined;
  });
  assert.equal(JSON.parse(reply.body.toString()).instance, instance);
  gw.child.kill('SIGTERM');
  const [code] = (await gw.exited) as [number | null];
  assert.equal(code, 0, gw.output());
}

describe('@proxyless/gateway, end to end (real Consul, real services, headless Chromium)', function () {
  this.timeout(120_000);
  let agent: ConsulAgent;
  let gateway: Gateway;
  let base: string;
  const backends: Backend[] = [];

  async function register(backend: Backend, service: string, id = backend.name): Promise<void> {
    const res = await fetch(`${agent.httpUrl}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify({ Name: service, ID: id, Address: '127.0.0.1', Port: backend.port }),
    });
    assert.equal(res.status, 200, await res.text());
  }

  async function deregister(id: string): Promise<void> {
    const res = await fetch(`${agent.httpUrl}/v1/agent/service/deregister/${id}`, { method: 'PUT' });
    await res.arrayBuffer();
  }

  async function backend(name: string, service: string): Promise<Backend> {
    const b = await startBackend(name);
    backends.push(b);
    await register(b, service);
    return b;
  }

  before(async () => {
    agent = await startConsulAgent();
    await backend('users-1', 'users');
    await backend('users-2', 'users');
    await backend('orders-1', 'orders');
    gateway = createGateway({
      consulAddress: agent.httpAddr,
      port: 0,
      routes: [
        { path: '/api/people/**', service: 'users' },
        { path: '/secure/**', service: 'orders', auth: true },
        { path: '/quick/**', service: 'orders', timeoutMs: 300, retries: 0 },
        { path: '/nowhere/**', service: 'absent' },
        { path: '/orders/keep/**', service: 'orders', stripPrefix: false },
        { path: '/sturdy/**', service: 'flaky', retries: 2 },
      ],
      authTokens: ['s3cret'],
      // The 5 MB upload below is over the 1 MiB default body limit.
      defaults: { maxBodyBytes: 8 * 1024 * 1024 },
    });
    base = await gateway.listen();
  });

  after(async () => {
    await gateway?.close({ graceMs: 1_000 });
    await Promise.all(backends.map(stopBackend));
    await agent?.stop();
  });

  it('routes /<service>/** to every instance of each catalog service, and explicit routes with their prefix stripped', async () => {
    const reached = new Set<string>();
    await eventually('both users instances and the orders instance to answer', async () => {
      for (const path of ['/users/u/42?x=1', '/orders/o/7']) {
        const reply = await send(base + path);
        if (reply.status !== 200) return false;
        const body = JSON.parse(reply.body.toString()) as { instance: string; url: string };
        assert.equal(body.url, path.replace(/^\/(users|orders)/, ''));
        assert.match(String(reply.headers['x-proxyless-upstream']), /^(users|orders)@127\.0\.0\.1:\d+$/);
        reached.add(body.instance);
      }
      return reached.size === 3;
    });
    const explicit = await send(`${base}/api/people/p/1`);
    assert.equal(explicit.status, 200);
    const body = JSON.parse(explicit.body.toString()) as { instance: string; url: string };
    assert.match(body.instance, /^users-/);
    assert.equal(body.url, '/p/1');
    assert.equal((await send(`${base}/unknown-service/x`)).status, 404);
  });

  it('routes a service registered after the gateway started, without a restart', async () => {
    assert.equal((await send(`${base}/billing/invoices`)).status, 404);
    await backend('billing-1', 'billing');
    const reply = await eventually('billing to become routable', async () => {
      const r = await send(`${base}/billing/invoices`);
      return r.status === 200 ? r : undefined;
    });
    assert.equal(JSON.parse(reply.body.toString()).instance, 'billing-1');
  });

  it('removes hop-by-hop headers both ways and adds X-Forwarded-* and X-Request-Id', async () => {
    const users = backends.filter((b) => b.name.startsWith('users-'));
    for (const b of users) b.seen.length = 0;
    const reply = await send(`${base}/users/headers`, {
      headers: {
        host: 'public.example:8443',
        connection: 'keep-alive, X-Client-Hop',
        'x-client-hop': 'drop me',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        'proxy-authorization': 'Basic Zm9vOmJhcg==',
        'x-forwarded-for': '203.0.113.9',
        'x-end-to-end': 'keep me',
      },
    });
    assert.equal(reply.status, 200);
    const seen = users.flatMap((b) => b.seen).find((s) => s.url === '/headers');
    assert.ok(seen, 'the backend saw the request');
    for (const name of ['x-client-hop', 'te', 'proxy-authorization']) assert.equal(seen.headers[name], undefined, `${name} was forwarded`);
    assert.notEqual(seen.headers['keep-alive'], 'timeout=5');
    assert.ok(!(seen.headers.connection ?? '').toLowerCase().includes('x-client-hop'));
    assert.equal(seen.headers['x-end-to-end'], 'keep me');
    // No trustedProxies: the client's own X-Forwarded-For is not believed, the gateway writes the peer's address.
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], 'public.example:8443');
    assert.equal(seen.headers['x-forwarded-prefix'], '/users');
    assert.match(String(seen.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    // Response direction: the backend's hop-by-hop headers stay behind.
    assert.equal(reply.headers['x-backend-hop'], undefined);
    assert.equal(reply.headers['x-request-id'], seen.headers['x-request-id']);
    // A client's own request id is kept.
    const own = await send(`${base}/users/headers`, { headers: { 'x-request-id': 'abc-123' } });
    assert.equal(own.headers['x-request-id'], 'abc-123');
  });

  it('keeps the prefix on routes with stripPrefix: false, and retries a refused connection on another instance', async () => {
    const kept = await send(`${base}/orders/keep/o/9`);
    assert.equal(kept.status, 200);
    assert.equal(JSON.parse(kept.body.toString()).url, '/orders/keep/o/9');

    // One live instance and one registered at a port nobody listens on.
    await backend('flaky-1', 'flaky');
    const ghost = await startBackend('flaky-ghost');
    await stopBackend(ghost);
    await register(ghost, 'flaky');
    const ghostLabel = `127.0.0.1:${ghost.port}`;
    await eventually('both flaky instances in the gateway', () =>
      gateway.status().services.find((s) => s.name === 'flaky')?.endpoints.length === 2);
    // Every request succeeds; the dead instance was tried (and failed) along the way.
    await eventually('a failed try on the dead instance', async () => {
      const reply = await send(`${base}/sturdy/x`);
      assert.equal(reply.status, 200, reply.body.toString());
      assert.match(String(reply.headers['x-proxyless-upstream']), /^flaky@/);
      const dead = gateway.status().services.find((s) => s.name === 'flaky')?.endpoints.find((e) => e.label === ghostLabel);
      return (dead?.failures ?? 0) > 0;
    });
    await deregister('flaky-ghost');
  });

  it('rejects auth routes without a valid bearer token', async () => {
    const none = await send(`${base}/secure/o/1`);
    assert.equal(none.status, 401);
    assert.equal(JSON.parse(none.body.toString()).error, 'unauthorized');
    assert.equal((await send(`${base}/secure/o/1`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    const ok = await send(`${base}/secure/o/1`, { headers: { authorization: 'Bearer s3cret' } });
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse(ok.body.toString()).url, '/o/1');
  });

  it('streams a 5 MB upload to the instance and its echo back', async () => {
    const payload = randomBytes(5 * 1024 * 1024);
    const reply = await new Promise<{ status: number; digest: string; size: number }>((resolve, reject) => {
      const req = httpRequest(`${base}/users/echo-body`, { method: 'POST', agent: false, headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        const hash = createHash('sha256');
        let size = 0;
        res.on('data', (c: Buffer) => {
          hash.update(c);
          size += c.length;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, digest: hash.digest('hex'), size }));
      });
      req.on('error', reject);
      for (let i = 0; i < payload.length; i += 64 * 1024) req.write(payload.subarray(i, i + 64 * 1024));
      req.end();
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.size, payload.length);
    assert.equal(reply.digest, createHash('sha256').update(payload).digest('hex'));
  });

  it('does not buffer: request bytes reach the instance and response bytes reach the client before either body ends', async () => {
    const orders = backends.find((b) => b.name === 'orders-1')!;
    let release!: () => void;
    orders.hooks.release = new Promise<void>((r) => (release = r));
    const firstChunkSeen = new Promise<void>((r) => (orders.hooks.firstChunk = r));
    const req = httpRequest(`${base}/orders/stream`, { method: 'POST', agent: false, headers: { 'transfer-encoding': 'chunked' } });
    req.write('hello;');
    // The instance sees our first chunk while our request is still open.
    await firstChunkSeen;
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    // And we see its first chunk while its response is still open.
    const [first] = (await once(res, 'data')) as [Buffer];
    assert.equal(first.toString(), 'first;');
    const rest: Buffer[] = [];
    res.on('data', (c: Buffer) => rest.push(c));
    release();
    req.end('bye');
    await once(res, 'end');
    assert.equal(Buffer.concat(rest).toString(), 'last');
    delete orders.hooks.release;
    delete orders.hooks.firstChunk;
  });

  it('passes back-pressure on: a client that stops reading pauses the instance instead of the gateway buffering its body', async () => {
    const orders = backends.find((b) => b.name === 'orders-1')!;
    orders.hooks.flooded = 0;
    const req = httpRequest(`${base}/orders/flood`, { agent: false });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    assert.equal(res.statusCode, 200);
    res.pause();
    // Wait until the instance stops writing (its socket full) or has sent everything.
    let last = -1;
    for (let stable = 0; stable < 5; ) {
      await sleep(100);
      const now = orders.hooks.flooded;
      stable = now === last ? stable + 1 : 0;
      last = now;
      if (now >= FLOOD_BYTES) break;
    }
    // Kernel buffers of the two hops and the gateway's high-water marks hold some MiB; never the whole body.
    assert.ok(last < FLOOD_BYTES / 2, `the instance wrote ${String(last >> 20)} MiB of ${String(FLOOD_BYTES >> 20)} to a client that read nothing`);
    let received = 0;
    res.on('data', (c: Buffer) => (received += c.length));
    res.resume();
    await once(res, 'end');
    assert.equal(received, FLOOD_BYTES);
  });

  it('answers 504 past a route timeout, 503 with no instances, 502 when the instance is unreachable, as small JSON', async () => {
    const slow = await send(`${base}/quick/slow`);
    assert.equal(slow.status, 504);
    assert.equal(JSON.parse(slow.body.toString()).error, 'gateway_timeout');
    const none = await eventually('a 503 for a service with no instances', async () => {
      const r = await send(`${base}/nowhere/x`);
      return r.status === 503 ? r : undefined;
    });
    assert.match(String(none.headers['content-type']), /application\/json/);
    assert.equal(JSON.parse(none.body.toString()).error, 'service_unavailable');
    // An instance registered at a port nobody listens on.
    const ghost = await startBackend('ghost-1');
    await stopBackend(ghost);
    await register(ghost, 'ghost');
    const dead = await eventually('a 502 from an unreachable instance', async () => {
      const r = await send(`${base}/ghost/x`);
      return r.status === 502 ? r : undefined;
    });
    assert.equal(JSON.parse(dead.body.toString()).error, 'bad_gateway');
    assert.ok(JSON.parse(dead.body.toString()).requestId);
    await deregister('ghost-1');
  });

  it('shows each endpoint\'s measured latency (p50/p99 of its answers) apart from the balancer\'s cost estimate', async () => {
    const timed = await backend('timed-1', 'timed');
    await eventually('timed to be routable', async () => (await send(`${base}/timed/delay`)).status === 200);
    for (let i = 0; i < 20; i++) assert.equal((await send(`${base}/timed/delay`)).status, 200);
    const doc = JSON.parse((await send(`${base}/_proxyless/status.json`)).body.toString()) as GatewayStatus;
    const endpoint = doc.services.find((s) => s.name === 'timed')?.endpoints.find((e) => e.label === `127.0.0.1:${timed.port}`);
    assert.ok(endpoint, JSON.stringify(doc.services));
    assert.ok(endpoint.latency.samples >= 21, JSON.stringify(endpoint));
    // The backend takes 40 ms: the measured median is at least that; generous upper bounds for a loaded machine.
    assert.ok(endpoint.latency.p50Ms !== null && endpoint.latency.p50Ms >= 40 && endpoint.latency.p50Ms < 2_000, JSON.stringify(endpoint));
    assert.ok(endpoint.latency.p99Ms !== null && endpoint.latency.p99Ms >= endpoint.latency.p50Ms, JSON.stringify(endpoint));
    assert.ok(endpoint.latency.meanMs !== null && endpoint.latency.meanMs >= 40, JSON.stringify(endpoint));
    assert.equal(typeof endpoint.costMs, 'number');
    assert.equal('ewmaMs' in endpoint, false, 'the estimate is not labelled as a latency');
  });

  it("shows each endpoint's reported load (utilisation, rps, age), and null for one that does not report", async () => {
    const reporting = await backend('reporting-1', 'reporting');
    await eventually('reporting to be routable', async () => (await send(`${base}/reporting/reported`)).status === 200);
    for (let i = 0; i < 3; i++) assert.equal((await send(`${base}/reporting/reported`)).status, 200);
    const doc = JSON.parse((await send(`${base}/_proxyless/status.json`)).body.toString()) as GatewayStatus;
    const endpoint = doc.services.find((s) => s.name === 'reporting')?.endpoints.find((e) => e.label === `127.0.0.1:${reporting.port}`);
    assert.ok(endpoint, JSON.stringify(doc.services));
    assert.deepEqual({ ...endpoint.reportedLoad, ageMs: 0 }, { utilization: 0.75, rps: 120, ageMs: 0, usable: false });
    assert.ok(endpoint.reportedLoad !== null && endpoint.reportedLoad.ageMs >= 0 && endpoint.reportedLoad.ageMs < 10_000, JSON.stringify(endpoint));
    const silent = doc.services.find((s) => s.name === 'users')?.endpoints[0];
    assert.ok(silent !== undefined);
    assert.equal(silent.reportedLoad, null);
  });

  it('counts upstream failures (gateway 502/503/504, upstream 5xx, a body broken off) apart from client errors (4xx, hang-ups)', async () => {
    const route = async (id: string): Promise<GatewayStatus['routes'][number]> => {
      const doc = JSON.parse((await send(`${base}/_proxyless/status.json`)).body.toString()) as GatewayStatus;
      return doc.routes.find((r) => r.id === id) ?? { id, service: '', requests: 0, succeeded: 0, clientErrors: 0, rejected: 0, clientHangups: 0, upstreamFailures: 0 };
    };
    const users = '/users/** -> users';
    const before = { users: await route(users), secure: await route('/secure/** -> orders'), quick: await route('/quick/** -> orders') };
    assert.equal((await send(`${base}/users/status/404`)).status, 404);
    assert.equal((await send(`${base}/users/status/400`)).status, 400);
    assert.equal((await send(`${base}/users/status/500`)).status, 500);
    assert.equal((await send(`${base}/users/status/503`)).status, 503);
    assert.equal((await send(`${base}/users/ok`)).status, 200);
    assert.equal((await send(`${base}/secure/o/1`)).status, 401);
    assert.equal((await send(`${base}/quick/slow`)).status, 504);
    // A body the instance breaks off: the client sees its answer cut short.
    await assert.rejects(send(`${base}/users/break`));
    // A client that hangs up before its answer.
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${base}/users/slow`, { agent: false });
      req.on('error', () => resolve());
      req.end();
      setTimeout(() => req.destroy(), 200);
    });
    const after = await eventually('the hang-up to be counted', async () => {
      const r = await route(users);
      return r.clientHangups > before.users.clientHangups ? r : undefined;
    });
    const delta = (k: keyof RouteCounters): number => after[k] - before.users[k];
    assert.deepEqual(
      { requests: delta('requests'), succeeded: delta('succeeded'), clientErrors: delta('clientErrors'), clientHangups: delta('clientHangups'), upstreamFailures: delta('upstreamFailures') },
      { requests: 7, succeeded: 1, clientErrors: 2, clientHangups: 1, upstreamFailures: 3 },
    );
    const secure = await route('/secure/** -> orders');
    assert.equal(secure.clientErrors - before.secure.clientErrors, 1);
    assert.equal(secure.upstreamFailures - before.secure.upstreamFailures, 0);
    const quick = await route('/quick/** -> orders');
    assert.equal(quick.upstreamFailures - before.quick.upstreamFailures, 1);
    assert.equal(quick.clientErrors - before.quick.clientErrors, 0);
  });

  describe('status page in headless Chromium', () => {
    let profile: string | undefined;
    const contexts: BrowserContext[] = [];

    before(async function () {
      this.timeout(15 * 60_000); // a first run installs Debian's chromium with apt-get
      const executablePath = await chromiumBinary();
      profile = mkdtempSync(join(tmpdir(), 'proxyless-gateway-chromium-'));
      // A fresh user-data-dir per run (launchPersistentContext is how Playwright takes one).
      // ignoreHTTPSErrors: the TLS gateway below serves a certificate of a throw-away CA.
      contexts.push(await chromium.launchPersistentContext(profile, { executablePath, args: CHROMIUM_ARGS, headless: true, ignoreHTTPSErrors: true }));
    });

    after(async () => {
      for (const c of contexts) await c.close();
      if (profile) rmSync(profile, { recursive: true, force: true });
    });

    it('shows every service and endpoint and refreshes live as traffic flows and instances join', async () => {
      const page = await contexts[0]!.newPage();
      await page.goto(`${base}/_proxyless/status`);
      const rows = (service: string) => page.locator(`table[data-service="${service}"] tbody tr[data-endpoint]`);
      const cell = (service: string, port: number, col: string) =>
        page.locator(`table[data-service="${service}"] tr[data-endpoint="127.0.0.1:${port}"] td[data-col="${col}"]`);

      const users = backends.filter((b) => b.name.startsWith('users-'));
      await eventually('users and orders tables with their endpoints', async () =>
        (await rows('users').count()) === 2 && (await rows('orders').count()) === 1 && (await rows('billing').count()) === 1);
      for (const b of users) {
        assert.equal(await cell('users', b.port, 'health').textContent(), 'passing');
        assert.equal(await cell('users', b.port, 'breaker').textContent(), 'closed');
      }
      // The columns say what they show: measured latency, and the balancer's estimate as a cost.
      const headers = await page.locator('table[data-service="users"] th').allTextContents();
      for (const title of ['Latency p50 ms', 'Latency p99 ms', 'Balancer cost (peak EWMA) ms', 'Reported load (utilisation · rps · age)']) assert.ok(headers.includes(title), headers.join(' | '));
      assert.match((await page.locator('#summary').textContent()) ?? '', /upstream failures \d+ · client errors \d+ · client hang-ups \d+/);
      await eventually('the users route row', async () => (await page.locator('#routes tr[data-route="/users/** -> users"] td[data-col="clientErrors"]').count()) === 1);
      const successes = async (): Promise<number> => {
        let total = 0;
        for (const b of users) total += Number(await cell('users', b.port, 'successes').textContent());
        return total;
      };
      const before = await successes();
      for (let i = 0; i < 10; i++) assert.equal((await send(`${base}/users/ping`)).status, 200);
      // No reload: the page's own once-a-second fetch picks the counts up.
      await eventually('the success counts on the page to grow by 10', async () => (await successes()) >= before + 10);

      const late = await backend('users-3', 'users');
      await eventually('the new users endpoint to appear on the page', async () => (await cell('users', late.port, 'endpoint').count()) === 1);
      assert.equal(await cell('users', late.port, 'endpoint').textContent(), `127.0.0.1:${late.port}`);
      await page.close();
    });

    it("shows the routes key (revision, when applied, last error) and the TLS certificate (subject, expiry, reloads, last refusal)", async () => {
      const ca = createTestCa();
      const issued = ca.issue('status-page');
      const files = { certFile: join(ca.dir, 'served.pem'), keyFile: join(ca.dir, 'served.key') };
      copyFileSync(issued.certFile, files.certFile);
      copyFileSync(issued.keyFile, files.keyFile);
      const key = 'proxyless/gateway/status-page-routes';
      const put = async (value: string): Promise<void> => assert.equal(await (await fetch(`${agent.httpUrl}/v1/kv/${key}`, { method: 'PUT', body: value })).text(), 'true');
      await put(JSON.stringify([{ path: '/kv/**', service: 'users' }]));
      const tlsGateway = createGateway({
        consulAddress: agent.httpAddr,
        port: 0,
        serviceName: 'gateway-status-tls',
        discovery: { enabled: false },
        routesSource: { consulKey: key },
        tls: { ...files, reloadIntervalMs: 0 },
        log: () => undefined,
      });
      try {
        const url = await tlsGateway.listen();
        const page = await contexts[0]!.newPage();
        await page.goto(`${url}/_proxyless/status`);
        const field = (source: string, name: string) => page.locator(`#sources [data-source="${source}"] [data-field="${name}"]`);
        await eventually('the routes source line', async () => (await field('routes', 'key').count()) === 1);
        assert.equal(await field('routes', 'key').textContent(), `consul key ${key}`);
        assert.match((await field('routes', 'active').textContent()) ?? '', /^in use: revision \d+$/);
        assert.match((await field('routes', 'updatedAt').textContent()) ?? '', /^applied \S/);
        assert.equal(await field('routes', 'lastError').textContent(), 'no error');
        assert.equal(await field('tls', 'subject').textContent(), 'CN=status-page');
        assert.match((await field('tls', 'validTo').textContent()) ?? '', /^expires \w{3} +\d+ [\d:]+ \d{4} GMT$/);
        assert.equal(await field('tls', 'fingerprint256').textContent(), `SHA-256 ${issued.fingerprint256}`);
        assert.match((await field('tls', 'loadedAt').textContent()) ?? '', /^loaded \S/);
        assert.equal(await field('tls', 'reloads').textContent(), '0 reloads, 0 refused');
        assert.equal(await field('tls', 'lastError').textContent(), 'no error');

        // A refused routes value and a refused certificate show up on the next refresh.
        await put('[{ "path": ');
        writeFileSync(files.certFile, 'not a certificate');
        assert.equal(tlsGateway.reloadCertificate(), false);
        await eventually('the refusals on the page', async () => /refused: is not JSON/.test((await field('routes', 'lastError').textContent()) ?? '') && (await field('tls', 'reloads').textContent()) === '0 reloads, 1 refused');
        assert.match((await field('tls', 'lastError').textContent()) ?? '', /^last reload refused: .*tls\.certFile/);
        assert.equal(await field('tls', 'lastError').getAttribute('class'), 'bad');
        await page.close();
      } finally {
        await tlsGateway.close({ graceMs: 200 });
        await fetch(`${agent.httpUrl}/v1/kv/${key}`, { method: 'DELETE' });
        ca.remove();
      }
    });
  });

  describe('as a process (the proxyless-gateway bin)', () => {
    /** A SIGHUP rolling restart of a one-worker gateway under 8 request loops, each on a connection per request or on kept-alive ones. */
    async function rollingRestart(connections: 'per request' | 'keep-alive'): Promise<void> {
      // Kept-alive sockets as wrk and browsers hold them, and no retry: a socket the draining worker closed under a request fails it.
      const keepAlive = connections === 'keep-alive' ? new Agent({ keepAlive: true, maxSockets: 8 }) : undefined;
      const gw = await startGatewayProcess({ CONSUL_HTTP_ADDR: agent.httpAddr }, ['--workers', '1']);
      const { child } = gw;
      try {
        await eventually('orders through the gateway', async () => (await send(`${gw.url}/orders/x`)).status === 200);
        const pidsOf = async (): Promise<number[]> =>
          ((JSON.parse((await send(`${gw.url}/_proxyless/status.json`)).body.toString()) as GatewayStatus).workers ?? []).map((w) => w.pid);
        const before = await pidsOf();
        assert.equal(before.length, 1);
        let ok = 0;
        const failures: string[] = [];
        let stop = false;
        // Bounded: 8 loops, until the restart is over (at most 30 s) or 20,000 requests.
        const deadline = Date.now() + 30_000;
        const loop = async (): Promise<void> => {
          while (!stop && Date.now() < deadline && ok + failures.length < 20_000) {
            try {
              const r = await send(`${gw.url}/orders/x`, keepAlive ? { agent: keepAlive } : {});
              if (r.status === 200) ok++;
              else failures.push(`status ${String(r.status)}: ${r.body.toString()}`);
            } catch (error) {
              failures.push((error as Error).message);
            }
          }
        };
        const loops = Array.from({ length: 8 }, loop);
        await sleep(300);
        const sentBefore = ok;
        child.kill('SIGHUP');
        await eventually('the workers restarted', () => /workers restarted/.test(gw.output()), 25_000);
        await sleep(300);
        stop = true;
        await Promise.all(loops);
        const after = await pidsOf();
        console.log(`      [measure] rolling restart (${connections}): ${String(ok)} requests answered 200 (${String(ok - sentBefore)} after SIGHUP), ${String(failures.length)} failed; workers ${before.join()} -> ${after.join()}`);
        assert.deepEqual(failures.slice(0, 5), []);
        assert.ok(ok - sentBefore > 20, `only ${String(ok - sentBefore)} requests during the restart`);
        assert.equal(after.length, 1);
        assert.notEqual(after[0], before[0], 'a new worker serves');
        gw.child.kill('SIGTERM');
        const [code] = (await gw.exited) as [number | null];
        assert.equal(code, 0, gw.output());
      } finally {
        keepAlive?.destroy();
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    }

    it('restarts its workers one by one on SIGHUP with no failed request under a load loop (a connection per request)', () => rollingRestart('per request'));

    it('restarts its workers one by one on SIGHUP with no failed request on kept-alive connections (no retry)', () => rollingRestart('keep-alive'));

    it('registers itself in Consul and, on SIGTERM, drains, deregisters and exits 0', async () => {
      const gw = await startGatewayProcess({ CONSUL_HTTP_ADDR: agent.httpAddr }, ['--workers', '2']);
      const { child } = gw;
      try {
        // Two workers behind one port, one status document for both (the primary merges them over IPC).
        for (let i = 0; i < 10; i++) assert.equal((await send(`${gw.url}/orders/x`)).status, 200);
        const doc = JSON.parse((await send(`${gw.url}/_proxyless/status.json`)).body.toString()) as GatewayStatus;
        assert.equal(doc.workers?.length, 2, JSON.stringify(doc.workers));
        assert.equal(doc.workers.reduce((a, w) => a + w.requests, 0), doc.gateway.requests);
        assert.ok(doc.gateway.requests >= 10, JSON.stringify(doc.gateway));
        assert.equal(doc.routes.find((r) => r.id === '/orders/** -> orders')?.succeeded, doc.gateway.outcomes.succeeded);
        await eventually('the gateway to be registered and passing', async () => {
          const r = await fetch(`${agent.httpUrl}/v1/health/service/gateway?passing`);
          return ((await r.json()) as unknown[]).length === 1;
        });
        await routesThenExits(gw, '/orders/x', 'orders-1');
        const r = await fetch(`${agent.httpUrl}/v1/catalog/service/gateway`);
        assert.deepEqual(await r.json(), []);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });
  });
});

describe('@proxyless/gateway on etcd, end to end (real etcd, real services)', function () {
  this.timeout(120_000);
  let etcd: EtcdServer & { close(): Promise<void> };
  let admin: EtcdClient;
  let gateway: Gateway;
  let base: string;
  const backends: Backend[] = [];

  /** Registers a backend the way the registrar does: its JSON value under /proxyless/services/<service>/<id>. */
  async function backend(name: string, service: string, extra: Record<string, unknown> = {}): Promise<Backend> {
    const b = await startBackend(name);
    backends.push(b);
    await admin.put(`/proxyless/services/${service}/${name}`, JSON.stringify({ address: '127.0.0.1', port: b.port, ...extra }));
    return b;
  }

  const instanceOf = async (path: string): Promise<string | undefined> => {
    const r = await send(base + path);
    return r.status === 200 ? (JSON.parse(r.body.toString()) as { instance: string }).instance : undefined;
  };

  before(async () => {
    etcd = await startEtcd();
    admin = new EtcdClient({ endpoints: etcd.clientUrl }, {});
    await backend('users-1', 'users', { tags: ['v1'] });
    await backend('users-2', 'users', { tags: ['v2'] });
    await backend('orders-1', 'orders');
    gateway = createGateway({ registry: 'etcd', etcdEndpoints: [etcd.clientUrl], port: 0, routes: [{ path: '/api/people/**', service: 'users' }] });
    base = await gateway.listen();
  });

  after(async () => {
    await gateway?.close({ graceMs: 1_000 });
    await Promise.all(backends.map(stopBackend));
    await admin?.close();
    await etcd?.close();
  });

  it('routes /<service>/** to every instance of each service registered in etcd, and explicit routes', async () => {
    // The service list was read before listen() resolved: routable at once.
    assert.deepEqual([...(gateway.catalog?.services?.keys() ?? [])].sort(), ['orders', 'users']);
    assert.deepEqual(gateway.catalog?.services?.get('users'), ['v1', 'v2']);
    const reached = new Set<string>();
    await eventually('both users instances and the orders instance to answer', async () => {
      for (const path of ['/users/u/1', '/orders/o/1']) {
        const who = await instanceOf(path);
        if (who) reached.add(who);
      }
      return reached.size === 3;
    });
    assert.match((await instanceOf('/api/people/p/1')) ?? '', /^users-/);
    assert.equal((await send(`${base}/unknown/x`)).status, 404);
  });

  it('routes a service registered after the gateway started, and stops routing it once its last key is gone', async () => {
    assert.equal((await send(`${base}/billing/invoices`)).status, 404);
    await backend('billing-1', 'billing');
    assert.equal(await eventually('billing to become routable', () => instanceOf('/billing/invoices')), 'billing-1');
    await admin.delete('/proxyless/services/billing/billing-1');
    await eventually('billing to leave the routes', async () => (await send(`${base}/billing/invoices`)).status === 404);
    assert.equal(gateway.catalog?.services?.has('billing'), false);
  });

  it('leaves out a draining (critical) instance and ignores malformed keys, without a 5xx', async () => {
    await admin.put('/proxyless/services/users/users-2', JSON.stringify({ address: '127.0.0.1', port: backends[1]!.port, health: 'critical' }));
    await admin.put('/proxyless/services/users/garbage', '{not json');
    await admin.put('/proxyless/services/broken/only', 'not an instance');
    await eventually('users-2 out of the gateway', () => gateway.status().services.find((s) => s.name === 'users')?.endpoints.length === 1);
    for (let i = 0; i < 10; i++) assert.equal(await instanceOf('/users/x'), 'users-1');
    // A service whose only key is malformed is no service: never routed, no client made for it.
    assert.equal(gateway.catalog?.services?.has('broken'), false);
    assert.equal((await send(`${base}/broken/x`)).status, 404);
  });

  it('shows the services and endpoints on the status document, with no catalog error', async () => {
    const doc = JSON.parse((await send(`${base}/_proxyless/status.json`)).body.toString()) as GatewayStatus;
    const users = doc.services.find((s) => s.name === 'users');
    assert.ok(users, JSON.stringify(doc));
    assert.deepEqual(users.endpoints.map((e) => e.label), [`127.0.0.1:${backends[0]!.port}`]);
    assert.equal(doc.gateway.catalogError, null);
  });

  describe('as a process (the proxyless-gateway bin with REGISTRY=etcd)', () => {
    it('registers itself in etcd with a lease and, on SIGTERM, drains, deletes its key and exits 0', async () => {
      const gw = await startGatewayProcess({ REGISTRY: 'etcd', ETCDCTL_ENDPOINTS: etcd.clientUrl });
      const { child, url, output: log } = gw;
      try {
        assert.match(log(), /etcd at http:\/\/127\.0\.0\.1:\d+/);
        const key = await eventually('the gateway registered in etcd', async () => (await admin.range('/proxyless/services/gateway/', { prefix: true })).kvs[0]);
        assert.notEqual(key.lease, '0', 'the key is attached to a lease');
        assert.equal(JSON.parse(key.value.toString()).port, Number(new URL(url).port));
        await routesThenExits(gw, '/orders/x', 'orders-1');
        assert.equal((await admin.range('/proxyless/services/gateway/', { prefix: true })).kvs.length, 0, log());
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });
  });
});
