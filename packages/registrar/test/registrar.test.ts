import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { freePort, startConsulAgent, type ConsulAgent } from '../../../test/support/consul.js';
import { startTcpProxy } from '../../../test/support/tcp-proxy.js';
import { ConsulApiError, isProxylessError } from '@proxyless/core';
import { Registrar, consulRegistry, type RegistrarState, type RegistrationInfo } from '../src/index.js';
import { checkStatus, consulGet, passingIds, waitFor } from './helpers.js';

describe('Registrar against a real Consul agent', function () {
  this.timeout(90_000);
  let agent: ConsulAgent;
  const registrars: Registrar[] = [];
  let n = 0;

  before(async function () {
    agent = await startConsulAgent();
  });
  after(async function () {
    await agent?.stop();
  });
  afterEach(async function () {
    await Promise.all(registrars.splice(0).map((r) => r.close()));
  });

  const make = (options: Partial<ConstructorParameters<typeof Registrar>[0]> = {}): Registrar => {
    n++;
    const registrar = new Registrar({
      name: `reg-${n}`,
      port: 20_000 + n,
      address: '127.0.0.1',
      ttlMs: 3000,
      registry: consulRegistry({ address: agent.httpAddr }),
      ...options,
    });
    registrars.push(registrar);
    return registrar;
  };

  it('registers as passing with its address, tags, meta, weights and an explicit TTL check ID', async function () {
    const registrar = make({ meta: { version: '1.2.3' }, tags: ['a', 'b'], weights: { passing: 3, warning: 1 } });
    const states: RegistrarState[] = [];
    registrar.on('stateChange', (s) => states.push(s));
    const t0 = Date.now();
    await registrar.start();
    assert.equal(registrar.state, 'registered');
    assert.deepEqual(await passingIds(agent.httpUrl, registrar.options.name), [registrar.options.id]);
    console.log(`      [measure] in-process start() → passing: ${Date.now() - t0} ms`);
    const { body: service } = await consulGet(agent.httpUrl, `/v1/agent/service/${registrar.options.id}`);
    assert.equal(service.Address, '127.0.0.1');
    assert.deepEqual(service.Tags, ['a', 'b']);
    assert.deepEqual(service.Meta, { version: '1.2.3' });
    assert.deepEqual(service.Weights, { Passing: 3, Warning: 1 });
    const { body: checks } = await consulGet(agent.httpUrl, '/v1/agent/checks');
    const check = checks[registrar.registration.registrationId];
    assert.ok(check, `check ${registrar.registration.registrationId} exists`);
    assert.equal(check.Status, 'passing');
    assert.equal(check.ServiceID, registrar.options.id);
    assert.equal(check.Type, 'ttl');
    // The agent does not echo DeregisterCriticalServiceAfter; faults.test.ts asserts it is sent.
    assert.deepEqual(states, ['registering', 'registered']);
  });

  it('heartbeats keep the check passing beyond the TTL', async function () {
    const registrar = make({ ttlMs: 1000 });
    let beats = 0;
    registrar.on('heartbeat', () => beats++);
    await registrar.start();
    const until = Date.now() + 2500;
    while (Date.now() < until) {
      assert.equal(await checkStatus(agent.httpUrl, registrar.registration.registrationId), 'passing');
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(beats >= 5, `expected ≥ 5 beats in 2.5 s at ~333 ms, saw ${beats}`);
  });

  it('reports the health function and setStatus() through the check', async function () {
    let health: 'passing' | 'warning' = 'passing';
    const registrar = make({ health: () => ({ status: health, output: `health says ${health}` }) });
    await registrar.start();
    health = 'warning';
    await waitFor('warning status', async () => (await checkStatus(agent.httpUrl, registrar.registration.registrationId)) === 'warning');
    const { body: checks } = await consulGet(agent.httpUrl, '/v1/agent/checks');
    assert.equal(checks[registrar.registration.registrationId].Output, 'health says warning');
    health = 'passing';
    await registrar.setStatus('critical', 'db down');
    assert.equal(await checkStatus(agent.httpUrl, registrar.registration.registrationId), 'critical');
    await registrar.setStatus('passing');
    assert.equal(await checkStatus(agent.httpUrl, registrar.registration.registrationId), 'passing');
  });

  it('a throwing health function reports critical with its message', async function () {
    const registrar = make({
      health: () => {
        throw new Error('boom');
      },
    });
    await registrar.start();
    const { body: checks } = await consulGet(agent.httpUrl, '/v1/agent/checks');
    assert.equal(checks[registrar.registration.registrationId].Status, 'critical');
    assert.match(checks[registrar.registration.registrationId].Output, /boom/);
  });

  it('maintenance mode takes the instance out of the passing set and back', async function () {
    const registrar = make();
    await registrar.start();
    await registrar.enableMaintenance('upgrading');
    assert.deepEqual(await passingIds(agent.httpUrl, registrar.options.name), []);
    const { body: checks } = await consulGet(agent.httpUrl, '/v1/agent/checks');
    assert.equal(checks[`_service_maintenance:${registrar.options.id}`]?.Notes, 'upgrading');
    await registrar.disableMaintenance();
    assert.deepEqual(await passingIds(agent.httpUrl, registrar.options.name), [registrar.options.id]);
  });

  it('registers in the Consul agent of CONSUL_HTTP_ADDR when no registry is given (consulRegistry() is the default)', async function () {
    const saved = process.env['CONSUL_HTTP_ADDR'];
    process.env['CONSUL_HTTP_ADDR'] = agent.httpAddr;
    let registrar: Registrar;
    try {
      n++;
      registrar = new Registrar({ name: `reg-${n}`, port: 20_000 + n, address: '127.0.0.1', ttlMs: 3000 });
      registrars.push(registrar);
    } finally {
      if (saved === undefined) delete process.env['CONSUL_HTTP_ADDR'];
      else process.env['CONSUL_HTTP_ADDR'] = saved;
    }
    const registered = new Promise<RegistrationInfo>((resolve) => registrar.once('registered', resolve));
    await registrar.start({ timeoutMs: 10_000 });
    const info = await registered;
    assert.equal(info.registry, 'consul');
    assert.equal(info.registrationId, `service:${registrar.options.id}`);
    assert.deepEqual(await passingIds(agent.httpUrl, registrar.options.name), [registrar.options.id]);
    const { body: checks } = await consulGet(agent.httpUrl, '/v1/agent/checks');
    assert.equal(checks[info.registrationId]?.ServiceID, registrar.options.id);
    assert.equal(checks[info.registrationId]?.Name, `${registrar.options.name} TTL heartbeat`);
  });

  it('drain() fails the check and waitUntilOutOfRotation() sees it leave the passing set', async function () {
    const registrar = make();
    await registrar.start();
    await registrar.drain();
    assert.equal(await checkStatus(agent.httpUrl, registrar.registration.registrationId), 'critical');
    assert.equal(await registrar.waitUntilOutOfRotation({ timeoutMs: 5000 }), true);
  });

  it('waitUntilOutOfRotation() answers false while the instance stays passing', async function () {
    const registrar = make();
    await registrar.start();
    const t0 = Date.now();
    assert.equal(await registrar.waitUntilOutOfRotation({ timeoutMs: 700 }), false);
    assert.ok(Date.now() - t0 >= 650);
  });

  it('stop() deregisters, and a second deregistration (404) counts as done', async function () {
    const registrar = make();
    await registrar.start();
    const deregistered = new Promise((resolve) => registrar.once('deregistered', resolve));
    await registrar.stop();
    await deregistered;
    assert.equal(registrar.state, 'deregistered');
    assert.equal((await consulGet(agent.httpUrl, `/v1/agent/service/${registrar.options.id}`)).status, 404);
    // Register again and remove it behind the registrar's back: stop() still succeeds.
    await registrar.start();
    await fetch(`${agent.httpUrl}/v1/agent/service/deregister/${registrar.options.id}`, { method: 'PUT' });
    await registrar.stop();
    assert.equal(registrar.state, 'deregistered');
  });

  it('re-registers at once when the agent forgets the check', async function () {
    const registrar = make({ ttlMs: 3000 });
    await registrar.start();
    // events.once() would reject on the 'error' event that precedes 'lost'.
    const lost = new Promise<[string, Error]>((resolve) => registrar.once('lost', (...args) => resolve(args)));
    const back = new Promise((resolve) => registrar.once('reregistered', resolve));
    await fetch(`${agent.httpUrl}/v1/agent/service/deregister/${registrar.options.id}`, { method: 'PUT' });
    const t0 = Date.now();
    const [reason, error] = await lost;
    assert.equal(reason, 'forgotten');
    assert.ok(error instanceof ConsulApiError && error.status === 404);
    await back;
    assert.ok(Date.now() - t0 < 3000);
    assert.deepEqual(await passingIds(agent.httpUrl, registrar.options.name), [registrar.options.id]);
  });

  it('comes back passing within one heartbeat interval after the dev agent restarts', async function () {
    const lines: string[] = [];
    const logger = { warn: (m: string) => lines.push(`warn ${m}`), info: (m: string) => lines.push(`info ${m}`) };
    const registrar = make({ ttlMs: 3000, logger }); // heartbeat every 1 s; backoff capped at 1 s
    await registrar.start();
    assert.deepEqual(lines, [], 'nothing to say while all is well');
    const events: string[] = [];
    registrar.on('lost', (reason) => events.push(`lost:${reason}`));
    registrar.on('reregistered', () => events.push('reregistered'));
    await agent.restart();
    const back = Date.now();
    await waitFor('passing again after restart', async () =>
      (await passingIds(agent.httpUrl, registrar.options.name)).includes(registrar.options.id),
    { timeoutMs: 15_000, intervalMs: 20 });
    const elapsed = Date.now() - back;
    console.log(`      [measure] agent back → registered and passing: ${elapsed} ms (heartbeat interval ${registrar.options.heartbeatIntervalMs} ms)`);
    // One interval, plus slack for a loaded 2-core machine.
    assert.ok(elapsed <= registrar.options.heartbeatIntervalMs + 1500, `took ${elapsed} ms`);
    // The agent shows the check passing as soon as the update lands; the registrar hears the answer just after.
    await waitFor('the reregistered event', async () => events.includes('reregistered'), { timeoutMs: 2_000, intervalMs: 10 });
    assert.equal(registrar.state, 'registered');
    // One warning per outage, one line when it is over: never a line per retry.
    assert.ok(lines.length >= 2, lines.join('\n'));
    lines.forEach((line, i) => assert.match(line, new RegExp(`^${i % 2 === 0 ? 'warn' : 'info'} proxyless registrar ${registrar.options.id}: `), lines.join('\n')));
    assert.match(lines.at(-1)!, /answers again: registered .* again$/);
  });

  describe('when the agent cannot be reached', () => {
    const nowhere = async (): Promise<string> => `127.0.0.1:${await freePort()}`; // nothing listens there

    it('recovery never blocks shutdown: drain() and stop() return within their call deadlines while re-registration retries', async function () {
      const proxy = await startTcpProxy(agent.ports.http);
      try {
        const registrar = make({ registry: consulRegistry({ address: `127.0.0.1:${proxy.port}` }), ttlMs: 3000, requestTimeoutMs: 500, logger: false });
        registrar.on('error', () => undefined);
        await registrar.start();
        const lost = new Promise((resolve) => registrar.once('lost', resolve));
        proxy.cut();
        await lost;
        assert.equal(registrar.state, 'lost');
        const t0 = Date.now();
        await registrar.drain();
        const drained = Date.now() - t0;
        const t1 = Date.now();
        await registrar.stop({ timeoutMs: 1000 }).catch(() => undefined);
        const stopped = Date.now() - t1;
        console.log(`      [measure] agent unreachable, re-registration retrying: drain() ${drained} ms, stop() ${stopped} ms (call deadline 500 ms)`);
        assert.ok(drained <= 500 + 1000, `drain() took ${drained} ms`);
        assert.ok(stopped <= 1000 + 1000, `stop() took ${stopped} ms`);
      } finally {
        await proxy.close();
      }
    });

    it('start({ timeoutMs }) logs one line naming the address and CONSUL_HTTP_ADDR, then rejects with it', async function () {
      const address = await nowhere();
      const lines: string[] = [];
      const registrar = make({
        registry: consulRegistry({ address }),
        retry: { initialMs: 20, maxMs: 100 },
        logger: { warn: (m) => lines.push(m), info: (m) => lines.push(`info ${m}`) },
      });
      let attempts = 0;
      registrar.on('error', () => attempts++);
      const t0 = Date.now();
      const failure = await registrar.start({ timeoutMs: 1500 }).then(() => undefined, (e: unknown) => e);
      const elapsed = Date.now() - t0;
      assert.ok(isProxylessError(failure, 'ERR_TIMEOUT'), String(failure));
      assert.ok(elapsed >= 1400 && elapsed < 5000, `rejected after ${elapsed} ms`);
      const escaped = address.replace(/\./g, '\\.');
      assert.match(failure.message, new RegExp(`^Registrar\\.start timed out after 1500 ms: Consul at http://${escaped} is unreachable: .*ECONNREFUSED.*Set CONSUL_HTTP_ADDR`));
      assert.match(String(failure.stack), /Set CONSUL_HTTP_ADDR/, 'the printed stack carries the hint too');
      assert.ok(attempts > 3, `retried (${attempts} attempts)`);
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0]!, new RegExp(`^proxyless registrar ${registrar.options.id}: Consul at http://${escaped} is unreachable: .*Set CONSUL_HTTP_ADDR .*; retrying for up to 1500 ms$`));
      assert.equal(registrar.state, 'idle');
    });

    it('logs to console.warn by default, and not at all with logger: false', async function () {
      const address = await nowhere();
      const seen: unknown[][] = [];
      const original = console.warn;
      console.warn = (...args: unknown[]) => void seen.push(args);
      try {
        await make({ registry: consulRegistry({ address }) }).start({ timeoutMs: 300 }).catch(() => undefined);
        assert.equal(seen.length, 1);
        assert.match(String(seen[0]![0]), /CONSUL_HTTP_ADDR/);
        seen.length = 0;
        await make({ registry: consulRegistry({ address }), logger: false }).start({ timeoutMs: 300 }).catch(() => undefined);
        assert.deepEqual(seen, []);
      } finally {
        console.warn = original;
      }
    });

    it('refuses a logger without warn and info', function () {
      assert.throws(() => make({ logger: { warn() {} } as never }), (e: unknown) => isProxylessError(e, 'ERR_INVALID_OPTION') && /logger/.test(e.message));
    });

    it('keeps trying without a timeout, and says so once the agent is there', async function () {
      const lines: string[] = [];
      const port = await freePort();
      const registrar = make({
        registry: consulRegistry({ address: `127.0.0.1:${port}` }),
        retry: { initialMs: 20, maxMs: 200 },
        logger: { warn: (m) => lines.push(`warn ${m}`), info: (m) => lines.push(`info ${m}`) },
      });
      const started = registrar.start();
      await waitFor('the warning', () => lines.length > 0, { timeoutMs: 5000 });
      assert.match(lines[0]!, /retrying until it answers \(start\(\{ timeoutMs \}\) gives up instead\)$/);
      // The agent "comes up": a TCP relay on that port to the real one.
      const sockets = new Set<Socket>();
      const relay = createServer((socket) => {
        const upstream = connect(agent.ports.http, '127.0.0.1');
        sockets.add(socket).add(upstream);
        socket.pipe(upstream).pipe(socket);
        const end = (): void => { socket.destroy(); upstream.destroy(); };
        socket.on('error', end);
        upstream.on('error', end);
      });
      relay.listen(port, '127.0.0.1');
      try {
        await started;
        assert.equal(lines.length, 2, lines.join('\n'));
        assert.match(lines[1]!, new RegExp(`^info proxyless registrar ${registrar.options.id}: the Consul agent at http://127\\.0\\.0\\.1:${port} answers again: registered ${registrar.options.id}$`));
        assert.deepEqual(await passingIds(agent.httpUrl, registrar.options.name), [registrar.options.id]);
        await registrar.close();
      } finally {
        relay.close();
        for (const socket of sockets) socket.destroy();
      }
    });
  });
});
