/**
 * @proxyless/gateway's protection: local rate limiting per route and client
 * key (429 + Retry-After, never forwarded), with a real Consul agent, real
 * backends and real sockets.
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startConsulAgent, type ConsulAgent } from './support/consul.js';
import { createGateway, type Gateway, type GatewayStatus } from '@proxyless/gateway';
import { RateLimiter, checkRateLimit } from '../packages/gateway/src/rate-limit.js';

describe('@proxyless/gateway limits (real Consul, real backend, real sockets)', function () {
  this.timeout(60_000);
  let agent: ConsulAgent;
  let backend: Server;
  let gateway: Gateway;
  let base: string;
  /** Requests the backend received, by path. */
  const hits = new Map<string, number>();

  before(async () => {
    agent = await startConsulAgent();
    backend = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      req.resume();
      req.once('end', () => res.end('ok'));
    });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    const port = (backend.address() as AddressInfo).port;
    const reg = await fetch(`${agent.httpUrl}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify({ Name: 'limits', ID: 'limits-1', Address: '127.0.0.1', Port: port }),
    });
    assert.equal(reg.status, 200, await reg.text());
    gateway = createGateway({
      consulAddress: agent.httpAddr,
      port: 0,
      discovery: { enabled: false },
      defaults: { rateLimit: { ratePerSecond: 1, burst: 1 } },
      routes: [
        { path: '/keyed/**', service: 'limits', rateLimit: { ratePerSecond: 2, burst: 3, key: 'header:x-api-key' } },
        { path: '/by-ip/**', service: 'limits' },
        { path: '/open/**', service: 'limits', rateLimit: null },
        { path: '/small/**', service: 'limits', rateLimit: null, maxBodyBytes: 1000 },
      ],
    });
    base = await gateway.listen();
  });

  after(async () => {
    await gateway?.close({ graceMs: 500 });
    backend?.close();
    backend?.closeAllConnections();
    await agent?.stop();
  });

  async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; retryAfter: string | null; body: string }> {
    const res = await fetch(`${base}${path}`, { headers, signal: AbortSignal.timeout(10_000) });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.text() };
  }

  it('answers 429 with Retry-After past the burst of one key, without forwarding; other keys, the ip fallback and unlimited routes pass; the bucket refills', async () => {
    const a = { 'x-api-key': 'key-a' };
    for (let i = 0; i < 3; i++) assert.equal((await get('/keyed/a', a)).status, 200, `burst request ${i + 1}`);
    const over = await get('/keyed/a', a);
    assert.equal(over.status, 429);
    // 2 tokens/s: the next one is at most 0.5 s away, rounded up to whole seconds.
    assert.equal(over.retryAfter, '1');
    assert.equal(JSON.parse(over.body).error, 'rate_limited');
    assert.equal(hits.get('/a'), 3, 'the refused request never reached the backend');
    // Another key and a request without the header (keyed by its ip) have buckets of their own.
    assert.equal((await get('/keyed/b', { 'x-api-key': 'key-b' })).status, 200);
    assert.equal((await get('/keyed/c')).status, 200);
    // A route with rateLimit: null ignores the default limit.
    for (let i = 0; i < 5; i++) assert.equal((await get('/open/o')).status, 200);
    // Refill: 2 tokens/s, so one token within 0.5 s (generous wait for a loaded machine).
    await sleep(700);
    assert.equal((await get('/keyed/a', a)).status, 200);

    const routes = (await (await fetch(`${base}/_proxyless/status.json`)).json() as GatewayStatus).routes;
    const keyed = routes.find((r) => r.id === '/keyed/** -> limits');
    assert.ok(keyed);
    assert.deepEqual(
      { requests: keyed.requests, succeeded: keyed.succeeded, rejected: keyed.rejected, clientErrors: keyed.clientErrors, upstreamFailures: keyed.upstreamFailures },
      { requests: 7, succeeded: 6, rejected: 1, clientErrors: 0, upstreamFailures: 0 },
    );
  });

  /** Sends `chunks` (a pause between them) without ending the body, and resolves with the gateway's answer. */
  function upload(path: string, chunks: Buffer[], headers: Record<string, string> = {}): Promise<{ status: number; body: string; connection: string | undefined }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(`${base}${path}`, { method: 'POST', headers, signal: AbortSignal.timeout(10_000) });
      req.once('error', reject);
      req.once('response', (res: IncomingMessage) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.once('end', () => {
          resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection });
          req.destroy();
        });
        res.once('error', reject);
      });
      void (async () => {
        for (const chunk of chunks) {
          if (req.destroyed) return;
          req.write(chunk);
          await sleep(50);
        }
      })();
    });
  }

  it('answers 413 at once to a Content-Length over maxBodyBytes, without reading the body or forwarding', async () => {
    const answer = await upload('/small/declared', [Buffer.alloc(10)], { 'content-length': '100000' });
    assert.equal(answer.status, 413);
    assert.equal(answer.connection, 'close');
    assert.equal(JSON.parse(answer.body).error, 'body_too_large');
    assert.equal(hits.get('/declared'), undefined);
  });

  it('cuts off a chunked body once it passes maxBodyBytes (413, upstream aborted) and forwards one under it', async () => {
    const over = await upload('/small/chunked', [Buffer.alloc(600), Buffer.alloc(600), Buffer.alloc(600)]);
    assert.equal(over.status, 413);
    assert.equal(JSON.parse(over.body).error, 'body_too_large');
    const ok = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${base}/small/fits`, { method: 'POST', signal: AbortSignal.timeout(10_000) }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      });
      req.once('error', reject);
      req.write(Buffer.alloc(500));
      req.end(Buffer.alloc(500));
    });
    assert.equal(ok, 200);
    const routes = (await (await fetch(`${base}/_proxyless/status.json`)).json() as GatewayStatus).routes;
    const small = routes.find((r) => r.id === '/small/** -> limits');
    assert.ok(small);
    assert.equal(small.upstreamFailures, 0);
    assert.ok(small.rejected >= 2, JSON.stringify(small));
  });

  it('applies the defaults rateLimit per ip to routes without their own', async () => {
    assert.equal((await get('/by-ip/x')).status, 200);
    const over = await get('/by-ip/x');
    assert.equal(over.status, 429);
    assert.equal(over.retryAfter, '1');
    assert.equal(hits.get('/x'), 1);
  });

  it('answers a request over the limit before any filter or context: no pre filter sees it; the 429 keeps its request id, route and Retry-After; post filters of the user still shape it', async () => {
    const seen: string[] = [];
    const watcher = { name: 'watcher', type: 'pre' as const, order: 1, run: (ctx: { req: IncomingMessage; upstreamHeaders: Record<string, unknown> }) => void seen.push(String(ctx.req.headers['x-seq'])) };
    const make = (filters: NonNullable<Parameters<typeof createGateway>[0]>['filters']): Gateway =>
      createGateway({ consulAddress: agent.httpAddr, port: 0, discovery: { enabled: false }, serviceName: 'gw-limit-fast', routes: [{ path: '/fast/**', service: 'limits', rateLimit: { ratePerSecond: 0.01, burst: 2 } }], filters });
    const bare = make([watcher]);
    const shaped = make([watcher, { name: 'stamp', type: 'post', run: (ctx) => void (ctx.responseHeaders['x-stamp'] = `${ctx.route.id} ${ctx.requestId}`) }]);
    try {
      for (const [gateway, label] of [[bare, 'bare'], [shaped, 'shaped']] as const) {
        const url = await gateway.listen();
        seen.length = 0;
        const answers = [];
        for (let i = 1; i <= 4; i++) answers.push(await fetch(`${url}/fast/x`, { headers: { 'x-seq': String(i), 'x-request-id': `req-${label}-${i}` }, signal: AbortSignal.timeout(10_000) }));
        assert.deepEqual(answers.map((a) => a.status), [200, 200, 429, 429], label);
        assert.deepEqual(seen, ['1', '2'], `${label}: a filter saw a request over the limit`);
        const over = answers[3]!;
        assert.equal(over.headers.get('x-request-id'), `req-${label}-4`);
        assert.equal(over.headers.get('x-proxyless-route'), '/fast/** -> limits');
        assert.equal(over.headers.get('retry-after'), '100');
        assert.deepEqual(await over.json(), { error: 'rate_limited', message: "over this route's limit of 0.01/s (burst 2); retry in 100 s", requestId: `req-${label}-4` });
        assert.equal(over.headers.get('x-stamp'), label === 'shaped' ? `/fast/** -> limits req-${label}-4` : null);
        const route = gateway.status().routes.find((r) => r.id === '/fast/** -> limits');
        assert.deepEqual({ requests: route?.requests, succeeded: route?.succeeded, rejected: route?.rejected }, { requests: 4, succeeded: 2, rejected: 2 });
        assert.equal(gateway.inFlight, 0);
      }
    } finally {
      await bare.close({ graceMs: 200 });
      await shaped.close({ graceMs: 200 });
    }
  });
});

describe('@proxyless/gateway rate limit config and buckets', () => {
  it('rejects bad rateLimit settings with errors naming the fix', () => {
    const make = (rateLimit: unknown): unknown => createGateway({ routes: [{ path: '/a/**', service: 'a', rateLimit: rateLimit as never }] });
    assert.throws(() => make({ ratePerSecond: 0 }), /routes\[0\]\.rateLimit\.ratePerSecond.*must be a number above 0/);
    assert.throws(() => make({ ratePerSecond: -1 }), /must be a number above 0/);
    assert.throws(() => make({ ratePerSecond: 1, brust: 2 }), /routes\[0\]\.rateLimit\.brust.*did you mean "burst"/);
    assert.throws(() => make({ ratePerSecond: 1, burst: 0 }), /rateLimit\.burst.*integer of at least 1/);
    assert.throws(() => make({ ratePerSecond: 1, key: 'cookie' }), /rateLimit\.key.*"ip" or "header:<name>"/);
    assert.throws(() => make(5), /rateLimit.*must be an object/);
    assert.throws(() => createGateway({ routes: [{ path: '/a/**', service: 'a', maxBodyBytes: -1 }] }), /routes\[0\]\.maxBodyBytes.*integer between 0/);
    assert.throws(() => createGateway({ defaults: { rateLimit: { ratePerSecond: Number.NaN } } }), /defaults\.rateLimit\.ratePerSecond/);
  });

  it('keeps at most maxKeys buckets and forgets idle ones that are full again, with no timer', () => {
    const rule = checkRateLimit('rateLimit', { ratePerSecond: 10, burst: 2, maxKeys: 3 });
    assert.ok(rule);
    const limiter = new RateLimiter(rule);
    for (let i = 0; i < 10; i++) limiter.take(`k${i}`, 1_000);
    assert.equal(limiter.size, 3);
    // Full again after burst / rate = 0.2 s: a new key at 1.3 s drops the oldest idle one.
    const idle = new RateLimiter(rule);
    idle.take('a', 1_000);
    idle.take('b', 1_300);
    assert.equal(idle.size, 1);
    // Lazy refill: empty at t, 1 token 0.1 s later.
    const refill = new RateLimiter(rule);
    assert.equal(refill.take('a', 0), 0);
    assert.equal(refill.take('a', 0), 0);
    assert.ok(Math.abs(refill.take('a', 0) - 100) < 1e-6);
    assert.equal(refill.take('a', 100), 0);
  });
});
