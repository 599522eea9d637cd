import assert from 'node:assert/strict';
import { freePort, startConsulAgent, type ConsulAgent } from '../../../test/support/consul.js';
import { checkStatus, consulGet, fixture, passingIds, spawnNode, startWatchingClient, waitFor, type ReportingChild } from './helpers.js';

describe('a registering service in a child process (real agent, real signals)', function () {
  this.timeout(120_000);
  let agent: ConsulAgent;
  const children: ReportingChild[] = [];

  before(async function () {
    agent = await startConsulAgent();
  });
  after(async function () {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await agent?.stop();
  });

  it('an awaited start({ timeoutMs }) against an unreachable agent keeps the process alive until it rejects with ERR_TIMEOUT', async function () {
    const port = await freePort(); // nothing listens there: every attempt is refused, the retries wait on unref'd timers
    const child = spawnNode(fixture('start-timeout.ts'), [], { CONSUL_HTTP_ADDR: `127.0.0.1:${String(port)}`, START_TIMEOUT_MS: '1500' });
    children.push(child);
    const { code } = await child.exited;
    const ended = child.events.find((e) => e.event === 'rejected' || e.event === 'started');
    assert.equal(code, 0, `exit code ${String(code)} (13: the await was left unsettled); stderr:\n${child.stderr()}`);
    assert.equal(ended?.event, 'rejected', JSON.stringify(child.events));
    assert.equal(ended['code'], 'ERR_TIMEOUT');
    assert.ok((ended['elapsedMs'] as number) >= 1400, `rejected after ${String(ended['elapsedMs'])} ms`);
  });

  it('appears as passing, and goes critical after the TTL when SIGKILLed', async function () {
    const t0 = Date.now();
    const svc = spawnNode(fixture('service.ts'), [], { CONSUL_HTTP_ADDR: agent.httpAddr, SERVICE_NAME: 'killed', TTL_MS: '2000' });
    children.push(svc);
    const listening = await svc.waitEvent('listening');
    await waitFor('passing', async () => (await passingIds(agent.httpUrl, 'killed')).includes(listening.id), { intervalMs: 10 });
    const passingAt = Date.now();
    console.log(`      [measure] spawn → passing: ${passingAt - t0} ms (listening → passing: ${passingAt - listening.t} ms)`);

    svc.child.kill('SIGKILL');
    const killedAt = Date.now();
    await svc.exited;
    // Still passing right after the kill: only the TTL can tell the agent.
    assert.equal(await checkStatus(agent.httpUrl, listening.registrationId), 'passing');
    await waitFor('critical', async () => (await checkStatus(agent.httpUrl, listening.registrationId)) === 'critical', {
      timeoutMs: 15_000,
      intervalMs: 20,
    });
    const criticalAfter = Date.now() - killedAt;
    console.log(`      [measure] SIGKILL → critical: ${criticalAfter} ms (TTL 2000 ms, heartbeat every ~667 ms)`);
    // The last beat was at most one interval (+jitter) before the kill.
    assert.ok(criticalAfter >= 2000 - 800, `critical after ${criticalAfter} ms`);
    assert.ok(criticalAfter <= 2000 + 3000, `critical after ${criticalAfter} ms`);
    // The health API follows the agent's check state through its own sync: allow it a moment.
    await waitFor('out of the passing set', async () => (await passingIds(agent.httpUrl, 'killed')).length === 0, { timeoutMs: 5_000, intervalMs: 20 });
    // Nobody deregistered it: the agent's reaper (DeregisterCriticalServiceAfter) will.
    assert.equal((await consulGet(agent.httpUrl, `/v1/agent/service/${listening.id}`)).status, 200);
  });

  it('on SIGTERM leaves the passing set before it stops accepting, serves every request, deregisters, then exits in time', async function () {
    const svc = spawnNode(fixture('service.ts'), [], {
      CONSUL_HTTP_ADDR: agent.httpAddr,
      SERVICE_NAME: 'drained',
      TTL_MS: '3000',
      DRAIN_DELAY_MS: '500',
      DEADLINE_MS: '9000',
    });
    children.push(svc);
    const listening = await svc.waitEvent('listening');
    const client = startWatchingClient(agent.httpUrl, 'drained', 4, 40);
    try {
      await waitFor('client sees the instance', () => client.sees(listening.id), { intervalMs: 10 });
      await waitFor('a stream of requests', () => client.requests.filter((r) => r.status === 200).length >= 40, { timeoutMs: 20_000 });
      // One long request straddles the server close.
      const slow = fetch(`http://127.0.0.1:${listening.port}/?delay=2500`).then(async (r) => ({ status: r.status, body: await r.text(), t: Date.now() }));
      await new Promise((r) => setTimeout(r, 100));
      const sigtermAt = Date.now();
      svc.child.kill('SIGTERM');
      const exit = await svc.exited;
      const slowResult = await slow;
      // Give the client a moment to notice nothing more, then stop it.
      await client.stop();

      const event = (name: string, step?: string) =>
        svc.events.find((e) => e.event === name && (step === undefined || e.step === step));
      const deregistered = event('deregistered');
      const closeServersStarted = event('step', 'deregister'); // closing starts right after this step
      const done = event('done');
      assert.ok(deregistered && closeServersStarted && done, JSON.stringify(svc.events) + svc.stderr());
      const leftAt = client.leftAt(listening.id, sigtermAt);
      assert.ok(leftAt !== undefined, `the client never saw the instance leave: ${JSON.stringify(client.changes)}`);

      // Order: out of the client's passing view → deregistered → server stops accepting → exit.
      assert.ok(leftAt < closeServersStarted.t, `left at +${leftAt - sigtermAt}, server closing at +${closeServersStarted.t - sigtermAt}`);
      assert.ok(deregistered.t <= closeServersStarted.t);
      assert.ok(deregistered.t < exit.t);
      assert.equal((await consulGet(agent.httpUrl, `/v1/agent/service/${listening.id}`)).status, 404);

      // Every request completed; none was refused or cut.
      const failed = client.requests.filter((r) => r.status !== 200);
      assert.deepEqual(failed, [], `failed requests: ${JSON.stringify(failed.slice(0, 5))}`);
      const afterSignal = client.requests.filter((r) => r.start >= sigtermAt);
      assert.ok(afterSignal.every((r) => r.start <= leftAt), 'no request started after the instance left the view');
      assert.equal(slowResult.status, 200);
      assert.ok(slowResult.t > closeServersStarted.t, 'the slow request was in flight while the server closed');

      assert.equal(done.code, 0, svc.stderr());
      assert.equal(exit.code, 0);
      assert.ok(exit.t - sigtermAt < 9000, `exit after ${exit.t - sigtermAt} ms`);
      console.log(
        `      [measure] SIGTERM → out of client view: ${leftAt - sigtermAt} ms, → deregistered: ${deregistered.t - sigtermAt} ms, ` +
          `→ exit: ${exit.t - sigtermAt} ms (drain delay 500 ms, one in-flight request of 2.5 s; ${client.requests.length} requests, 0 failed)`,
      );
    } finally {
      await client.stop();
    }
  });

  it('a second SIGTERM exits at once', async function () {
    const svc = spawnNode(fixture('service.ts'), [], {
      CONSUL_HTTP_ADDR: agent.httpAddr,
      SERVICE_NAME: 'impatient',
      TTL_MS: '3000',
      DRAIN_DELAY_MS: '5000',
    });
    children.push(svc);
    const listening = await svc.waitEvent('listening');
    await waitFor('passing', async () => (await passingIds(agent.httpUrl, 'impatient')).includes(listening.id));
    svc.child.kill('SIGTERM');
    await svc.waitEvent('shutdown');
    const t = Date.now();
    svc.child.kill('SIGTERM');
    const exit = await svc.exited;
    assert.ok(exit.t - t < 2000, `exited ${exit.t - t} ms after the second signal`);
    assert.equal(exit.code, 128 + 15);
  });

  it('deregisters and exits non-zero on an uncaught exception', async function () {
    const svc = spawnNode(fixture('service.ts'), [], {
      CONSUL_HTTP_ADDR: agent.httpAddr,
      SERVICE_NAME: 'crashing',
      TTL_MS: '3000',
      THROW_AFTER_REGISTER: '1',
    });
    children.push(svc);
    const registered = await svc.waitEvent('registered');
    const exit = await svc.exited;
    assert.equal(exit.code, 1, svc.stderr());
    const deregistered = svc.events.find((e) => e.event === 'deregistered');
    assert.ok(deregistered && deregistered.t <= exit.t, JSON.stringify(svc.events));
    assert.equal((await consulGet(agent.httpUrl, `/v1/agent/service/${registered.id}`)).status, 404);
  });
});
