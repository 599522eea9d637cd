/**
 * @proxyless/gateway routing end to end: host and header predicates and a
 * weighted canary split through a real gateway, real backends and a real
 * Consul agent; routes hot-reloaded from Consul KV and from etcd under a load
 * loop.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, createServer, request as httpRequest, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startConsulAgent, type ConsulAgent } from './support/consul.js';
import { startEtcd, type EtcdServer } from './support/etcd.js';
import { EtcdClient } from '@proxyless/etcd';
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

/** Polls `check` every 10 ms until it returns a truthy value, or fails after `timeoutMs`. */
async function eventually<T>(what: string, check: () => T | Promise<T>, timeoutMs = 15_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** The routes key's part of status.json. */
async function routesSourceOf(base: string): Promise<NonNullable<GatewayStatus['routesSource']>> {
  const doc = JSON.parse((await get(`${base}/_proxyless/status.json`)).body) as GatewayStatus;
  assert.ok(doc.routesSource, JSON.stringify(doc));
  return doc.routesSource;
}

/**
 * The hot-reload scenario on one registry: under a bounded load loop (8 callers on kept-alive
 * connections), a route change written to the key takes effect (measured from the write's return
 * to the first request answered the new way); no request fails; no request sent after the first
 * new answer arrived is answered the old way (the swap is atomic); bad JSON and an invalid route
 * keep the routes in use and are reported; a deleted key brings back the file's routes.
 */
async function hotReload(label: string, base: string, write: (value: string) => Promise<void>, remove: () => Promise<void>): Promise<void> {
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 8 });
  const failures: string[] = [];
  const answers: { sentAt: number; at: number; body: string }[] = [];
  let stop = false;
  // Bounded: until stopped, 30 s or 20,000 requests.
  const deadline = Date.now() + 30_000;
  const loop = async (): Promise<void> => {
    while (!stop && Date.now() < deadline && answers.length + failures.length < 20_000) {
      const sentAt = performance.now();
      try {
        const r = await get(`${base}/app/x`, {}, keepAlive);
        if (r.status === 200) answers.push({ sentAt, at: performance.now(), body: r.body });
        else failures.push(`status ${r.status}: ${r.body}`);
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
  };
  try {
    assert.equal((await get(`${base}/app/x`)).body, 'blue', 'the file routes before any key');
    const loops = Array.from({ length: 8 }, loop);
    await sleep(300);
    await write(JSON.stringify([{ path: '/app/**', service: 'green', timeoutMs: 5_000 }]));
    const written = performance.now();
    const firstGreen = await eventually('the new route', () => answers.find((a) => a.body === 'green' && a.at >= written - 1_000));
    const tookMs = Math.max(0, firstGreen.at - written);
    await sleep(300);
    stop = true;
    await Promise.all(loops);
    const late = answers.filter((a) => a.body === 'blue' && a.sentAt > firstGreen.at);
    console.log(`      [measure] ${label}: write -> first request routed the new way ${tookMs.toFixed(1)} ms; ${answers.length} requests, ${failures.length} failed, ${late.length} old-route answers after the switch (load ${(await import('node:os')).loadavg()[0]?.toFixed(1)})`);
    assert.deepEqual(failures.slice(0, 5), []);
    assert.deepEqual(late.slice(0, 3), [], 'a request sent after the switch went the old way');
    // Generous for a loaded machine; the figure above is the measurement (the target is 100 ms).
    assert.ok(tookMs < 1_000, `the route change took ${tookMs} ms`);
    const good = await routesSourceOf(base);
    assert.equal(good.active, 'key');
    assert.equal(good.lastError, null);
    assert.ok(good.revision !== null && good.revision > 0, JSON.stringify(good));

    // Bad JSON: refused, reported, the green routes stay.
    await write('[{ "path": "/app/**", "service": ');
    const refused = await eventually('the refusal on status.json', async () => {
      const s = await routesSourceOf(base);
      return s.lastError !== null ? s : undefined;
    });
    assert.match(refused.lastError ?? '', /refused: is not JSON/);
    assert.equal(refused.revision, good.revision, 'the routes in use are still the last good revision');
    for (let i = 0; i < 10; i++) assert.equal((await get(`${base}/app/x`, {}, keepAlive)).body, 'green');
    // A misspelt key is refused the same way, with the config file's message.
    await write(JSON.stringify([{ path: '/app/**', service: 'blue', timeoutMS: 5 }]));
    await eventually('the typo refusal', async () => /timeoutMS.*did you mean "timeoutMs"/.test((await routesSourceOf(base)).lastError ?? ''));
    assert.equal((await get(`${base}/app/x`, {}, keepAlive)).body, 'green');

    // Deleted: back to the file's routes.
    await remove();
    await eventually('the file routes again', async () => (await get(`${base}/app/x`, {}, keepAlive)).body === 'blue');
    const back = await routesSourceOf(base);
    assert.deepEqual({ active: back.active, revision: back.revision, lastError: back.lastError }, { active: 'file', revision: null, lastError: null });
  } finally {
    stop = true;
    keepAlive.destroy();
  }
}

describe('@proxyless/gateway routes hot-reloaded from Consul KV (real agent, real backends, load loop)', function () {
  this.timeout(120_000);
  let agent: ConsulAgent;
  let gateway: Gateway;
  let base: string;
  const backends: Awaited<ReturnType<typeof startNamed>>[] = [];
  const key = 'proxyless/gateway/routes';

  before(async () => {
    agent = await startConsulAgent();
    for (const name of ['blue', 'green']) {
      const b = await startNamed(name);
      backends.push(b);
      const res = await fetch(`${agent.httpUrl}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Name: name, ID: `${name}-1`, Address: '127.0.0.1', Port: b.port }) });
      assert.equal(res.status, 200, await res.text());
    }
    gateway = createGateway({
      consulAddress: agent.httpAddr,
      port: 0,
      discovery: { enabled: false },
      routes: [{ path: '/app/**', service: 'blue' }],
      routesSource: { consulKey: key },
      log: () => undefined,
    });
    base = await gateway.listen();
  });

  after(async () => {
    await gateway?.close({ graceMs: 500 });
    await Promise.all(backends.map(stopNamed));
    await agent?.stop();
  });

  it('swaps the routes within 100 ms of a KV write under load with 0 failed requests; bad values keep the routes and are reported; a deleted key brings back the file routes', async () => {
    const write = async (value: string): Promise<void> => {
      const res = await fetch(`${agent.httpUrl}/v1/kv/${key}`, { method: 'PUT', body: value });
      assert.equal(await res.text(), 'true');
    };
    const remove = async (): Promise<void> => {
      const res = await fetch(`${agent.httpUrl}/v1/kv/${key}`, { method: 'DELETE' });
      assert.equal(res.status, 200);
    };
    await hotReload('Consul KV', base, write, remove);
  });

  /** Writes the key and waits until the gateway uses that revision. */
  async function apply(routes: unknown[]): Promise<void> {
    const res = await fetch(`${agent.httpUrl}/v1/kv/${key}`, { method: 'PUT', body: JSON.stringify(routes) });
    assert.equal(await res.text(), 'true');
    const index = Number((await fetch(`${agent.httpUrl}/v1/kv/${key}`)).headers.get('x-consul-index'));
    await eventually(`revision ${index} in use`, async () => ((await routesSourceOf(base)).revision ?? 0) >= index);
  }

  it('keeps the rate-limit buckets of routes whose limit did not change across a reload (no fresh burst); a changed limit starts a new bucket', async () => {
    const limited = { path: '/limited/**', service: 'blue', rateLimit: { ratePerSecond: 0.05, burst: 2 } };
    try {
      await apply([limited, { path: '/other/**', service: 'blue' }]);
      for (let i = 0; i < 2; i++) assert.equal((await get(`${base}/limited/x`)).status, 200, `burst request ${i + 1}`);
      assert.equal((await get(`${base}/limited/x`)).status, 429);
      // An unrelated route changes, and the limited one moves down the list: same route, same limit.
      await apply([{ path: '/other/**', service: 'green' }, limited]);
      assert.equal((await get(`${base}/other/x`)).body, 'green');
      assert.equal((await get(`${base}/limited/x`)).status, 429, 'an unrelated route change refilled the bucket');
      // Its service changes, its limit does not: still the same bucket.
      await apply([{ ...limited, service: 'green' }]);
      assert.equal((await get(`${base}/limited/x`)).status, 429, 'a route whose limit did not change got a fresh burst');
      // A changed limit is a new bucket (full).
      await apply([{ ...limited, rateLimit: { ratePerSecond: 0.05, burst: 3 } }]);
      for (let i = 0; i < 3; i++) assert.equal((await get(`${base}/limited/x`)).status, 200, `new burst request ${i + 1}`);
      assert.equal((await get(`${base}/limited/x`)).status, 429);
    } finally {
      await fetch(`${agent.httpUrl}/v1/kv/${key}`, { method: 'DELETE' });
    }
  });

  it("applies a reloaded idleTimeoutMs to the service's pools; an event stream in flight on the old pools is not cut", async () => {
    // A backend writing `n` chunks `gapMs` apart: /<gapMs>/<n>.
    const ticker = createServer((req, res) => {
      req.resume();
      const [, gap, n] = (req.url ?? '/').split('/').map(Number);
      res.writeHead(200, { 'content-type': 'text/plain' });
      let sent = 0;
      const tick = (): void => {
        if (res.destroyed) return;
        res.write(`${sent}.`);
        if (++sent === n) res.end();
        else setTimeout(tick, gap).unref();
      };
      tick();
    });
    ticker.listen(0, '127.0.0.1');
    await once(ticker, 'listening');
    const reg = await fetch(`${agent.httpUrl}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Name: 'ticker', ID: 'ticker-1', Address: '127.0.0.1', Port: (ticker.address() as AddressInfo).port }) });
    assert.equal(reg.status, 200);
    /** The stream's text and whether it ended whole. */
    const stream = (path: string): Promise<{ body: string; complete: boolean }> =>
      new Promise((resolve) => {
        const req = httpRequest(`${base}${path}`, { agent: false, signal: AbortSignal.timeout(20_000) }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.once('end', () => resolve({ body, complete: res.complete }));
          res.once('error', () => resolve({ body, complete: false }));
        });
        req.once('error', () => resolve({ body: '', complete: false }));
        req.end();
      });
    const route = { path: '/tick/**', service: 'ticker', retries: 0 };
    try {
      await apply([{ ...route, idleTimeoutMs: 1_000 }]);
      // The 1 s body timeout cuts a stream silent for 3 s (undici's timer is coarse: ~1–2 s).
      assert.deepEqual(await stream('/tick/3000/2'), { body: '0.', complete: false });
      // In flight across the change: 12 chunks 300 ms apart, on the old pools.
      const before = stream('/tick/300/12');
      await sleep(500);
      await apply([{ ...route, idleTimeoutMs: 6_000 }]);
      const after = await stream('/tick/3000/2');
      assert.deepEqual(after, { body: '0.1.', complete: true }, 'the reloaded idleTimeoutMs did not reach the pools');
      assert.deepEqual(await before, { body: Array.from({ length: 12 }, (_, i) => `${i}.`).join(''), complete: true }, 'the stream in flight was cut');
    } finally {
      await fetch(`${agent.httpUrl}/v1/kv/${key}`, { method: 'DELETE' });
      await fetch(`${agent.httpUrl}/v1/agent/service/deregister/ticker-1`, { method: 'PUT' });
      ticker.closeAllConnections();
      ticker.close();
    }
  });

  it('with --workers 2, every worker watches the key: a write reaches both, and status.json shows it once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-routes-'));
    const file = join(dir, 'gateway.json');
    writeFileSync(file, JSON.stringify({ discovery: { enabled: false }, serviceName: 'gw-workers', routes: [{ path: '/app/**', service: 'blue' }], routesSource: { consulKey: 'proxyless/gateway/workers-routes' } }));
    const child = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', 'packages/gateway/src/cli.ts', '--config', file, '--workers', '2'], {
      env: { ...process.env, CONSUL_HTTP_ADDR: agent.httpAddr, PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = once(child, 'exit');
    try {
      const url = await eventually('the gateway to listen', () => /listening on (http:\/\/\S+)/.exec(output)?.[1], 30_000);
      // A connection per request: the kernel spreads them over both workers.
      const bodies = async (n: number): Promise<Set<string>> => new Set(await Promise.all(Array.from({ length: n }, async () => (await get(`${url}/app/x`)).body)));
      assert.deepEqual([...(await bodies(20))], ['blue']);
      const res = await fetch(`${agent.httpUrl}/v1/kv/proxyless/gateway/workers-routes`, { method: 'PUT', body: JSON.stringify([{ path: '/app/**', service: 'green' }]) });
      assert.equal(await res.text(), 'true');
      await eventually('both workers on the new route', async () => {
        const seen = await bodies(20);
        return seen.size === 1 && seen.has('green');
      });
      const doc = JSON.parse((await get(`${url}/_proxyless/status.json`)).body) as GatewayStatus;
      assert.equal(doc.workers?.length, 2);
      assert.equal(doc.routesSource?.active, 'key', JSON.stringify(doc.routesSource));
      assert.equal(doc.routesSource?.lastError, null);
      assert.match(output, /routes: consul key proxyless\/gateway\/workers-routes revision \d+: 1 route in use/);
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, output);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('@proxyless/gateway routes hot-reloaded from etcd (real etcd, real backends, load loop)', function () {
  this.timeout(120_000);
  let etcd: EtcdServer & { close(): Promise<void> };
  let admin: EtcdClient;
  let gateway: Gateway;
  let base: string;
  const backends: Awaited<ReturnType<typeof startNamed>>[] = [];
  const key = '/proxyless/gateway/routes';

  before(async () => {
    etcd = await startEtcd();
    admin = new EtcdClient({ endpoints: etcd.clientUrl }, {});
    for (const name of ['blue', 'green']) {
      const b = await startNamed(name);
      backends.push(b);
      await admin.put(`/proxyless/services/${name}/${name}-1`, JSON.stringify({ address: '127.0.0.1', port: b.port }));
    }
    // A sibling key under the same prefix must not count as the routes key.
    await admin.put(`${key}-draft`, 'not routes');
    gateway = createGateway({
      registry: 'etcd',
      etcdEndpoints: [etcd.clientUrl],
      port: 0,
      discovery: { enabled: false },
      routes: [{ path: '/app/**', service: 'blue' }],
      routesSource: { etcdKey: key },
      log: () => undefined,
    });
    base = await gateway.listen();
  });

  after(async () => {
    await gateway?.close({ graceMs: 500 });
    await Promise.all(backends.map(stopNamed));
    await admin?.close();
    await etcd?.close();
  });

  it('swaps the routes within 100 ms of an etcd put under load with 0 failed requests; bad values keep the routes and are reported; a deleted key brings back the file routes', async () => {
    await hotReload('etcd', base, async (value) => {
      await admin.put(key, value);
    }, async () => {
      await admin.delete(key);
    });
  });
});
