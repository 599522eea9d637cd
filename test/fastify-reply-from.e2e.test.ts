/**
 * The recipe "Proxyless under @fastify/reply-from / @fastify/http-proxy"
 * (packages/gateway/README.md): a real Fastify server whose proxy plugins get
 * the Proxyless undici dispatcher as their `undici` option, over two backends
 * in their own processes registered in a real Consul agent. One backend is
 * SIGKILLed under load: the balancing client underneath retries the GETs it
 * broke on the other instance, so no request fails. (With undici's own
 * `BalancedPool` in the same place, the requests caught by the kill fail with
 * 500s: checked by hand, not asserted, as how many get caught is timing.)
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import Fastify, { type FastifyInstance } from 'fastify';
import replyFrom from '@fastify/reply-from';
import httpProxy from '@fastify/http-proxy';
import { ConsulHttpClient, ConsulResolver } from '@proxyless/core';
import { createDispatcher, type ServiceDispatcher } from '@proxyless/http-client';
import { startConsulAgent, type ConsulAgent } from './support/consul.js';
import { trackChild } from './support/processes.js';

/** A backend in its own process (so it can really be killed): answers with its port and the path it got. */
async function startBackend(): Promise<{ child: ChildProcess; port: number }> {
  const code = `
    const http = require('node:http');
    const server = http.createServer((req, res) => {
      req.resume();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ port: server.address().port, url: req.url }));
    });
    server.keepAliveTimeout = 10000;
    server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  trackChild(child);
  const [line] = await once(child.stdout, 'data');
  return { child, port: Number(String(line).trim()) };
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('recipe: Proxyless under @fastify/reply-from and @fastify/http-proxy', function () {
  this.timeout(90_000);
  let agent: ConsulAgent | undefined;
  let consul: ConsulHttpClient | undefined;
  let resolver: ConsulResolver | undefined;
  let dispatcher: ServiceDispatcher | undefined;
  let app: FastifyInstance | undefined;
  const backends: { child: ChildProcess; port: number }[] = [];

  before(async () => {
    agent = await startConsulAgent();
    consul = new ConsulHttpClient({ address: agent.httpAddr });
  });
  after(async () => {
    await app?.close();
    await dispatcher?.close();
    await resolver?.close();
    await consul?.close();
    for (const b of backends) if (b.child.exitCode === null && b.child.signalCode === null) b.child.kill('SIGKILL');
    await agent?.stop();
  });

  it('routes through both plugins to both instances, and loses no GET when one instance is SIGKILLed under load', async () => {
    for (let i = 0; i < 2; i++) backends.push(await startBackend());
    for (const b of backends) {
      await consul!.request({
        method: 'PUT',
        path: '/v1/agent/service/register',
        body: { ID: `users-${b.port}`, Name: 'users', Address: '127.0.0.1', Port: b.port, Check: { HTTP: `http://127.0.0.1:${b.port}/health`, Interval: '1s', Timeout: '500ms' } },
      });
    }
    resolver = new ConsulResolver({ address: agent!.httpAddr, waitMs: 5_000 });
    dispatcher = createDispatcher({ resolver, client: { timeoutMs: 5_000 } });
    const d = dispatcher;
    await until('two passing instances from Consul', () => d.client('users').stats().endpoints.length === 2, 30_000);

    // The recipe: the dispatcher is the plugins' `undici` option; the service's origin is their base/upstream.
    const server = Fastify();
    await server.register(replyFrom, { base: 'http://users.service.consul', undici: d });
    server.get('/api/*', (request, reply) => reply.from(request.url.slice('/api'.length)));
    await server.register(httpProxy, { upstream: 'http://users.service.consul', prefix: '/proxy', rewritePrefix: '/v2', undici: d });
    app = server;
    const base = await server.listen({ port: 0, host: '127.0.0.1' });

    const counts = new Map<number, number>();
    const get = async (path: string): Promise<{ port: number; url: string }> => {
      const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      assert.equal(res.status, 200, `${path}: ${String(res.status)} ${text}`);
      const body = JSON.parse(text) as { port: number; url: string };
      counts.set(body.port, (counts.get(body.port) ?? 0) + 1);
      return body;
    };
    assert.equal((await get('/api/users/42?x=1')).url, '/users/42?x=1');
    assert.equal((await get('/proxy/users/7')).url, '/v2/users/7');
    for (let i = 0; i < 40; i++) await get(i % 2 === 0 ? '/api/users/1' : '/proxy/users/1');
    for (const b of backends) assert.ok((counts.get(b.port) ?? 0) > 0, `${String(b.port)} got no traffic: ${JSON.stringify([...counts])}`);

    // SIGKILL one instance (no goodbye) while 8 callers keep going through both plugins.
    const victim = backends[0]!;
    let done = 0;
    let stop = false;
    const errors: unknown[] = [];
    const worker = async (n: number): Promise<void> => {
      for (let i = 0; i < 2_000 && !stop; i++) {
        try {
          await get(n % 2 === 0 ? '/api/users/1' : '/proxy/users/1');
          done++;
        } catch (error) {
          errors.push(error);
        }
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, (_, n) => worker(n)));
    await until('load running', () => done > 100, 15_000);
    victim.child.kill('SIGKILL');
    await once(victim.child, 'exit');
    const killedAt = done;
    // Consul's check marks it critical and the resolver drops it; until then, the client's retries cover.
    await until('the killed instance leaves the snapshot', () => d.client('users').stats().endpoints.length === 1, 30_000);
    await until('load after the kill', () => done > killedAt + 200, 20_000);
    stop = true;
    await load;
    assert.deepEqual(errors.map(String), []);
    assert.ok(done > killedAt + 200);
  });
});
