import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isProxylessError } from '@proxyless/core';
import { EtcdClient, EtcdResolver } from '@proxyless/etcd';
import { startEtcd, type EtcdServer } from '../../../test/support/etcd.js';

/** A throw-away CA, a server certificate for 127.0.0.1 and a client certificate (openssl). */
function makeCertificates(dir: string): Record<'ca' | 'caKey' | 'cert' | 'key' | 'clientCert' | 'clientKey', string> {
  const f = (name: string): string => join(dir, name);
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { stdio: 'ignore' });
  };
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=proxyless-test-ca');
  writeFileSync(f('san.cnf'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  // etcd's gateway refuses client certificates with a CommonName once authentication is on
  // (the CN would be ignored there instead of naming the user): the client's has none.
  for (const [name, subject] of [['server', '/CN=127.0.0.1'], ['client', '/O=proxyless-test-client']] as const) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', subject);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '1', '-extfile', f('san.cnf'));
  }
  return { ca: f('ca.pem'), caKey: f('ca.key'), cert: f('server.pem'), key: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

describe('etcd over mutual TLS with authentication', function () {
  this.timeout(60_000);
  const secret = 'pw-that-must-never-leak';
  let dir: string;
  let certs: ReturnType<typeof makeCertificates>;
  let etcd: EtcdServer & { close(): Promise<void> };
  let env: NodeJS.ProcessEnv;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'proxyless-etcd-tls-'));
    certs = makeCertificates(dir);
    etcd = await startEtcd({ tls: { certFile: certs.cert, keyFile: certs.key, clientCaFile: certs.ca, probeCertFile: certs.clientCert, probeKeyFile: certs.clientKey } });
    env = { ETCDCTL_ENDPOINTS: etcd.clientUrl, ETCDCTL_CACERT: certs.ca, ETCDCTL_CERT: certs.clientCert, ETCDCTL_KEY: certs.clientKey };
    // Turn authentication on (a root user is required first).
    const setup = new EtcdClient({}, env);
    try {
      await setup.request('/v3/auth/user/add', { name: 'root', password: secret });
      await setup.request('/v3/auth/user/grant', { user: 'root', role: 'root' }).catch(async () => setup.request('/v3/auth/user/grant_role', { user: 'root', role: 'root' }));
      await setup.request('/v3/auth/enable', {});
    } finally {
      await setup.close();
    }
  });
  after(async () => {
    await etcd.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads ETCDCTL_* (endpoints, CA, client certificate, user:password) and resolves over TLS with a token', async () => {
    const resolver = new EtcdResolver({ env: { ...env, ETCDCTL_USER: `root:${secret}` } });
    try {
      assert.match(resolver.client.connection.endpoints[0] ?? '', /^https:/);
      await resolver.client.put('/proxyless/services/secure/a', JSON.stringify({ address: '127.0.0.1', port: 8443 }));
      const watch = resolver.watch('secure');
      const snapshot = await watch.ready({ timeoutMs: 10_000 });
      assert.deepEqual(snapshot.instances.map((i) => i.port), [8443]);
      assert.deepEqual((await resolver.resolve('secure')).map((i) => i.port), [8443]);
    } finally {
      await resolver.close();
    }
  });

  it('refuses a wrong password or no credentials with a typed error that never carries the password', async () => {
    const wrong = `${secret}-wrong`;
    const resolver = new EtcdResolver({ env: { ...env, ETCDCTL_USER: `root:${wrong}` } });
    const errors: Error[] = [];
    try {
      await assert.rejects(resolver.resolve('secure', { timeoutMs: 3000 }), (e: Error) => {
        errors.push(e);
        return isProxylessError(e, 'ERR_RESOLUTION_FAILED');
      });
      const watch = resolver.watch('secure');
      watch.on('error', (e) => errors.push(e));
      await new Promise((r) => watch.once('error', r));
    } finally {
      await resolver.close();
    }
    const anonymous = new EtcdClient({}, env);
    await assert.rejects(anonymous.range('/proxyless', { prefix: true }), (e: Error) => isProxylessError(e, 'ERR_ETCD_API'));
    await anonymous.close();
    for (const error of errors) {
      for (let e: unknown = error; e instanceof Error; e = e.cause) {
        assert.ok(!e.message.includes(wrong) && !e.message.includes(secret), `leaked in: ${e.message}`);
        assert.ok(!(e.stack ?? '').includes(secret));
      }
    }
  });

  it('refuses a server whose certificate is not signed by the configured CA', async () => {
    const client = new EtcdClient({ endpoints: etcd.clientUrl, tls: { ca: Buffer.from('') } }, {});
    await assert.rejects(client.range('/x', { timeoutMs: 1000 }), (e) => isProxylessError(e, 'ERR_ETCD_UNREACHABLE') || isProxylessError(e, 'ERR_TIMEOUT'));
    await client.close();
  });
});
