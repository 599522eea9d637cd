import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import { createClient, RequestError, type ProxylessClient } from '@proxyless/http-client';
import { FakeResolver, instance } from './helpers.js';

/** A private CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI. */
function makePki(dir: string): Record<'ca' | 'serverKey' | 'serverCert' | 'clientKey' | 'clientCert', string> {
  const run = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const key = (name: string): void => run('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', name);
  key('ca.key');
  run('req', '-x509', '-new', '-key', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Proxyless test CA');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [['server', 'backend'], ['client', 'gateway']] as const) {
    key(`${name}.key`);
    run('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  }
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  return { ca: read('ca.crt'), serverKey: read('server.key'), serverCert: read('server.crt'), clientKey: read('client.key'), clientCert: read('client.crt') };
}

describe('http-client: HTTPS backends (private CA, client certificate, real TLS server)', function () {
  this.timeout(30_000);
  let dir: string;
  let pki: ReturnType<typeof makePki>;
  let server: Server;
  let port: number;
  const clients: ProxylessClient[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'proxyless-pki-'));
    pki = makePki(dir);
    // The backend demands a client certificate signed by the private CA (mutual TLS).
    server = createServer({ key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const socket = req.socket;
      const peer = socket instanceof TLSSocket ? socket.getPeerCertificate() : undefined;
      res.end(`hello ${String(peer?.subject?.CN)}`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const httpsInstance = (): ReturnType<typeof instance> => Object.freeze({ ...instance(port), tags: Object.freeze(['https']) });

  it('calls an HTTPS instance (tagged https) with the private CA and a client certificate', async () => {
    const resolver = new FakeResolver();
    resolver.set([httpsInstance()]);
    const client = createClient({ service: 'svc', resolver, tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
    clients.push(client);
    const res = await client.text('/');
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, 'hello gateway', 'the server saw our client certificate');
  });

  it('fails typed without the client certificate, and without the CA', async () => {
    const resolver = new FakeResolver();
    resolver.set([httpsInstance()]);
    const noCert = createClient({ service: 'svc', resolver, tls: { ca: pki.ca }, retry: false });
    const noCa = createClient({ service: 'svc', resolver, tls: { cert: pki.clientCert, key: pki.clientKey }, retry: false });
    clients.push(noCert, noCa);
    await assert.rejects(noCert.text('/'), RequestError);
    await assert.rejects(noCa.text('/'), (e: unknown) => e instanceof RequestError && e.attempts === 1);
  });

  it('uses https for every instance with scheme: "https", and http by default', async () => {
    const resolver = new FakeResolver();
    resolver.set([instance(port)]); // no tag
    const forced = createClient({ service: 'svc', resolver, scheme: 'https', tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
    const plain = createClient({ service: 'svc', resolver, retry: false });
    clients.push(forced, plain);
    assert.equal((await forced.text('/')).body, 'hello gateway');
    await assert.rejects(plain.text('/'), RequestError, 'plain HTTP to a TLS port fails typed');
  });

  it('speaks HTTP/2 to an instance that picks h2 by ALPN with allowH2, many streams on one connection; HTTP/1.1 without it', async () => {
    const sessions: unknown[] = [];
    const h2 = createSecureServer({ key: pki.serverKey, cert: pki.serverCert, allowHTTP1: true }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.once('end', () => res.end(`${req.httpVersion} ${req.method} ${req.url} ${Buffer.concat(chunks).length}`));
    });
    h2.on('session', (s) => sessions.push(s));
    const h2Server: Http2SecureServer = h2;
    await new Promise<void>((r) => h2Server.listen(0, '127.0.0.1', r));
    try {
      const resolver = new FakeResolver();
      resolver.set([Object.freeze({ ...instance((h2Server.address() as AddressInfo).port), tags: Object.freeze(['https']) })]);
      const withH2 = createClient({ service: 'svc', resolver, tls: { ca: pki.ca }, allowH2: true });
      const without = createClient({ service: 'svc', resolver, tls: { ca: pki.ca } });
      clients.push(withH2, without);
      assert.equal(withH2.explainConfig().allowH2, true);
      assert.equal((await withH2.text({ path: '/a?b=1', method: 'POST', body: 'x'.repeat(70_000) })).body, '2.0 POST /a?b=1 70000');
      const all = await Promise.all(Array.from({ length: 50 }, (_, i) => withH2.text(`/p/${i}`)));
      all.forEach((r, i) => assert.equal(r.body, `2.0 GET /p/${i} 0`));
      assert.equal(sessions.length, 1, 'every stream on one HTTP/2 connection');
      assert.equal((await without.text('/c')).body, '1.1 GET /c 0');
      assert.throws(() => createClient({ service: 'svc', resolver, allowH2: 'yes' as never }), /allowH2/);
    } finally {
      for (const s of sessions) (s as { destroy(): void }).destroy();
      await new Promise((r) => h2Server.close(r));
    }
  });
});
