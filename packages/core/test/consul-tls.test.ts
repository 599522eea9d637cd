/**
 * TLS to a real Consul agent (HTTPS with verify_incoming, certificates made by
 * `consul tls` in the test): every set-up mistake fails with a hint naming the
 * likely cause and the variable to set, and the right settings (from Consul's
 * own environment variables) work.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConsulHttpClient, ConsulUnreachableError, isProxylessError, type ConsulConnectionOptions } from '@proxyless/core';
import { consulBinary, freePort, startConsulAgent, type ConsulAgent } from '../../../test/support/consul.js';

describe('ConsulHttpClient over TLS (a real agent with verify_incoming)', function () {
  this.timeout(90_000);
  let dir: string;
  let agent: ConsulAgent;
  let httpsPort: number;
  let files: { ca: string; cert: string; key: string; otherCa: string };

  before(async function () {
    this.timeout(120_000);
    dir = mkdtempSync(join(tmpdir(), 'proxyless-consul-tls-'));
    const consul = consulBinary().path;
    const make = (cwd: string, ...args: string[]): void => {
      const r = spawnSync(consul, ['tls', ...args], { cwd, encoding: 'utf8' });
      assert.equal(r.status, 0, `consul tls ${args.join(' ')}: ${r.stderr}`);
    };
    make(dir, 'ca', 'create');
    make(dir, 'cert', 'create', '-server', '-dc', 'dc1');
    make(dir, 'cert', 'create', '-client', '-dc', 'dc1');
    // A second, unrelated CA: what a client trusting the wrong CA file has.
    const other = join(dir, 'other');
    mkdirSync(other);
    make(other, 'ca', 'create');
    files = {
      ca: join(dir, 'consul-agent-ca.pem'),
      cert: join(dir, 'dc1-client-consul-0.pem'),
      key: join(dir, 'dc1-client-consul-0-key.pem'),
      otherCa: join(other, 'consul-agent-ca.pem'),
    };
    httpsPort = await freePort();
    const config = join(dir, 'tls.json');
    writeFileSync(
      config,
      JSON.stringify({
        ports: { https: httpsPort },
        tls: {
          defaults: { ca_file: files.ca, cert_file: join(dir, 'dc1-server-consul-0.pem'), key_file: join(dir, 'dc1-server-consul-0-key.pem') },
          https: { verify_incoming: true },
        },
      }),
    );
    agent = await startConsulAgent({ args: [`-config-file=${config}`] });
  });
  after(async function () {
    await agent?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** One call with these settings; returns the error (or undefined when it worked). */
  const attempt = async (options: ConsulConnectionOptions, env: NodeJS.ProcessEnv = {}): Promise<unknown> => {
    const client = new ConsulHttpClient({ timeoutMs: 10_000, ...options }, env);
    try {
      await client.request({ path: '/v1/status/leader' });
      return undefined;
    } catch (error) {
      return error;
    } finally {
      await client.close();
    }
  };
  const https = (): string => `https://127.0.0.1:${String(httpsPort)}`;

  it('works with the CA, client certificate and key from CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY', async () => {
    const env = { CONSUL_HTTP_ADDR: `127.0.0.1:${String(httpsPort)}`, CONSUL_HTTP_SSL: 'true', CONSUL_CACERT: files.ca, CONSUL_CLIENT_CERT: files.cert, CONSUL_CLIENT_KEY: files.key };
    assert.equal(await attempt({}, env), undefined);
  });

  it('no client certificate, the agent requires one: the hint names verify_incoming, CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY', async () => {
    const error = await attempt({}, { CONSUL_HTTP_ADDR: https(), CONSUL_CACERT: files.ca });
    assert.ok(error instanceof ConsulUnreachableError, String(error));
    assert.match(error.message, new RegExp(`^Consul at ${https().replace(/\./g, '\\.')} is unreachable: `));
    assert.match(error.message, /requires client certificates \(verify_incoming\), set CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY/);
    assert.match(String(error.hint), /CONSUL_CLIENT_CERT/);
  });

  it('the agent\'s CA is not trusted: the hint names CONSUL_CACERT', async () => {
    for (const ca of [undefined, files.otherCa]) {
      const env: NodeJS.ProcessEnv = { CONSUL_HTTP_ADDR: https(), CONSUL_CLIENT_CERT: files.cert, CONSUL_CLIENT_KEY: files.key, ...(ca ? { CONSUL_CACERT: ca } : {}) };
      const error = await attempt({}, env);
      assert.ok(isProxylessError(error, 'ERR_CONSUL_UNREACHABLE'), String(error));
      assert.match(error.message, /not signed by a CA this client trusts: set CONSUL_CACERT/, `CA ${ca ?? 'none (system roots)'}`);
    }
  });

  it('the server name does not match the certificate: the hint names CONSUL_TLS_SERVER_NAME', async () => {
    const env = { CONSUL_HTTP_ADDR: https(), CONSUL_CACERT: files.ca, CONSUL_CLIENT_CERT: files.cert, CONSUL_CLIENT_KEY: files.key, CONSUL_TLS_SERVER_NAME: 'consul.example.com' };
    const error = await attempt({}, env);
    assert.ok(isProxylessError(error, 'ERR_CONSUL_UNREACHABLE'), String(error));
    assert.match(error.message, /does not carry the name "consul\.example\.com": set CONSUL_TLS_SERVER_NAME/);
    // The names the certificate does carry work.
    assert.equal(await attempt({}, { ...env, CONSUL_TLS_SERVER_NAME: 'server.dc1.consul' }), undefined);
  });

  it('HTTPS to the plain HTTP port, and HTTP to the HTTPS port, say which to use', async () => {
    const tlsToPlain = await attempt({ address: `https://${agent.httpAddr}` }, { CONSUL_CACERT: files.ca });
    assert.ok(isProxylessError(tlsToPlain, 'ERR_CONSUL_UNREACHABLE'), String(tlsToPlain));
    assert.match(tlsToPlain.message, /does not speak TLS: use an http:\/\/ address/);
    const plainToTls = await attempt({ address: `127.0.0.1:${String(httpsPort)}` });
    assert.ok(isProxylessError(plainToTls, 'ERR_CONSUL_API'), String(plainToTls));
    assert.match(plainToTls.message, /answered 400: Client sent an HTTP request to an HTTPS server\..*use https:\/\/ in CONSUL_HTTP_ADDR, or set CONSUL_HTTP_SSL=true/);
  });
});
