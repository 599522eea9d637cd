/**
 * The `proxyless-gateway` bin's first minutes, as a new user meets them: a
 * port or host it cannot listen on is one line naming the option and the
 * variable that set it (exit 2), never `bind EADDRINUSE …` alone or a stack
 * trace; on a scheme's default port it registers that port; a registry
 * address where another HTTP server answers is named at once. Real Consul,
 * real child processes, real signals.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { startConsulAgent, type ConsulAgent } from './support/consul.js';
import { freePort, runSource, trackChild } from './support/processes.js';
import { eventually } from './support/wait.js';

describe('proxyless-gateway: where it listens (real Consul, child processes)', function () {
  this.timeout(120_000);
  let agent: ConsulAgent;
  let busy: Server;
  before(async () => {
    agent = await startConsulAgent();
    busy = createServer();
    busy.listen(0, '127.0.0.1');
    await once(busy, 'listening');
  });
  after(async () => {
    busy?.close();
    await agent?.stop();
  });

  /** Runs the bin to its exit; asserts one line of stderr and exit 2, returns the line. */
  async function oneLine(env: Record<string, string>): Promise<string> {
    const r = await runSource(['packages/gateway/src/cli.ts', '--workers', '1'], { CONSUL_HTTP_ADDR: agent.httpAddr, REGISTRY: 'consul', ...env }, 60_000);
    assert.equal(r.signal, null, `killed: never exited\n${r.stderr}`);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.doesNotMatch(r.stdout, /listening/);
    return lines[0] ?? '';
  }

  it('a port in use: one line naming port and PORT, exit 2', async () => {
    const port = (busy.address() as AddressInfo).port;
    const line = await oneLine({ PORT: String(port) });
    assert.match(line, new RegExp(`^proxyless-gateway: Invalid option "port": ${String(port)} is in use on 127\\.0\\.0\\.1 \\(EADDRINUSE\\)`));
    assert.match(line, /PORT \(0: any free port\)/);
  });

  it('a host that is not this machine\'s: one line naming host and GATEWAY_HOST, exit 2', async () => {
    const line = await oneLine({ PORT: '0', GATEWAY_HOST: '203.0.113.9' }); // TEST-NET-3: never a local address
    assert.match(line, /^proxyless-gateway: Invalid option "host": "203\.0\.113\.9" is not an address of this machine \(EADDRNOTAVAIL\)/);
    assert.match(line, /GATEWAY_HOST/);
  });

  describe('the registry address pointing at another HTTP server: one line naming the variable, at once (not at the 30 s start timeout), exit 1', () => {
    let other: HttpServer;
    let dir: string;
    before(async () => {
      // Another application's server (a web app on the wrong port): a 404 page for every path.
      other = createHttpServer((_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<!DOCTYPE html>\n<html>\n<body>Not Found</body>\n</html>\n'));
      other.listen(0, '127.0.0.1');
      await once(other, 'listening');
      dir = mkdtempSync(join(tmpdir(), 'gw-other-'));
      writeFileSync(join(dir, 'gateway.json'), JSON.stringify({ port: 0, discovery: { startTimeoutMs: 30_000 } }));
    });
    after(() => {
      other?.close();
      rmSync(dir, { recursive: true, force: true });
    });
    for (const registry of ['consul', 'etcd'] as const) {
      it(registry, async () => {
        const address = `127.0.0.1:${String((other.address() as AddressInfo).port)}`;
        const env = registry === 'consul' ? { CONSUL_HTTP_ADDR: address, REGISTRY: 'consul' } : { ETCDCTL_ENDPOINTS: `http://${address}`, REGISTRY: 'etcd' };
        const t0 = performance.now();
        const r = await runSource(['packages/gateway/src/cli.ts', '--config', join(dir, 'gateway.json')], env, 60_000);
        const took = performance.now() - t0;
        console.log(`      [measure] exit ${String(r.code)} after ${took.toFixed(0)} ms: ${r.stderr.trim()}`);
        assert.equal(r.signal, null, 'killed');
        assert.ok(took < 10_000, `took ${took.toFixed(0)} ms of a 30 000 ms start timeout`);
        assert.equal(r.code, 1, r.stderr);
        const lines = r.stderr.trim().split('\n');
        assert.equal(lines.length, 1, r.stderr);
        assert.match(lines[0] ?? '', registry === 'consul'
          ? new RegExp(`^proxyless-gateway: cannot list services: the server at http://${address.replace(/\./g, '\\.')} answered 404 .*not a Consul agent's HTTP API\\. Set CONSUL_HTTP_ADDR`)
          : new RegExp(`^proxyless-gateway: cannot list services: the server at http://${address.replace(/\./g, '\\.')} answered 404 .*not etcd's v3 API\\. Set ETCDCTL_ENDPOINTS`));
      });
    }
  });

  it('Consul at an https:// address that speaks plain HTTP: the TLS failure and its fix on one line, exit 1', async () => {
    const env = { CONSUL_HTTP_ADDR: `https://${agent.httpAddr}`, REGISTRY: 'consul' };
    const r = await runSource(['packages/gateway/src/cli.ts', '--workers', '1'], { PORT: '0', ...env }, 60_000);
    console.log(`      [measure] exit ${String(r.code)}: ${r.stderr.trim()}`);
    assert.equal(r.code, 1, r.stderr);
    // OpenSSL's message ends in a newline: it split the line in two.
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^proxyless-gateway: cannot list services: .*unreachable: .*wrong version number.* — the agent at this address does not speak TLS/);
  });

  it('discovery off, Consul on a closed port: the registration fails the start at once naming CONSUL_HTTP_ADDR, exit 1 (not a retry line per second, forever)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-nodisc-'));
    try {
      writeFileSync(join(dir, 'gateway.json'), JSON.stringify({ port: 0, discovery: { enabled: false }, routes: [{ path: '/api/**', service: 'web' }] }));
      const address = `127.0.0.1:${String(await freePort())}`;
      const r = await runSource(['packages/gateway/src/cli.ts', '--workers', '1', '--config', join(dir, 'gateway.json')], { CONSUL_HTTP_ADDR: address, REGISTRY: 'consul' }, 30_000);
      console.log(`      [measure] exit ${String(r.code)}: ${r.stderr.trim()}`);
      assert.equal(r.signal, null, `killed: the registrar retried on\n${r.stderr.slice(0, 2000)}`);
      assert.equal(r.code, 1, r.stderr);
      const last = r.stderr.trim().split('\n').at(-1) ?? '';
      assert.match(last, new RegExp(`^proxyless-gateway: cannot register the gateway: Consul at http://${address.replace(/\./g, '\\.')} is unreachable: .*Set CONSUL_HTTP_ADDR \\(or the config's consulAddress\\)`));
      assert.doesNotMatch(r.stdout, /listening/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('port 80: registers port 80 (URL drops a default port); without the privilege, one line naming PORT', async () => {
    const child = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', 'packages/gateway/src/cli.ts', '--workers', '1'], {
      env: { ...process.env, CONSUL_HTTP_ADDR: agent.httpAddr, REGISTRY: 'consul', PORT: '80' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(child);
    let stdout = '';
    let stderr = '';
    const listening = new Promise<false>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (/listening/.test(stdout)) resolve(false);
      });
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, 'exit');
    const ended = await Promise.race([exited.then(() => true), listening]);
    if (ended) {
      // Not root, or port 80 taken on this machine: the typed line, not a stack trace.
      const lines = stderr.trim().split('\n');
      assert.equal(lines.length, 1, stderr);
      assert.match(lines[0] ?? '', /^proxyless-gateway: Invalid option "port": 80 (needs privileges|is in use).*PORT/);
      return;
    }
    try {
      assert.match(stdout, /gateway listening on http:\/\/127\.0\.0\.1(:80)? /);
      const ports = await eventually('the gateway registered', async () => {
        const res = await fetch(`${agent.httpUrl}/v1/catalog/service/gateway`);
        const entries = (await res.json()) as { ServicePort: number }[];
        return entries.length > 0 ? entries.map((e) => e.ServicePort) : undefined;
      }, 30_000);
      assert.deepEqual(ports, [80], stderr);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    assert.doesNotMatch(stderr, /InvalidOptionError|\n\s+at /, stderr);
  });
});
