/**
 * The `proxyless-gateway` bin's first minutes, as a new user meets them: a
 * port or host it cannot listen on is one line naming the option and the
 * variable that set it (exit 2), never `bind EADDRINUSE …` alone or a stack
 * trace; on a scheme's default port it registers that port. Real Consul,
 * real child processes, real signals.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startConsulAgent, type ConsulAgent } from './support/consul.js';
import { runSource, trackChild } from './support/processes.js';
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
