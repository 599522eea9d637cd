/**
 * WebSocket and server-sent events through `@proxyless/gateway`: a real
 * Consul agent, real backends on real sockets (`ws` servers, `node:http`
 * SSE), the real gateway, `ws` clients.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { startConsulAgent, freePort, type ConsulAgent } from './support/consul.js';
import { createGateway, type AccessLogEntry, type Gateway, type GatewayStatus } from '@proxyless/gateway';
import { eventually } from './support/wait.js';
import { createTestCa } from './support/certificates.js';

/** A WebSocket echo backend that greets each connection with its name; `/refuse` answers 403. */
interface WsBackend {
  readonly name: string;
  readonly server: Server;
  readonly wss: WebSocketServer;
  readonly port: number;
  /** Close codes and reasons its connections ended with, as the backend saw them. */
  readonly closes: number[];
}

async function startWsBackend(name: string): Promise<WsBackend> {
  const server = createServer((_req, res) => res.end('plain'));
  const wss = new WebSocketServer({ noServer: true });
  const closes: number[] = [];
  server.on('upgrade', (req: IncomingMessage, socket, head) => {
    if (req.url?.startsWith('/refuse')) {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 7\r\n\r\nno, no.');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({ hello: name, url: req.url, forwardedFor: req.headers['x-forwarded-for'] ?? null, protocol: ws.protocol }));
      ws.on('message', (data: Buffer, isBinary) => {
        // `flood`: 20 messages of 1 MB back to back (a drain then lands mid-frame).
        if (!isBinary && data.toString() === 'flood') for (let i = 0; i < 20; i++) ws.send(Buffer.alloc(1 << 20, i));
        else ws.send(data, { binary: isBinary });
      });
      ws.on('close', (code) => closes.push(code));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { name, server, wss, port: (server.address() as AddressInfo).port, closes };
}

async function stopWsBackend(b: WsBackend): Promise<void> {
  for (const ws of b.wss.clients) ws.terminate();
  b.server.closeAllConnections();
  b.server.close();
  await once(b.server, 'close').catch(() => undefined);
}

/** Opens a WebSocket and resolves with it and its first message (the backend's greeting). */
async function connect(url: string, protocols?: string[]): Promise<{ ws: WebSocket; hello: { hello: string; url: string; forwardedFor: string | null; protocol: string } }> {
  const ws = new WebSocket(url, protocols);
  const first = once(ws, 'message') as Promise<[Buffer]>;
  await Promise.race([once(ws, 'open'), once(ws, 'unexpected-response').then(([, res]) => Promise.reject(new Error(`answered ${(res as IncomingMessage).statusCode}`)))]);
  const [data] = await first;
  return { ws, hello: JSON.parse(data.toString()) };
}

/** What a refused upgrade answered: status and body. */
async function refused(url: string): Promise<{ status: number; body: string }> {
  const ws = new WebSocket(url);
  ws.on('error', () => undefined);
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  ws.terminate();
  return { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() };
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }));
}

describe('@proxyless/gateway WebSocket and server-sent events, end to end (real Consul, real sockets)', function () {
  this.timeout(120_000);
  let agent: ConsulAgent;
  let gateway: Gateway;
  let base: string;
  let wsBase: string;
  const backends: WsBackend[] = [];
  const servers: Server[] = [];
  const logDir = mkdtempSync(join(tmpdir(), 'gw-ws-log-'));
  const logFile = join(logDir, 'access.log');
  /** The access log's upgrade lines so far. */
  const upgradeLines = (): AccessLogEntry[] =>
    readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AccessLogEntry).filter((e) => e.upgrade !== undefined);

  async function register(name: string, id: string, port: number): Promise<void> {
    const res = await fetch(`${agent.httpUrl}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Name: name, ID: id, Address: '127.0.0.1', Port: port }) });
    assert.equal(res.status, 200, await res.text());
  }

  async function deregister(id: string): Promise<void> {
    const res = await fetch(`${agent.httpUrl}/v1/agent/service/deregister/${id}`, { method: 'PUT' });
    await res.arrayBuffer();
  }

  const status = async (): Promise<GatewayStatus> => (await fetch(`${base}/_proxyless/status.json`)).json() as Promise<GatewayStatus>;

  before(async () => {
    agent = await startConsulAgent();
    for (const name of ['chat-1', 'chat-2']) {
      const b = await startWsBackend(name);
      backends.push(b);
      await register('chat', name, b.port);
    }
    // An instance registered where nothing listens: its upgrades are refused at connect.
    await register('dead', 'dead-1', await freePort());
    gateway = createGateway({
      consulAddress: agent.httpAddr,
      port: 0,
      routes: [
        { path: '/secure-chat/**', service: 'chat', auth: true },
        { path: '/events/**', service: 'sse', timeoutMs: 300, retries: 0 },
        { path: '/events-patient/**', service: 'sse', timeoutMs: 300, idleTimeoutMs: 8_000, retries: 0 },
        { path: '/events-tight/**', service: 'sse-tight', timeoutMs: 1_000, retries: 0 },
      ],
      // Routed by the explicit routes only, so their idle timeouts are the services' own.
      discovery: { ignored: ['sse', 'sse-tight'] },
      authTokens: ['s3cret'],
      accessLog: { path: logFile, includeQuery: true },
    });
    base = await gateway.listen();
    wsBase = base.replace('http:', 'ws:');
    await eventually('both chat instances to be routable', async () => (await status()).services.find((s) => s.name === 'chat')?.endpoints.length === 2);
  });

  after(async () => {
    await gateway?.close({ graceMs: 500 });
    await Promise.all(backends.map(stopWsBackend));
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    await agent?.stop();
    rmSync(logDir, { recursive: true, force: true });
  });

  it('carries 1,000 echo round trips (text and binary, 0 B to 200 KB) intact, with the subprotocol and X-Forwarded-For', async () => {
    const { ws, hello } = await connect(`${wsBase}/chat/room/7?x=1`, ['chat.v1']);
    assert.equal(hello.url, '/room/7?x=1', 'the /chat prefix is stripped, the query kept');
    assert.equal(hello.protocol, 'chat.v1');
    assert.equal(hello.forwardedFor, '127.0.0.1');
    const sizes = [0, 1, 125, 126, 65_535, 65_536, 200_000];
    const started = performance.now();
    for (let i = 0; i < 1_000; i++) {
      const binary = i % 2 === 0;
      const payload = randomBytes(sizes[i % sizes.length] as number);
      const sent = binary ? payload : payload.toString('base64');
      const reply = once(ws, 'message') as Promise<[Buffer, boolean]>;
      ws.send(sent, { binary });
      const [data, isBinary] = await reply;
      assert.equal(isBinary, binary, `round trip ${i}: the frame type`);
      assert.ok(binary ? data.equals(payload) : data.toString() === sent, `round trip ${i}: the content`);
    }
    const ms = performance.now() - started;
    console.log(`      [measure] 1,000 echo round trips through the gateway in ${Math.round(ms)} ms`);
    ws.close(1000);
    assert.equal((await closed(ws)).code, 1000);
    const counted = await eventually('the tunnel to be closed on the status page', async () => {
      const u = (await status()).gateway.upgrades;
      return u && u.open === 0 ? u : undefined;
    });
    assert.ok(counted.upgraded >= 1);
  });

  it('counts open tunnels on the status page', async () => {
    const before = (await status()).gateway.upgrades!;
    const a = await connect(`${wsBase}/chat/a`);
    const b = await connect(`${wsBase}/chat/b`);
    const during = (await status()).gateway.upgrades!;
    assert.equal(during.open, 2);
    assert.equal(during.upgraded - before.upgraded, 2);
    // Least connections: two tunnels at once go to the two instances.
    assert.notEqual(a.hello.hello, b.hello.hello);
    a.ws.close();
    b.ws.close();
    await Promise.all([closed(a.ws), closed(b.ws)]);
  });

  it('passes on a backend refusing the upgrade (its 403), answers 502 when the instance refuses the connection, 404 with no route, 401 without the token', async () => {
    const refusedByBackend = await refused(`${wsBase}/chat/refuse`);
    assert.equal(refusedByBackend.status, 403);
    assert.equal(refusedByBackend.body, 'no, no.');
    const before = (await status()).gateway.upgrades!;
    const dead = await refused(`${wsBase}/dead/x`);
    assert.equal(dead.status, 502);
    assert.equal(JSON.parse(dead.body).error, 'bad_gateway');
    assert.match(JSON.parse(dead.body).message, /ECONNREFUSED/);
    assert.equal((await status()).gateway.upgrades!.failed - before.failed, 1);
    assert.equal((await refused(`${wsBase}/nowhere/x`)).status, 404);
    assert.equal((await refused(`${wsBase}/secure-chat/x`)).status, 401);
    const authed = new WebSocket(`${wsBase}/secure-chat/x`, { headers: { authorization: 'Bearer s3cret' } });
    const [greeting] = (await once(authed, 'message')) as [Buffer];
    assert.equal(JSON.parse(greeting.toString()).url, '/x');
    authed.close();
    await closed(authed);
  });

  it('writes an access log line per upgrade when it ends: 101 with its duration, bytes each way, who closed and the close code; refusals and failures with their status', async () => {
    const { ws, hello } = await connect(`${wsBase}/chat/logged?room=1&token=secret`, ['chat.v1']);
    const payload = randomBytes(10_000);
    const reply = once(ws, 'message') as Promise<[Buffer]>;
    ws.send(payload);
    assert.ok((await reply)[0].equals(payload));
    const opened = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 200));
    ws.close(1000, 'done');
    await closed(ws);
    const lifeMs = performance.now() - opened;
    const tunnel = await eventually('the tunnel line', () => upgradeLines().find((e) => e.path.startsWith('/chat/logged')));
    assert.deepEqual(
      { method: tunnel.method, path: tunnel.path, status: tunnel.status, route: tunnel.route, service: tunnel.service, attempts: tunnel.attempts, clientIp: tunnel.clientIp, outcome: tunnel.outcome, upgrade: tunnel.upgrade, closedBy: tunnel.closedBy, closeCode: tunnel.closeCode },
      { method: 'GET', path: '/chat/logged?room=1&token=[redacted]', status: 101, route: '/chat/** -> chat', service: 'chat', attempts: 1, clientIp: '127.0.0.1', outcome: 'succeeded', upgrade: 'websocket', closedBy: 'client', closeCode: 1000 },
    );
    assert.equal(tunnel.endpoint, `127.0.0.1:${backends.find((b) => b.name === hello.hello)!.port}`);
    assert.match(tunnel.requestId ?? '', /^[\w-]{36}$/);
    // The whole tunnel's life, and bytes both ways: the 10 kB echo (plus frame headers, the 101 head, the greeting).
    assert.ok(tunnel.durationMs >= lifeMs - 50, `durationMs ${tunnel.durationMs} covers the tunnel (${lifeMs.toFixed(0)} ms open)`);
    assert.ok(tunnel.bytes !== null && tunnel.bytes > 10_000 && tunnel.bytes < 11_000, `bytes ${tunnel.bytes}`);
    assert.ok(tunnel.bytesReceived !== undefined && tunnel.bytesReceived > 10_000 && tunnel.bytesReceived < 10_100, `bytesReceived ${tunnel.bytesReceived}`);

    // Refused by the instance (403), by the gateway (404, 401), failed (502): one line each, with the status the client got.
    assert.equal((await refused(`${wsBase}/chat/refuse-logged`)).status, 403);
    assert.equal((await refused(`${wsBase}/nowhere-logged/x`)).status, 404);
    assert.equal((await refused(`${wsBase}/secure-chat/logged`)).status, 401);
    assert.equal((await refused(`${wsBase}/dead/logged`)).status, 502);
    const lines = await eventually('the refusal lines', () => {
      const all = upgradeLines();
      const find = (prefix: string): AccessLogEntry | undefined => all.find((e) => e.path.startsWith(prefix));
      const found = [find('/chat/refuse-logged'), find('/nowhere-logged'), find('/secure-chat/logged'), find('/dead/logged')];
      return found.every((e) => e !== undefined) ? found : undefined;
    });
    assert.deepEqual(
      lines.map((e) => ({ status: e.status, outcome: e.outcome, route: e.route, attempts: e.attempts, closedBy: e.closedBy, upgrade: e.upgrade })),
      [
        { status: 403, outcome: 'clientError', route: '/chat/** -> chat', attempts: 1, closedBy: undefined, upgrade: 'websocket' },
        { status: 404, outcome: 'noRoute', route: null, attempts: 0, closedBy: undefined, upgrade: 'websocket' },
        { status: 401, outcome: 'clientError', route: '/secure-chat/** -> chat', attempts: 0, closedBy: undefined, upgrade: 'websocket' },
        { status: 502, outcome: 'upstreamFailure', route: '/dead/** -> dead', attempts: 1, closedBy: undefined, upgrade: 'websocket' },
      ],
    );
    assert.ok(lines.every((e) => e.bytes !== null && e.bytes > 0), 'each answer\'s bytes are counted');
  });

  it('tunnels to an HTTPS (wss) instance over TLS with the backends CA, and refuses an instance whose certificate is not trusted (502)', async () => {
    const ca = createTestCa();
    const issued = ca.issue('wss-backend');
    const tlsServer = createHttpsServer({ key: issued.key, cert: issued.cert }, (_req, res) => res.end('plain'));
    const wss = new WebSocketServer({ server: tlsServer });
    const seenTls: boolean[] = [];
    wss.on('connection', (ws, req) => {
      seenTls.push('encrypted' in req.socket && req.socket.encrypted === true);
      ws.on('message', (data: Buffer, isBinary) => ws.send(data, { binary: isBinary }));
    });
    tlsServer.listen(0, '127.0.0.1');
    await once(tlsServer, 'listening');
    const res = await fetch(`${agent.httpUrl}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify({ Name: 'secure-echo', ID: 'secure-echo-1', Address: '127.0.0.1', Port: (tlsServer.address() as AddressInfo).port, Tags: ['https'] }),
    });
    assert.equal(res.status, 200);
    const trusting = createGateway({ consulAddress: agent.httpAddr, port: 0, serviceName: 'gw-wss', backends: { caFile: ca.caFile } });
    // No backends CA: the test CA is not among Node's roots, so the certificate check (on by default) refuses it.
    const strict = createGateway({ consulAddress: agent.httpAddr, port: 0, serviceName: 'gw-wss-strict' });
    try {
      const url = (await trusting.listen()).replace('http:', 'ws:');
      const ws = await eventually('the wss instance to be routable', async () => {
        const socket = new WebSocket(`${url}/secure-echo/x`);
        socket.on('error', () => undefined);
        await Promise.race([once(socket, 'open'), once(socket, 'unexpected-response').then(() => Promise.reject(new Error('refused')))]);
        return socket;
      });
      for (let i = 0; i < 50; i++) {
        const payload = randomBytes(i * 1_000);
        const reply = once(ws, 'message') as Promise<[Buffer]>;
        ws.send(payload);
        assert.ok((await reply)[0].equals(payload), `round trip ${i}`);
      }
      ws.close(1000);
      await closed(ws);
      assert.ok(seenTls.length >= 1 && seenTls.every(Boolean), 'the backend saw its WebSocket arrive over TLS');

      const strictUrl = (await strict.listen()).replace('http:', 'ws:');
      const answer = await eventually('the untrusted instance to be tried', async () => {
        const r = await refused(`${strictUrl}/secure-echo/x`);
        return r.status === 502 ? r : undefined;
      });
      assert.match(JSON.parse(answer.body).message, /\(TLS\) failed: .*(self.signed|unable to (verify|get local issuer))/i);
    } finally {
      await trusting.close({ graceMs: 200 });
      await strict.close({ graceMs: 200 });
      await deregister('secure-echo-1');
      for (const c of wss.clients) c.terminate();
      tlsServer.closeAllConnections();
      tlsServer.close();
      ca.remove();
    }
  });

  it("closes with 1001 when a backend drains, and a reconnect lands on the other instance", async () => {
    const first = await connect(`${wsBase}/chat/drain`);
    const draining = backends.find((b) => b.name === first.hello.hello)!;
    const other = backends.find((b) => b !== draining)!;
    const code = closed(first.ws);
    // The backend's drain: deregister, stop accepting, close its sockets with 1001.
    await deregister(draining.name);
    draining.server.close();
    for (const ws of draining.wss.clients) ws.close(1001, 'draining');
    assert.deepEqual(await code, { code: 1001, reason: 'draining' });
    // Reconnect at once (no wait for the gateway to hear of the deregistration).
    for (let i = 0; i < 5; i++) {
      const again = await connect(`${wsBase}/chat/drain`);
      assert.equal(again.hello.hello, other.name, `reconnect ${i} lands on the instance still up`);
      again.ws.close();
      await closed(again.ws);
    }
    // Back in service for the next tests.
    const restarted = await startWsBackend(draining.name);
    backends.splice(backends.indexOf(draining), 1, restarted);
    await register('chat', restarted.name, restarted.port);
    await eventually('the restarted instance to be picked', async () => {
      const { ws, hello } = await connect(`${wsBase}/chat/back`);
      ws.close();
      return hello.hello === restarted.name;
    });
  });

  it("closes every client with 1001 when the gateway drains, at a frame boundary, and the backend hears the client's close", async () => {
    const own = createGateway({ consulAddress: agent.httpAddr, port: 0 });
    const url = (await own.listen()).replace('http:', 'ws:');
    try {
      const heard = (): number => backends.reduce((n, b) => n + b.closes.filter((c) => c === 1001).length, 0);
      const heardBefore = heard();
      const clients = await Promise.all([1, 2, 3].map(() => connect(`${url}/chat/bye`)));
      // The backend floods one client with 1 MB messages when the drain starts: the close frame must land between two.
      const received: Buffer[] = [];
      const firstFlood = new Promise<void>((resolve) => clients[0]!.ws.on('message', (d: Buffer) => {
        received.push(d);
        resolve();
      }));
      clients[0]!.ws.send('flood');
      const codes = clients.map(({ ws }) => closed(ws));
      await firstFlood;
      const started = Date.now();
      await own.close({ graceMs: 5_000 });
      const tookMs = Date.now() - started;
      // A close frame inside a frame would be a protocol error (1002) or a cut connection (1006) at the client.
      for (const c of await Promise.all(codes)) assert.equal(c.code, 1001);
      assert.ok(received.length >= 1 && received.length <= 20);
      received.forEach((m, i) => assert.ok(m.length === 1 << 20 && m.every((byte) => byte === i), `flood message ${i} whole`));
      assert.ok(tookMs < 4_000, `close() waited for the clients' close replies, not the grace (${tookMs} ms)`);
      console.log(`      [measure] gateway close: 3 clients closed 1001 in ${tookMs} ms; the flooded one got ${received.length} whole 1 MB messages first`);
      // The clients' close replies (1001) went on to the backends: a clean close on their side too.
      await eventually('the backends to hear 1001 from the 3 clients', () => heard() - heardBefore >= 3, 5_000);
      assert.ok(tookMs < 4_000, `close() waited for the clients' close replies, not the grace (${tookMs} ms)`);
    } finally {
      await own.destroy();
    }
  });

  describe('server-sent events', () => {
    /** An SSE backend: one event every `everyMs`, `count` of them; records when each was written and when the stream closed. */
    let written: number[] = [];
    let backendClosedAt: number | undefined;

    before(async () => {
      const server = createServer((req, res) => {
        const everyMs = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('every') ?? 200);
        const count = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('count') ?? 5);
        written = [];
        backendClosedAt = undefined;
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.flushHeaders();
        let n = 0;
        const timer = setInterval(() => {
          n++;
          written.push(Date.now());
          res.write(`id: ${n}\ndata: event ${n}\n\n`);
          if (n === count) {
            clearInterval(timer);
            res.end();
          }
        }, everyMs);
        res.once('close', () => {
          clearInterval(timer);
          backendClosedAt = Date.now();
        });
      });
      servers.push(server);
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      await register('sse', 'sse-1', (server.address() as AddressInfo).port);
      await register('sse-tight', 'sse-tight-1', (server.address() as AddressInfo).port);
    });

    /** Reads the stream; resolves with each event and when it arrived. */
    function subscribe(path: string, stopAfter = Infinity): Promise<{ events: { data: string; at: number }[]; status: number; contentType: string; complete: boolean; headersAt: number }> {
      return new Promise((resolve, reject) => {
        const events: { data: string; at: number }[] = [];
        const req = httpRequest(base + path, { agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
          const headersAt = Date.now();
          let buffered = '';
          res.setEncoding('utf8');
          const done = (): void => resolve({ events, status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), complete: res.complete, headersAt });
          res.on('data', (chunk: string) => {
            buffered += chunk;
            let end: number;
            while ((end = buffered.indexOf('\n\n')) !== -1) {
              const data = /data: (.*)/.exec(buffered.slice(0, end))?.[1] ?? '';
              buffered = buffered.slice(end + 2);
              events.push({ data, at: Date.now() });
              if (events.length >= stopAfter) {
                req.destroy();
                done();
              }
            }
          });
          res.on('end', done);
          res.on('close', done); // cut short: complete stays false
          res.on('error', () => undefined);
        });
        req.on('error', (e) => (events.length >= stopAfter ? undefined : reject(e)));
        req.end();
      });
    }

    it('passes events on one by one as they are written (no buffering), longer than the route timeout', async () => {
      // Route timeout 300 ms; the stream lasts ~2.4 s with 200 ms between events.
      const { events, status: code, contentType } = await subscribe('/events/stream?every=200&count=12');
      assert.equal(code, 200);
      assert.equal(contentType, 'text/event-stream');
      assert.deepEqual(events.map((e) => e.data), Array.from({ length: 12 }, (_, i) => `event ${i + 1}`));
      // Each event arrives soon after the backend wrote it, not at the end of the stream.
      const lags = events.map((e, i) => e.at - (written[i] as number));
      console.log(`      [measure] SSE: 12 events 200 ms apart, lag per event ${lags.join(',')} ms`);
      assert.ok(Math.max(...lags) < 150, `each event within 150 ms of being written (lags ${lags.join(',')})`);
      assert.ok((events[11]!.at - events[0]!.at) > 1_500, 'spread over the stream, not in one burst');
    });

    it('keeps a stream whose events are 5.5 s apart with idleTimeoutMs 8000 (the default 4 s body timeout cut it), sends its headers at once, and cuts one silent past its idleTimeoutMs', async () => {
      const patient = await subscribe('/events-patient/stream?every=5500&count=2');
      assert.deepEqual(patient.events.map((e) => e.data), ['event 1', 'event 2']);
      assert.equal(patient.complete, true);
      // The stream's headers reach the client when the backend sends them, not with the first event 5.5 s later.
      assert.ok(patient.events[0]!.at - patient.headersAt > 4_000, `headers ${patient.events[0]!.at - patient.headersAt} ms before the first event`);
      // idleTimeoutMs defaults to the route's timeoutMs (1 s here): a 2.5 s silence ends the stream.
      const tight = await subscribe('/events-tight/stream?every=2500&count=3');
      assert.equal(tight.status, 200);
      assert.deepEqual(tight.events, [], 'the first event comes 2.5 s after the headers: too late');
      assert.equal(tight.complete, false, 'cut short by the gateway');
    });

    it("aborts the backend's stream at once when the client hangs up", async () => {
      const { events } = await subscribe('/events/stream?every=100&count=1000', 3);
      const hungUpAt = Date.now();
      assert.equal(events.length, 3);
      const closedAt = await eventually('the backend stream to close', () => backendClosedAt, 5_000);
      console.log(`      [measure] SSE: backend stream closed ${closedAt - hungUpAt} ms after the client hung up`);
      assert.ok(closedAt - hungUpAt < 1_000, `closed within 1 s (${closedAt - hungUpAt} ms)`);
      assert.ok(written.length < 20, `the backend stopped writing (${written.length} events written)`);
    });
  });
});
