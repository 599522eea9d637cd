/**
 * @proxyless/gateway over TLS: termination with certificate reload, HTTP/2
 * downstream by ALPN (and HTTP/1.1 on the same port), GOAWAY on drain.
 * Real Consul agent, real backend, real sockets, certificates made by openssl
 * at test time; the bin as a child process with two workers.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as h2connect, createSecureServer, type ClientHttp2Session, type IncomingHttpHeaders as H2Headers, type ServerHttp2Session } from 'node:http2';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startConsulAgent, type ConsulAgent } from './support/consul.js';
import { createTestCa, type IssuedCertificate, type TestCa } from './support/certificates.js';
import { trackChild } from './support/processes.js';
import { createGateway, type Gateway, type GatewayStatus } from '@proxyless/gateway';
import { isProxylessError } from '@proxyless/core';
import { eventually } from './support/wait.js';

/** The certificate a new TLS connection to `url` is shown (and the protocol ALPN chose). */
async function peerCertificate(url: string, ca: Buffer, alpn: string[] = ['h2', 'http/1.1']): Promise<{ fingerprint256: string; alpn: string | false }> {
  const { hostname, port } = new URL(url);
  const socket = tlsConnect({ host: hostname, port: Number(port), ca, ALPNProtocols: alpn, servername: 'localhost' });
  socket.setTimeout(10_000, () => socket.destroy(new Error('TLS handshake timed out')));
  try {
    await once(socket, 'secureConnect');
    const cert: PeerCertificate = socket.getPeerCertificate();
    return { fingerprint256: cert.fingerprint256, alpn: socket.alpnProtocol ?? false };
  } finally {
    socket.destroy();
  }
}

/** One HTTP/2 request on `session`; the body collected. */
function h2request(session: ClientHttp2Session, headers: Record<string, string>, body?: Buffer): Promise<{ headers: H2Headers; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    stream.setTimeout(20_000, () => stream.close());
    let responseHeaders: H2Headers = {};
    const chunks: Buffer[] = [];
    stream.once('response', (h) => (responseHeaders = h));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve({ headers: responseHeaders, body: Buffer.concat(chunks) }));
    stream.once('error', reject);
    stream.once('close', () => {
      if (stream.rstCode !== 0) reject(new Error(`stream reset (code ${stream.rstCode})`));
    });
    if (body !== undefined) stream.end(body);
  });
}

function h1request(url: string, ca: Buffer, options: { method?: string; body?: Buffer; agent?: false } = {}): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: options.method ?? 'GET', ca, servername: 'localhost', agent: false, ALPNProtocols: ['http/1.1'], signal: AbortSignal.timeout(20_000) } as never, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), alpn: (res.socket as unknown as { alpnProtocol: string | false }).alpnProtocol }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(options.body);
  });
}

async function statusOf(url: string, ca: Buffer): Promise<GatewayStatus> {
  const res = await h1request(`${url}/_proxyless/status.json`, ca);
  return JSON.parse(res.body.toString()) as GatewayStatus;
}

/** Replaces the gateway's certificate files with `next`'s (the key first: a reload in between is refused and retried). */
function install(next: IssuedCertificate, files: { certFile: string; keyFile: string }): void {
  copyFileSync(next.keyFile, files.keyFile);
  copyFileSync(next.certFile, files.certFile);
}

describe('@proxyless/gateway TLS and HTTP/2 (real Consul, real backend, openssl certificates)', function () {
  this.timeout(120_000);
  let agent: ConsulAgent;
  let backend: Server;
  let ca: TestCa;
  let first: IssuedCertificate;
  let second: IssuedCertificate;
  let third: IssuedCertificate;
  /** Every path the backend was sent, in order. */
  const backendSeen: string[] = [];
  /** The files the gateway is configured with (overwritten to reload). */
  let files: { certFile: string; keyFile: string };

  before(async () => {
    ca = createTestCa();
    first = ca.issue('first');
    second = ca.issue('second');
    third = ca.issue('third');
    files = { certFile: join(ca.dir, 'gateway.pem'), keyFile: join(ca.dir, 'gateway.key') };
    agent = await startConsulAgent();
    // Echoes what it was sent; /slow/<ms> answers after that long.
    backend = createServer((req, res) => {
      backendSeen.push(req.url ?? '');
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.once('end', () => {
        const body = Buffer.concat(chunks);
        const delay = /^\/slow\/(\d+)/.exec(req.url ?? '')?.[1];
        const answer = (): void => {
          // A chunked answer on a kept-alive connection: Connection, Keep-Alive and Transfer-Encoding all come back.
          res.writeHead(201, { 'content-type': 'application/json', 'x-backend': 'yes', connection: 'keep-alive', 'keep-alive': 'timeout=5' });
          res.write(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodySha256: createHash('sha256').update(body).digest('hex'), bodyLength: body.length }));
          res.end();
        };
        if (delay) setTimeout(answer, Number(delay));
        else answer();
      });
    });
    // An upgrade is answered 101 and its bytes echoed (a tunnel, whatever the protocol).
    backend.on('upgrade', (_req, socket: import('node:stream').Duplex) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      socket.pipe(socket);
    });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    const reg = await fetch(`${agent.httpUrl}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify({ Name: 'echo', ID: 'echo-1', Address: '127.0.0.1', Port: (backend.address() as AddressInfo).port }),
    });
    assert.equal(reg.status, 200, await reg.text());
  });

  after(async () => {
    backend?.close();
    backend?.closeAllConnections();
    await agent?.stop();
    ca?.remove();
  });

  function gatewayWith(tls: Record<string, unknown>, log?: (line: string) => void): Gateway {
    return createGateway({
      consulAddress: agent.httpAddr,
      port: 0,
      discovery: { enabled: false },
      routes: [{ path: '/api/**', service: 'echo', retries: 0 }],
      tls: { ...files, reloadIntervalMs: 100, ...tls },
      ...(log ? { log } : {}),
    });
  }

  it('refuses a bad tls config with an InvalidOptionError naming the key and the fix', () => {
    install(first, files);
    const refused = (tls: unknown, option: string, words: RegExp): void => {
      assert.throws(() => createGateway({ consulAddress: agent.httpAddr, tls: tls as never }), (error: Error) => {
        assert.ok(isProxylessError(error, 'ERR_INVALID_OPTION'), error.message);
        assert.equal((error as unknown as { option: string }).option, option, error.message);
        assert.match(error.message, words);
        return true;
      });
    };
    refused({ certFile: files.certFile }, 'tls.keyFile', /path of a PEM file/);
    refused({ ...files, certfile: 'x' }, 'tls.certfile', /did you mean "certFile"/);
    refused({ ...files, minVersion: 'TLSv1.1' }, 'tls.minVersion', /TLSv1\.2/);
    refused({ ...files, reloadIntervalMs: -1 }, 'tls.reloadIntervalMs', /integer/);
    refused({ ...files, certFile: join(ca.dir, 'missing.pem') }, 'tls.certFile', /cannot be read \(ENOENT\)/);
    refused({ certFile: files.certFile, keyFile: second.keyFile }, 'tls.keyFile', /private key of that certificate/);
    refused({ certFile: ca.issue('junk').keyFile, keyFile: files.keyFile }, 'tls.certFile', /does not hold a PEM certificate/);
    const refusedBackends = (backends: unknown, option: string, words: RegExp): void => {
      assert.throws(() => createGateway({ consulAddress: agent.httpAddr, backends: backends as never }), (error: Error) => {
        assert.ok(isProxylessError(error, 'ERR_INVALID_OPTION'), error.message);
        assert.equal((error as unknown as { option: string }).option, option, error.message);
        assert.match(error.message, words);
        return true;
      });
    };
    refusedBackends({ allowh2: true }, 'backends.allowh2', /did you mean "allowH2"/);
    refusedBackends({ allowH2: 'yes' }, 'backends.allowH2', /boolean/);
    refusedBackends({ caFile: join(ca.dir, 'missing.pem') }, 'backends.caFile', /cannot be read \(ENOENT\)/);
    refusedBackends({ certFile: files.certFile }, 'backends.keyFile', /together/);
  });

  it('terminates TLS and reloads the certificate when its files change: new connections get the new one, an open connection keeps working, a bad one keeps the old', async () => {
    install(first, files);
    const lines: string[] = [];
    const gateway = gatewayWith({}, (line) => lines.push(line));
    try {
      const url = await gateway.listen();
      assert.match(url, /^https:\/\//);
      assert.equal((await peerCertificate(url, ca.ca)).fingerprint256, first.fingerprint256);
      const session = h2connect(url, { ca: ca.ca, servername: 'localhost' });
      session.on('error', () => undefined);
      try {
        assert.equal((await h2request(session, { ':path': '/api/one' })).headers[':status'], 201);
        const before = (session.socket as unknown as { getPeerCertificate(): PeerCertificate }).getPeerCertificate().fingerprint256;
        assert.equal(before, first.fingerprint256);

        install(second, files);
        await eventually('new connections to see the second certificate', async () => (await peerCertificate(url, ca.ca)).fingerprint256 === second.fingerprint256);
        // The session opened before the reload still works, on its first certificate.
        const again = await h2request(session, { ':path': '/api/two' });
        assert.equal(again.headers[':status'], 201);
        assert.equal(JSON.parse(again.body.toString()).url, '/two');
        assert.equal((session.socket as unknown as { getPeerCertificate(): PeerCertificate }).getPeerCertificate().fingerprint256, first.fingerprint256);
        let tls = (await statusOf(url, ca.ca)).gateway.tls;
        assert.equal(tls?.fingerprint256, second.fingerprint256);
        assert.equal(tls?.subject, 'CN=second');
        assert.equal(tls?.reloads, 1);
        assert.ok(lines.some((l) => l.startsWith('TLS certificate reloaded: CN=second')), lines.join('\n'));

        // A key that is not the certificate's, then a file that is not PEM: both refused, the second certificate stays.
        copyFileSync(third.certFile, files.certFile);
        await eventually('the mismatched key to be refused', async () => (await statusOf(url, ca.ca)).gateway.tls?.lastError?.includes('tls.keyFile'));
        writeFileSync(files.certFile, 'not a certificate\n');
        await eventually('the broken certificate to be refused', async () => (await statusOf(url, ca.ca)).gateway.tls?.lastError?.includes('does not hold a PEM certificate'));
        assert.equal((await peerCertificate(url, ca.ca)).fingerprint256, second.fingerprint256);
        tls = (await statusOf(url, ca.ca)).gateway.tls;
        assert.equal(tls?.fingerprint256, second.fingerprint256);
        assert.ok((tls?.failedReloads ?? 0) >= 2, JSON.stringify(tls));
        assert.equal(gateway.reloadCertificate(), false);
        assert.ok(lines.some((l) => l.startsWith('TLS reload refused, still serving')), lines.join('\n'));
        assert.equal((await h2request(session, { ':path': '/api/three' })).headers[':status'], 201);

        // Fixed: the next change is served, and the error is cleared.
        install(third, files);
        await eventually('the third certificate', async () => (await peerCertificate(url, ca.ca)).fingerprint256 === third.fingerprint256);
        assert.equal((await statusOf(url, ca.ca)).gateway.tls?.lastError, null);
      } finally {
        session.close();
      }
    } finally {
      await gateway.close({ graceMs: 500 });
    }
  });

  it('asks for client certificates signed by tls.caFile (mutual TLS)', async () => {
    install(first, files);
    const gateway = gatewayWith({ caFile: ca.caFile });
    try {
      const url = await gateway.listen();
      const client = ca.issue('client');
      const { port } = new URL(url);
      const handshake = (options: object): Promise<string> => new Promise((resolve) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: Number(port), ca: ca.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'], ...options });
        socket.once('secureConnect', () => socket.write('GET /_proxyless/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
        let text = '';
        socket.on('data', (c: Buffer) => (text += c.toString()));
        socket.once('close', () => resolve(text));
        socket.once('error', (error) => resolve(`error: ${error.message}`));
      });
      assert.match(await handshake({ cert: client.cert, key: client.key }), /^HTTP\/1\.1 200/);
      assert.doesNotMatch(await handshake({}), /^HTTP\/1\.1 200/);
    } finally {
      await gateway.close({ graceMs: 500 });
    }
  });

  it('speaks HTTP/2 by ALPN: status, headers and bodies intact, 100 sequential and 100 concurrent streams on one session; HTTP/1.1 on the same port', async () => {
    install(first, files);
    const gateway = gatewayWith({});
    try {
      const url = await gateway.listen();
      assert.equal((await peerCertificate(url, ca.ca)).alpn, 'h2');
      const session = h2connect(url, { ca: ca.ca, servername: 'localhost' });
      session.on('error', () => undefined);
      let sessions = 0;
      session.socket.on('close', () => sessions++);
      try {
        const body = Buffer.alloc(300_000, 'x');
        const post = await h2request(session, { ':method': 'POST', ':path': '/api/things?id=7', ':authority': 'gw.example:8443', 'content-type': 'text/plain', 'x-client': 'h2' }, body);
        assert.equal(post.headers[':status'], 201);
        assert.equal(post.headers['x-backend'], 'yes');
        assert.equal(post.headers['content-type'], 'application/json');
        // Connection-specific headers are never sent on HTTP/2 (RFC 9113 §8.2.2).
        for (const name of ['connection', 'keep-alive', 'transfer-encoding']) assert.equal(post.headers[name], undefined, name);
        const seen = JSON.parse(post.body.toString()) as { method: string; url: string; headers: Record<string, string>; bodySha256: string; bodyLength: number };
        assert.equal(seen.method, 'POST');
        assert.equal(seen.url, '/things?id=7');
        assert.equal(seen.bodyLength, body.length);
        assert.equal(seen.bodySha256, createHash('sha256').update(body).digest('hex'));
        assert.equal(seen.headers['x-client'], 'h2');
        assert.equal(seen.headers['x-forwarded-proto'], 'https');
        assert.equal(seen.headers['x-forwarded-host'], 'gw.example:8443', ':authority becomes X-Forwarded-Host');
        assert.ok(!Object.keys(seen.headers).some((h) => h.startsWith(':')), `no pseudo-header upstream: ${Object.keys(seen.headers).join(', ')}`);

        for (let i = 0; i < 100; i++) {
          const r = await h2request(session, { ':path': `/api/seq/${i}` });
          assert.equal(r.headers[':status'], 201);
          assert.equal(JSON.parse(r.body.toString()).url, `/seq/${i}`);
        }
        const all = await Promise.all(Array.from({ length: 100 }, (_, i) => h2request(session, { ':method': 'POST', ':path': `/api/par/${i}` }, Buffer.from(`body ${i}`))));
        all.forEach((r, i) => {
          assert.equal(r.headers[':status'], 201);
          const echo = JSON.parse(r.body.toString()) as { url: string; bodyLength: number };
          assert.equal(echo.url, `/par/${i}`);
          assert.equal(echo.bodyLength, `body ${i}`.length);
        });
        assert.equal(sessions, 0, 'all on the one session');

        // HTTP/1.1 on the same port.
        const h1 = await h1request(`${url}/api/h1?x=1`, ca.ca, { method: 'POST', body: Buffer.from('hello') });
        assert.equal(h1.alpn, 'http/1.1');
        assert.equal(h1.status, 201);
        assert.equal(JSON.parse(h1.body.toString()).url, '/h1?x=1');
        assert.equal(JSON.parse(h1.body.toString()).bodyLength, 5);

        // A real HTTP/2 client other than Node's: curl (built with nghttp2).
        const curl = await new Promise<string>((resolve, reject) => {
          execFile('curl', ['-sS', '--http2', '--cacert', ca.caFile, '--resolve', `localhost:${new URL(url).port}:127.0.0.1`, '-w', '\n%{http_version} %{http_code}', '-d', 'from curl', `https://localhost:${new URL(url).port}/api/curl`], { timeout: 20_000 }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message} ${stderr}`)) : resolve(stdout)));
        });
        const [json, last] = curl.split('\n');
        assert.equal(last, '2 201');
        assert.equal(JSON.parse(json ?? '').bodyLength, 'from curl'.length);
        assert.equal(JSON.parse(json ?? '').headers['x-forwarded-host'], `localhost:${new URL(url).port}`);
      } finally {
        session.close();
      }
    } finally {
      await gateway.close({ graceMs: 500 });
    }
  });

  it('tunnels an HTTP/1.1 upgrade (WebSocket-style) on the TLS port that also speaks HTTP/2', async () => {
    install(first, files);
    const gateway = gatewayWith({});
    try {
      const url = await gateway.listen();
      const socket = await new Promise<import('node:stream').Duplex>((resolve, reject) => {
        const req = httpsRequest(`${url}/api/tunnel`, { ca: ca.ca, servername: 'localhost', agent: false, ALPNProtocols: ['http/1.1'], headers: { connection: 'Upgrade', upgrade: 'echo' }, signal: AbortSignal.timeout(20_000) } as never);
        req.once('upgrade', (res: import('node:http').IncomingMessage, upgraded: import('node:stream').Duplex) => {
          assert.equal(res.statusCode, 101);
          resolve(upgraded);
        });
        req.once('response', (res: import('node:http').IncomingMessage) => reject(new Error(`no upgrade: ${String(res.statusCode)}`)));
        req.once('error', reject);
        req.end();
      });
      try {
        const payload = Buffer.alloc(100_000, 'w');
        const received: Buffer[] = [];
        let length = 0;
        const echoed = new Promise<void>((resolve) => {
          socket.on('data', (c: Buffer) => {
            received.push(c);
            length += c.length;
            if (length >= payload.length) resolve();
          });
        });
        socket.write(payload);
        await echoed;
        assert.ok(Buffer.concat(received).equals(payload), 'the bytes came back intact');
      } finally {
        socket.destroy();
      }
    } finally {
      await gateway.close({ graceMs: 500 });
    }
  });

  it('answers 413 over HTTP/2 without a Connection header (none exists in HTTP/2; Node would warn and drop it)', async () => {
    install(first, files);
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    const gateway = createGateway({
      consulAddress: agent.httpAddr,
      port: 0,
      discovery: { enabled: false },
      routes: [{ path: '/small/**', service: 'echo', maxBodyBytes: 1000 }],
      tls: { ...files, reloadIntervalMs: 0 },
    });
    try {
      const url = await gateway.listen();
      const session = h2connect(url, { ca: ca.ca, servername: 'localhost' });
      session.on('error', () => undefined);
      try {
        const answer = await h2request(session, { ':method': 'POST', ':path': '/small/x', 'content-length': '5000' }, Buffer.alloc(5000));
        assert.equal(answer.headers[':status'], 413);
        assert.equal(JSON.parse(answer.body.toString()).error, 'body_too_large');
        assert.equal(answer.headers.connection, undefined);
        // The session still carries requests.
        assert.equal((await h2request(session, { ':method': 'POST', ':path': '/small/y' }, Buffer.alloc(10))).headers[':status'], 201);
      } finally {
        session.close();
      }
      await sleep(50); // warnings are emitted on the next tick
      assert.deepEqual(warnings.filter((w) => /connection header/i.test(w)), []);
    } finally {
      process.off('warning', onWarning);
      await gateway.close({ graceMs: 500 });
    }
  });

  it('sends HTTP/2 sessions a GOAWAY when it drains, and their streams in flight finish', async () => {
    install(first, files);
    const gateway = gatewayWith({});
    const url = await gateway.listen();
    const session = h2connect(url, { ca: ca.ca, servername: 'localhost' });
    session.on('error', () => undefined);
    let goawayAt = 0;
    session.once('goaway', () => (goawayAt = Date.now()));
    try {
      assert.equal((await h2request(session, { ':path': '/api/warm' })).headers[':status'], 201);
      const inFlight = Array.from({ length: 8 }, (_, i) => h2request(session, { ':path': `/api/slow/1500?i=${i}` }));
      await eventually('the streams to reach the backend', () => gateway.inFlight === 8);
      const closed = gateway.close({ graceMs: 10_000 });
      const answers = await Promise.all(inFlight);
      const finishedAt = Date.now();
      assert.ok(goawayAt > 0, 'a GOAWAY arrived');
      assert.ok(goawayAt < finishedAt, 'the GOAWAY came while the streams were in flight');
      answers.forEach((a, i) => {
        assert.equal(a.headers[':status'], 201);
        assert.equal(JSON.parse(a.body.toString()).url, `/slow/1500?i=${i}`);
      });
      await closed;
    } finally {
      session.destroy();
      await gateway.close({ graceMs: 0 });
    }
  });

  it('speaks HTTP/2 to HTTPS backends that pick h2 by ALPN with backends.allowH2 (an h2-only Node backend): bodies intact, GETs multiplexed on one connection', async () => {
    install(first, files);
    const backendCert = ca.issue('backend');
    const versions: string[] = [];
    const sessions = new Set<ServerHttp2Session>();
    // No allowHTTP1: this backend answers HTTP/2 only.
    const h2backend = createSecureServer({ key: backendCert.key, cert: backendCert.cert }, (req, res) => {
      versions.push(req.httpVersion);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.once('end', () => {
        const body = Buffer.concat(chunks);
        res.writeHead(200, { 'content-type': 'application/json', 'x-h2-backend': 'yes' });
        res.end(JSON.stringify({ url: req.url, method: req.method, bodyLength: body.length, bodySha256: createHash('sha256').update(body).digest('hex'), host: req.headers[':authority'] }));
      });
    });
    h2backend.on('session', (session: ServerHttp2Session) => sessions.add(session));
    h2backend.listen(0, '127.0.0.1');
    await once(h2backend, 'listening');
    const reg = await fetch(`${agent.httpUrl}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify({ Name: 'h2echo', ID: 'h2echo-1', Address: '127.0.0.1', Port: (h2backend.address() as AddressInfo).port, Tags: ['https'] }),
    });
    assert.equal(reg.status, 200, await reg.text());
    const gateway = createGateway({
      consulAddress: agent.httpAddr,
      port: 0,
      discovery: { enabled: false },
      routes: [{ path: '/h2/**', service: 'h2echo', retries: 0 }],
      tls: { ...files, reloadIntervalMs: 0 },
      backends: { allowH2: true, caFile: ca.caFile },
    });
    try {
      const url = await gateway.listen();
      const session = h2connect(url, { ca: ca.ca, servername: 'localhost' });
      session.on('error', () => undefined);
      try {
        const body = Buffer.alloc(200_000, 'y');
        const post = await h2request(session, { ':method': 'POST', ':path': '/h2/upload?n=1' }, body);
        assert.equal(post.headers[':status'], 200, post.body.toString());
        assert.equal(post.headers['x-h2-backend'], 'yes');
        const echo = JSON.parse(post.body.toString()) as { url: string; method: string; bodyLength: number; bodySha256: string; host: string };
        assert.deepEqual({ url: echo.url, method: echo.method, bodyLength: echo.bodyLength }, { url: '/upload?n=1', method: 'POST', bodyLength: body.length });
        assert.equal(echo.bodySha256, createHash('sha256').update(body).digest('hex'));
        const gets = await Promise.all(Array.from({ length: 50 }, (_, i) => h2request(session, { ':path': `/h2/get/${i}` })));
        gets.forEach((g, i) => {
          assert.equal(g.headers[':status'], 200);
          assert.equal(JSON.parse(g.body.toString()).url, `/get/${i}`);
        });
        assert.ok(versions.length === 51 && versions.every((v) => v === '2.0'), versions.join(' '));
        assert.equal(sessions.size, 1, 'the 50 concurrent GETs shared the gateway\'s one HTTP/2 connection to the backend');
      } finally {
        session.close();
      }
    } finally {
      await gateway.close({ graceMs: 500 });
      for (const s of sessions) s.destroy();
      h2backend.close();
    }
  });

  it('with --workers 2, every worker reloads the certificate when its files change (the bin, a child process)', async () => {
    install(first, files);
    const config = join(ca.dir, 'gateway.json');
    writeFileSync(config, JSON.stringify({ discovery: { enabled: false }, routes: [{ path: '/api/**', service: 'echo' }], tls: { ...files, reloadIntervalMs: 100 } }));
    const child = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', 'packages/gateway/src/cli.ts', '--config', config, '--workers', '2'], {
      env: { ...process.env, CONSUL_HTTP_ADDR: agent.httpAddr, PORT: '0', GATEWAY_HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(child);
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = once(child, 'exit');
    try {
      const url = await eventually('the gateway to listen', () => /listening on (https:\/\/\S+)/.exec(output)?.[1], 30_000);
      assert.equal((await peerCertificate(url, ca.ca)).fingerprint256, first.fingerprint256);
      // Registered as an HTTPS service, so Proxyless clients (scheme "auto") call it over TLS.
      const registered = await eventually('the gateway to register', async () => {
        const services = await (await fetch(`${agent.httpUrl}/v1/agent/services`)).json() as Record<string, { Service: string; Tags: string[]; Meta: Record<string, string> }>;
        return Object.values(services).find((s) => s.Service === 'gateway');
      });
      assert.equal(registered.Meta['scheme'], 'https');
      assert.ok(registered.Tags.includes('https'), registered.Tags.join(','));
      install(second, files);
      // Both workers reloaded: the merged status counts two reloads, and every new connection (spread over both) sees the new one.
      await eventually('both workers to reload', async () => (await statusOf(url, ca.ca)).gateway.tls?.reloads === 2, 40_000);
      for (let i = 0; i < 6; i++) assert.equal((await peerCertificate(url, ca.ca)).fingerprint256, second.fingerprint256, `connection ${i}`);
      assert.equal((output.match(/TLS certificate reloaded: CN=second/g) ?? []).length, 2, output);
      const r = await h1request(`${url}/api/w`, ca.ca);
      assert.equal(r.status, 201);
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, output);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a rolling restart (SIGHUP) sends the old worker\'s HTTP/2 sessions a GOAWAY: every stream sent before it is answered, a new session reaches the new worker', async () => {
    install(first, files);
    const config = join(ca.dir, 'gateway-restart.json');
    writeFileSync(config, JSON.stringify({ discovery: { enabled: false }, routes: [{ path: '/api/**', service: 'echo', retries: 0 }], tls: { ...files, reloadIntervalMs: 0 } }));
    const child = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', 'packages/gateway/src/cli.ts', '--config', config, '--workers', '1'], {
      env: { ...process.env, CONSUL_HTTP_ADDR: agent.httpAddr, PORT: '0', GATEWAY_HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(child);
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = once(child, 'exit');
    try {
      const url = await eventually('the gateway to listen', () => /listening on (https:\/\/\S+)/.exec(output)?.[1], 30_000);
      const workersOf = async (): Promise<number[]> => ((await statusOf(url, ca.ca)) as unknown as { workers: { pid: number }[] }).workers.map((w) => w.pid);
      const [oldPid] = await workersOf();
      const session = h2connect(url, { ca: ca.ca, servername: 'localhost' });
      session.on('error', () => undefined);
      let goaway = false;
      session.once('goaway', () => (goaway = true));
      assert.equal((await h2request(session, { ':path': '/api/warm' })).headers[':status'], 201);
      child.kill('SIGHUP');
      // Streams of 1.5 s each, one every 100 ms, until the GOAWAY: the old worker drains with some in flight.
      // A stream on the wire while the GOAWAY is (above its last stream id) is refused unprocessed
      // (RFC 9113 §6.8, §8.7), and a client retries it on a new connection, as browsers and curl do.
      // Node's http2 cannot send the two-step shutdown notice (nghttp2 ignores every new stream after
      // any GOAWAY it sent), so such a crossing stream is possible: a loaded CI run had one.
      const sent: Promise<{ headers: H2Headers; body: Buffer }>[] = [];
      let refused = 0;
      const send = async (path: string): Promise<{ headers: H2Headers; body: Buffer }> => {
        try {
          return await h2request(session, { ':path': path });
        } catch (error) {
          if (!/REFUSED_STREAM|code 7\)/.test((error as Error).message)) throw error;
          refused++;
          const retry = h2connect(url, { ca: ca.ca, servername: 'localhost' });
          retry.on('error', () => undefined);
          try {
            return await h2request(retry, { ':path': path });
          } finally {
            retry.close();
          }
        }
      };
      const seenBefore = backendSeen.length;
      const deadline = Date.now() + 60_000;
      while (!goaway && Date.now() < deadline) {
        sent.push(send(`/api/slow/1500?i=${sent.length}`));
        await sleep(100);
      }
      assert.ok(goaway, `no GOAWAY within 60 s: ${output}`);
      const answers = await Promise.all(sent);
      answers.forEach((a, i) => assert.equal(a.headers[':status'], 201, `stream ${i}`));
      // Each stream reached the backend exactly once: a refused one was not processed before its retry.
      const seen = backendSeen.slice(seenBefore);
      sent.forEach((_, i) => assert.equal(seen.filter((u) => u === `/slow/1500?i=${i}`).length, 1, `stream ${i} reached the backend once: ${seen.join(' ')}`));
      console.log(`      [measure] ${sent.length} streams across the GOAWAY, ${refused} refused unprocessed and retried on a new connection`);
      session.close();
      const fresh = h2connect(url, { ca: ca.ca, servername: 'localhost' });
      fresh.on('error', () => undefined);
      try {
        assert.equal((await h2request(fresh, { ':path': '/api/after' })).headers[':status'], 201);
      } finally {
        fresh.close();
      }
      const pids = await eventually('the old worker to leave', async () => {
        const now = await workersOf();
        return now.length === 1 && now[0] !== oldPid ? now : undefined;
      }, 30_000);
      assert.notEqual(pids[0], oldPid);
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, output);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
