import assert from 'node:assert/strict';
import { startConsulAgent, freePort, type ConsulAgent } from '../../../test/support/consul.js';
import { ConsulApiError, ConsulUnreachableError, TimeoutError } from '@proxyless/core';
import { Registrar, consulRegistry, ShutdownCoordinator, type RegistrarOptions } from '../src/index.js';
import { startFaultProxy, type FaultProxy } from '../../../test/support/fault-proxy.js';
import { checkStatus, passingIds, waitFor } from './helpers.js';

/** Collects events of a registrar in order. */
function record(registrar: Registrar): { events: string[]; errors: Error[] } {
  const events: string[] = [];
  const errors: Error[] = [];
  registrar.on('lost', (reason) => events.push(`lost:${reason}`));
  registrar.on('reregistered', () => events.push('reregistered'));
  registrar.on('registered', () => events.push('registered'));
  registrar.on('error', (error) => errors.push(error));
  return { events, errors };
}

describe('Registrar with agent faults (fault proxy in front of the real agent)', function () {
  this.timeout(60_000);
  let agent: ConsulAgent;
  let proxy: FaultProxy;
  const registrars: Registrar[] = [];
  let n = 0;

  before(async function () {
    agent = await startConsulAgent();
  });
  after(async function () {
    await agent?.stop();
  });
  beforeEach(async function () {
    proxy = await startFaultProxy(agent.httpAddr);
  });
  afterEach(async function () {
    proxy.setFault({ kind: 'pass' });
    await Promise.all(registrars.splice(0).map((r) => r.close({ timeoutMs: 2000 })));
    await proxy.close();
  });

  const make = (options: Partial<RegistrarOptions> = {}): Registrar => {
    n++;
    const registrar = new Registrar({
      name: `fault-${n}`,
      port: 21_000 + n,
      address: '127.0.0.1',
      ttlMs: 3000,
      requestTimeoutMs: 500,
      retry: { initialMs: 50, maxMs: 200 },
      registry: consulRegistry({ address: proxy.addr }),
      ...options,
    });
    registrars.push(registrar);
    return registrar;
  };

  it('sends CheckID, TTL, DeregisterCriticalServiceAfter and a passing status, then a first heartbeat at once', async function () {
    const registrar = make({ registry: consulRegistry({ address: proxy.addr, deregisterCriticalServiceAfterMs: 90_000 }) });
    await registrar.start();
    const register = proxy.requests.find((r) => r.url.startsWith('/v1/agent/service/register'));
    assert.ok(register);
    const body = JSON.parse(register.body);
    assert.equal(body.ID, registrar.options.id);
    assert.equal(body.Check.CheckID, registrar.registration.registrationId);
    assert.equal(body.Check.TTL, '3s');
    assert.equal(body.Check.Status, 'passing');
    assert.equal(body.Check.DeregisterCriticalServiceAfter, '90s');
    const index = proxy.requests.indexOf(register);
    assert.match(proxy.requests[index + 1]?.url ?? '', /^\/v1\/agent\/check\/update\//);
    assert.equal(await checkStatus(agent.httpUrl, registrar.registration.registrationId), 'passing');
  });

  it('sends the token only in X-Consul-Token, never in a URL or an error message', async function () {
    const token = 'secret-token-d41d8cd9';
    const registrar = make({ registry: consulRegistry({ address: proxy.addr, token }) });
    const { errors } = record(registrar);
    await registrar.start();
    proxy.setFault({ kind: 'status', status: 403, body: 'Permission denied' }, '/check/update/');
    await waitFor('a 403 error', () => errors.length > 0);
    for (const r of proxy.requests) {
      assert.ok(!r.url.includes(token), r.url);
      assert.equal(r.headers['x-consul-token'], token);
    }
    for (const e of errors) assert.ok(!e.message.includes(token) && !String(e.stack).includes(token));
  });

  it('a hung agent call times out, counts as unreachable, and the registrar recovers when the agent answers', async function () {
    const registrar = make();
    const { events, errors } = record(registrar);
    await registrar.start();
    proxy.setFault({ kind: 'hang' }, '/check/update/');
    await waitFor('lost:unreachable', () => events.includes('lost:unreachable'), { timeoutMs: 5000 });
    assert.ok(errors.some((e) => e instanceof TimeoutError && e.timeoutMs === 500), errors.map(String).join('\n'));
    assert.equal(registrar.state, 'lost');
    proxy.setFault({ kind: 'pass' });
    await waitFor('reregistered', () => events.includes('reregistered'), { timeoutMs: 5000 });
    assert.equal(registrar.state, 'registered');
    assert.deepEqual(await passingIds(agent.httpUrl, registrar.options.name), [registrar.options.id]);
  });

  it('re-registers on a 500 "does not have associated TTL" (older agents)', async function () {
    const registrar = make();
    const { events } = record(registrar);
    await registrar.start();
    const registers = (): number => proxy.requests.filter((r) => r.url.startsWith('/v1/agent/service/register')).length;
    assert.equal(registers(), 1);
    proxy.setFault(
      { kind: 'status', status: 500, body: `CheckID "${registrar.registration.registrationId}" does not have associated TTL` },
      '/check/update/',
    );
    await waitFor('lost:forgotten', () => events.includes('lost:forgotten'), { timeoutMs: 5000 });
    proxy.setFault({ kind: 'pass' });
    await waitFor('reregistered', () => events.includes('reregistered'), { timeoutMs: 5000 });
    assert.ok(registers() >= 2);
  });

  it('reports a 429 heartbeat as a typed error and keeps beating on schedule', async function () {
    const registrar = make();
    const { events, errors } = record(registrar);
    let beats = 0;
    registrar.on('heartbeat', () => beats++);
    await registrar.start();
    proxy.setFault({ kind: 'status', status: 429, body: 'rate limited' }, '/check/update/');
    await waitFor('a 429 error', () => errors.some((e) => e instanceof ConsulApiError && e.status === 429), { timeoutMs: 5000 });
    assert.equal(registrar.state, 'registered');
    assert.equal(registrar.lastError instanceof ConsulApiError, true);
    const before = beats;
    proxy.setFault({ kind: 'pass' });
    await waitFor('heartbeats again', () => beats > before, { timeoutMs: 5000 });
    assert.ok(!events.some((e) => e.startsWith('lost')), events.join(','));
  });

  it('start() rejects at once on 403 (ACL denied) and on 400, with Consul\'s message', async function () {
    const denied = make();
    proxy.setFault({ kind: 'status', status: 403, body: 'Permission denied: token lacks service:write' }, '/service/register');
    await assert.rejects(denied.start(), (e: unknown) => e instanceof ConsulApiError && e.status === 403 && /service:write/.test(e.message));
    assert.equal(proxy.requests.filter((r) => r.url.startsWith('/v1/agent/service/register')).length, 1);
    assert.equal(denied.state, 'idle');
    const bad = make();
    proxy.setFault({ kind: 'status', status: 400, body: 'Invalid service address' }, '/service/register');
    await assert.rejects(bad.start(), (e: unknown) => e instanceof ConsulApiError && e.status === 400 && e.consulMessage === 'Invalid service address');
  });

  it('start() retries 5xx and dropped connections until the agent accepts', async function () {
    const registrar = make();
    const { errors } = record(registrar);
    proxy.setFault({ kind: 'status', status: 503, body: 'No cluster leader' }, '/service/register');
    const started = registrar.start();
    await waitFor('two 503s', () => errors.filter((e) => e instanceof ConsulApiError && e.status === 503).length >= 2);
    proxy.setFault({ kind: 'drop' }, '/service/register');
    await waitFor('a dropped connection', () => errors.some((e) => e instanceof ConsulUnreachableError));
    proxy.setFault({ kind: 'pass' });
    await started;
    assert.equal(registrar.state, 'registered');
  });

  it('start() with timeoutMs gives up with a TimeoutError when the agent refuses connections', async function () {
    const port = await freePort();
    const registrar = make({ registry: consulRegistry({ address: `127.0.0.1:${port}` }) });
    const { errors } = record(registrar);
    const t0 = Date.now();
    await assert.rejects(registrar.start({ timeoutMs: 1000 }), TimeoutError);
    assert.ok(Date.now() - t0 < 3000);
    assert.ok(errors.filter((e) => e instanceof ConsulUnreachableError).length >= 2, 'retried with backoff');
  });

  it('keeps retrying while the agent is unreachable and re-registers when it is back', async function () {
    const registrar = make();
    const { events, errors } = record(registrar);
    await registrar.start();
    proxy.setFault({ kind: 'drop' });
    await waitFor('lost:unreachable', () => events.includes('lost:unreachable'), { timeoutMs: 5000 });
    const failuresAt = errors.length;
    await waitFor('several retries', () => errors.length >= failuresAt + 3, { timeoutMs: 5000 });
    proxy.setFault({ kind: 'pass' });
    await waitFor('reregistered', () => events.includes('reregistered'), { timeoutMs: 5000 });
    assert.deepEqual(await passingIds(agent.httpUrl, registrar.options.name), [registrar.options.id]);
  });

  it('a shutdown while start() is still in flight deregisters what the agent already has', async function () {
    // The register PUT goes through; the first heartbeat hangs, so start() is
    // still 'registering' when the signal comes.
    proxy.setFault({ kind: 'hang' }, '/v1/agent/check/update/');
    const registrar = make();
    void registrar.start().catch(() => undefined);
    await waitFor('the agent to hold the registration', async () => {
      const r = await fetch(`${agent.httpUrl}/v1/agent/services`);
      const services = (await r.json()) as Record<string, unknown>;
      return services[registrar.options.id] !== undefined;
    }, { timeoutMs: 10_000 });
    assert.equal(registrar.state, 'registering');
    proxy.setFault({ kind: 'pass' });
    const coordinator = new ShutdownCoordinator({ registrars: [registrar], exit: false, propagationTimeoutMs: 500, drainDelayMs: 1, deadlineMs: 5000, log: () => undefined });
    assert.equal(await coordinator.shutdown('test'), 0);
    const r = await fetch(`${agent.httpUrl}/v1/agent/services`);
    const services = (await r.json()) as Record<string, unknown>;
    assert.equal(services[registrar.options.id], undefined, 'registration left behind');
  });

  it('a stop() while a register PUT is on the wire waits for it, so the deregistration lands last', async function () {
    // The register PUT reaches the agent 600 ms late, whether or not the registrar still waits for it.
    proxy.setFault({ kind: 'delay', ms: 600 }, '/v1/agent/service/register');
    const registrar = make({ requestTimeoutMs: 2000 });
    void registrar.start().catch(() => undefined);
    await waitFor('the register PUT on the wire', () => proxy.requests.some((r) => r.url.startsWith('/v1/agent/service/register')), { timeoutMs: 10_000 });
    assert.equal(registrar.state, 'registering');
    await registrar.stop({ timeoutMs: 5000 });
    proxy.setFault({ kind: 'pass' });
    await new Promise((r) => setTimeout(r, 800)); // past the delayed PUT, had it been left on the wire
    const services = (await (await fetch(`${agent.httpUrl}/v1/agent/services`)).json()) as Record<string, unknown>;
    assert.equal(services[registrar.options.id], undefined, 'registration left behind');
  });

  it('after close() calls reject with ERR_CLOSED, and close() is idempotent', async function () {
    const registrar = make();
    await registrar.start();
    await registrar.close();
    assert.equal(registrar.state, 'closed');
    await assert.rejects(registrar.start(), { code: 'ERR_CLOSED' });
    await assert.rejects(registrar.setStatus('warning'), { code: 'ERR_CLOSED' });
    await registrar.close(); // idempotent
  });
});
