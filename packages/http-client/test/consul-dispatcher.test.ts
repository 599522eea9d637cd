import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { getGlobalDispatcher, setGlobalDispatcher, type Dispatcher } from 'undici';
import { ConsulHttpClient, ConsulResolver } from '@proxyless/core';
import { createDispatcher, type ServiceDispatcher } from '@proxyless/http-client';
import { startConsulAgent, type ConsulAgent } from '../../../test/support/consul.js';
import { trackChild } from '../../../test/support/processes.js';
import { until } from './helpers.js';

/** A backend in its own process (so it can really be killed): answers its port. */
async function startBackend(): Promise<{ child: ChildProcess; port: number }> {
  const code = `
    const http = require('node:http');
    const server = http.createServer((req, res) => { req.resume(); res.end(JSON.stringify({ port: server.address().port })); });
    server.keepAliveTimeout = 10000;
    server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  trackChild(child);
  const [line] = await once(child.stdout, 'data');
  return { child, port: Number(String(line).trim()) };
}

describe('http-client dispatcher: the global fetch, balanced over real Consul registrations', function () {
  this.timeout(90_000);
  let agent: ConsulAgent | undefined;
  let consul: ConsulHttpClient | undefined;
  let resolver: ConsulResolver | undefined;
  let dispatcher: ServiceDispatcher | undefined;
  let previous: Dispatcher | undefined;
  const backends: { child: ChildProcess; port: number }[] = [];

  before(async () => {
    agent = await startConsulAgent();
    consul = new ConsulHttpClient({ address: agent.httpAddr });
  });
  after(async () => {
    if (previous) setGlobalDispatcher(previous);
    await dispatcher?.close();
    await resolver?.close();
    await consul?.close();
    for (const b of backends) if (b.child.exitCode === null && b.child.signalCode === null) b.child.kill('SIGKILL');
    await agent?.stop();
  });

  it('after setGlobalDispatcher, plain fetch() reaches three instances balanced and loses no idempotent request when one is killed', async () => {
    for (let i = 0; i < 3; i++) backends.push(await startBackend());
    for (const b of backends) {
      await consul!.request({
        method: 'PUT',
        path: '/v1/agent/service/register',
        body: {
          ID: `users-${b.port}`,
          Name: 'users',
          Address: '127.0.0.1',
          Port: b.port,
          Check: { HTTP: `http://127.0.0.1:${b.port}/health`, Interval: '1s', Timeout: '500ms' },
        },
      });
    }
    resolver = new ConsulResolver({ address: agent!.httpAddr, waitMs: 5_000 });
    dispatcher = createDispatcher({ resolver, client: { timeoutMs: 5_000 } });
    const d = dispatcher;
    await until(() => d.client('users').stats().endpoints.length === 3, 30_000, 'three passing instances from Consul');
    previous = getGlobalDispatcher();
    setGlobalDispatcher(dispatcher);

    const counts = new Map<number, number>();
    const get = async (): Promise<void> => {
      const res = await fetch('http://users.service.consul/users/42');
      assert.equal(res.status, 200);
      const { port } = (await res.json()) as { port: number };
      counts.set(port, (counts.get(port) ?? 0) + 1);
    };
    for (let i = 0; i < 90; i++) await get();
    for (const b of backends) assert.ok((counts.get(b.port) ?? 0) > 0, `${b.port} got no traffic: ${JSON.stringify([...counts])}`);
    // A non-service origin still goes out untouched through the global fetch.
    const direct = await fetch(`http://127.0.0.1:${backends[1]!.port}/direct`);
    assert.deepEqual(await direct.json(), { port: backends[1]!.port });

    // Kill one instance (SIGKILL: no goodbye) while 8 callers keep fetching.
    const victim = backends[0]!;
    let failures = 0;
    let done = 0;
    let stop = false;
    const errors: unknown[] = [];
    const worker = async (): Promise<void> => {
      for (let i = 0; i < 2_000 && !stop; i++) {
        try {
          await get();
          done++;
        } catch (error) {
          failures++;
          errors.push(error);
        }
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));
    await until(() => done > 100, 10_000, 'load running');
    victim.child.kill('SIGKILL');
    await once(victim.child, 'exit');
    const killedAt = done;
    // Consul's HTTP check marks it critical and the resolver drops it; until then, retries cover.
    await until(() => d.client('users').stats().endpoints.length === 2, 30_000, 'the killed instance leaves the snapshot');
    await until(() => done > killedAt + 200, 20_000, 'load after the kill');
    stop = true;
    await load;
    assert.equal(failures, 0, `failed requests: ${errors.map(String).join('; ')}`);
    assert.ok(done > killedAt + 200);
  });
});
