/**
 * Why the product has its own Consul client instead of the `consul` package
 * (README, "Dependencies and why"): the differences, side by side against a
 * real agent. Each test shows what ConsulHttpClient does and what `consul`
 * (v2) does with the same request.
 */
import assert from 'node:assert/strict';
import Consul from 'consul';
import { ConsulHttpClient, isProxylessError } from '@proxyless/core';
import { startConsulAgent, type ConsulAgent } from '../../../test/support/consul.js';

describe('ConsulHttpClient next to the consul package (a real agent)', function () {
  this.timeout(60_000);
  let agent: ConsulAgent;
  let ours: ConsulHttpClient;
  let theirs: Consul;

  before(async function () {
    agent = await startConsulAgent();
    ours = new ConsulHttpClient({ address: agent.httpAddr }, {});
    theirs = new Consul({ host: '127.0.0.1', port: agent.ports.http });
  });
  after(async function () {
    await ours?.close();
    theirs?.destroy();
    await agent?.stop();
  });

  it('an AbortSignal ends a blocking query at once here; consul ignores it and waits out the query', async () => {
    // An index far above the agent's: the query blocks for its whole wait, whatever else changes on the agent.
    const index = '1000000000000';

    const mine = new AbortController();
    const t0 = Date.now();
    const ourCall = ours.request({ path: '/v1/health/service/abort-probe', query: { index, wait: '3s' }, signal: mine.signal });
    setTimeout(() => mine.abort(), 100);
    await assert.rejects(ourCall, (e: unknown) => isProxylessError(e, 'ERR_ABORTED'));
    const ourMs = Date.now() - t0;

    const theirsAbort = new AbortController();
    const t1 = Date.now();
    // `signal` is not an option of consul v2 (it cancels through an EventEmitter ctx); passed anyway, as a user would try.
    const theirCall = theirs.health.service({ service: 'abort-probe', index, wait: '3s', signal: theirsAbort.signal } as never);
    setTimeout(() => theirsAbort.abort(), 100);
    await theirCall;
    const theirMs = Date.now() - t1;

    assert.ok(ourMs < 1000, `ours ended ${ourMs} ms after the start`);
    assert.ok(theirMs >= 2500, `consul's call ended after ${theirMs} ms; it would have to ignore the signal to take ~3 s`);
    console.log(`      [measure] blocking query aborted at 100 ms: ConsulHttpClient settles at ${ourMs} ms, consul at ${theirMs} ms`);
  });

  it('a response larger than maxResponseBytes is refused here; consul buffers it whole', async () => {
    const value = 'x'.repeat(10_000);
    for (let i = 0; i < 30; i++) {
      await ours.request({ method: 'PUT', path: `/v1/kv/size-probe/${String(i)}`, body: value });
    }
    const capped = new ConsulHttpClient({ address: agent.httpAddr, maxResponseBytes: 100_000 }, {});
    try {
      await assert.rejects(capped.request({ path: '/v1/kv/size-probe', query: { recurse: true } }), (e: unknown) =>
        isProxylessError(e, 'ERR_BAD_RESPONSE') && /exceeds 100000 bytes/.test(e.message));
    } finally {
      await capped.close();
    }
    const all = (await theirs.kv.get({ key: 'size-probe', recurse: true })) as unknown as unknown[];
    assert.equal(all.length, 30, 'consul returned all ~400 KB: it has no size limit to set');
  });

  it('Consul\'s environment variables pick the agent here; consul ignores them and goes to 127.0.0.1:8500', async () => {
    const env = { CONSUL_HTTP_ADDR: agent.httpAddr };
    const fromEnv = new ConsulHttpClient({}, env);
    try {
      assert.equal(fromEnv.connection.origin, agent.httpUrl);
      const leader = await fromEnv.request({ path: '/v1/status/leader' });
      assert.equal(typeof leader.body, 'string');
    } finally {
      await fromEnv.close();
    }

    const saved = process.env['CONSUL_HTTP_ADDR'];
    process.env['CONSUL_HTTP_ADDR'] = agent.httpAddr;
    const name = `env-probe-${String(process.pid)}`;
    const defaulted = new Consul();
    try {
      // Wherever it went (nothing, or some other agent on 8500), it did not reach the agent the environment names.
      await defaulted.agent.service.register({ name, port: 1, timeout: 2000 } as never).catch(() => undefined);
    } finally {
      defaulted.destroy();
      if (saved === undefined) delete process.env['CONSUL_HTTP_ADDR'];
      else process.env['CONSUL_HTTP_ADDR'] = saved;
    }
    const services = (await ours.request({ path: '/v1/agent/services' })).body as Record<string, { Service: string }>;
    assert.ok(!Object.values(services).some((s) => s.Service === name), 'consul reached the agent named by CONSUL_HTTP_ADDR');
  });
});
