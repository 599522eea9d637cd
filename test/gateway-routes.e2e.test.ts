/**
 * @proxyless/gateway routing end to end: host and header predicates and a
 * weighted canary split through a real gateway, real backends and a real
 * Consul agent; routes hot-reloaded from Consul KV and from etcd under a load
 * loop.
 */
import assert from 'node:assert/strict';
import { Agent, createServer, request as httpRequest, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startConsulAgent, type ConsulAgent } from './support/consul.js';
import { createGateway, type Gateway, type GatewayStatus } from '@proxyless/gateway';

/** A backend that answers every request with its own name. */
async function startNamed(name: string): Promise<{ name: string; server: Server; port: number }> {
  const server = createServer((req, res) => {
    req.resume();
    res.end(name);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { name, server, port: (server.address() as AddressInfo).port };
}

async function stopNamed(b: { server: Server }): Promise<void> {
  b.server.closeAllConnections();
  b.server.close();
  await once(b.server, 'close').catch(() => undefined);
}

/** GET through the gateway on a kept-alive agent: status and body. */
function get(url: string, headers: Record<string, string> = {}, agent?: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent: agent ?? false, signal: AbortSignal.timeout(10_000) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end();
  });
}

describe('@proxyless/gateway routes: predicates and weighted splits (real Consul, real backends)', function () {
  this.timeout(120_000);
  let agent: ConsulAgent;
  let gateway: Gateway;
  let base: string;
  const backends: Awaited<ReturnType<typeof startNamed>>[] = [];

  before(async () => {
    agent = await startConsulAgent();
    for (const name of ['stable', 'canary', 'tenant', 'beta']) {
      const b = await startNamed(name);
      backends.push(b);
      const res = await fetch(`${agent.httpUrl}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Name: name, ID: `${name}-1`, Address: '127.0.0.1', Port: b.port }) });
      assert.equal(res.status, 200, await res.text());
    }
    gateway = createGateway({
      consulAddress: agent.httpAddr,
      port: 0,
      discovery: { enabled: false },
      routes: [
        { path: '/shop/**', services: [{ service: 'stable', weight: 80 }, { service: 'canary', weight: 20 }] },
        { path: '/shop/**', service: 'canary', headers: { 'x-canary': '1' } },
        { path: '/shop/**', service: 'tenant', host: '*.tenants.example' },
        { path: '/shop/**', service: 'beta', host: 'beta.tenants.example' },
      ],
    });
    base = await gateway.listen();
  });

  after(async () => {
    await gateway?.close({ graceMs: 500 });
    await Promise.all(backends.map(stopNamed));
    await agent?.stop();
  });

  it('sends by host (exact before wildcard) and by header, and splits the rest 80/20 within 5 sigma', async () => {
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 4 });
    try {
      assert.equal((await get(`${base}/shop/x`, { host: 'beta.tenants.example' }, keepAlive)).body, 'beta');
      assert.equal((await get(`${base}/shop/x`, { host: 'acme.tenants.example:8080' }, keepAlive)).body, 'tenant');
      assert.equal((await get(`${base}/shop/x`, { 'x-canary': '1' }, keepAlive)).body, 'canary');
      const n = 1_000;
      const counts = new Map<string, number>();
      for (let i = 0; i < n; i += 4) {
        const answers = await Promise.all([0, 1, 2, 3].map(() => get(`${base}/shop/x`, {}, keepAlive)));
        for (const a of answers) {
          assert.equal(a.status, 200, a.body);
          counts.set(a.body, (counts.get(a.body) ?? 0) + 1);
        }
      }
      const canary = counts.get('canary') ?? 0;
      const sigma = Math.sqrt(n * 0.2 * 0.8);
      console.log(`      [measure] 80/20 split over ${n} requests: stable ${counts.get('stable') ?? 0}, canary ${canary}`);
      assert.ok(Math.abs(canary - n * 0.2) < 5 * sigma, `canary got ${canary} of ${n}`);
      assert.equal((counts.get('stable') ?? 0) + canary, n);
      // Each share counts apart, so a canary's errors are not hidden in the stable ones.
      const routes = (JSON.parse((await get(`${base}/_proxyless/status.json`)).body) as GatewayStatus).routes;
      assert.equal(routes.find((r) => r.id === '/shop/** -> canary (20%)')?.succeeded, canary);
      assert.equal(routes.find((r) => r.id === '/shop/** [x-canary=1] -> canary')?.succeeded, 1);
    } finally {
      keepAlive.destroy();
    }
  });
});
