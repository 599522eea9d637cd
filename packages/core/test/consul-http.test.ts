/**
 * ConsulHttpClient's deadlines where undici alone would not keep them: a call
 * still waiting for a connection (nodejs/undici#386).
 */
import assert from 'node:assert/strict';
import { AbortedError, ConsulHttpClient, ConsulUnreachableError, TimeoutError } from '@proxyless/core';
import { startUnansweredListener, type UnansweredListener } from '../../../test/support/unanswered-connect.js';

describe('ConsulHttpClient: a call whose connect never completes', () => {
  const SLACK_MS = 100; // a loaded CI machine; without requestUntilAborted these calls took the 10 s connect timeout
  let listener: UnansweredListener;
  let client: ConsulHttpClient;
  beforeEach(async () => {
    listener = await startUnansweredListener();
    client = new ConsulHttpClient({ address: `127.0.0.1:${listener.port}` }, {});
  });
  afterEach(async () => {
    await client.close();
    await listener.close();
  });

  it('ends at its timeout with a TimeoutError, not at the connect timeout', async () => {
    const t0 = performance.now();
    const error = await client.request({ path: '/v1/agent/self', timeoutMs: 300 }).then(() => undefined, (e: unknown) => e);
    const took = performance.now() - t0;
    console.log(`      [measure] Consul call, connect never completes, 300 ms timeout: failed after ${took.toFixed(1)} ms`);
    assert.ok(error instanceof TimeoutError, `a TimeoutError, not ${String(error)}`);
    assert.ok(took >= 295 && took < 300 + SLACK_MS, `took ${took.toFixed(1)} ms`);
  });

  it('gives up the connect after connectTimeoutMs, on a precise timer (not undici\'s coarse 10 s one)', async () => {
    const quick = new ConsulHttpClient({ address: `127.0.0.1:${listener.port}`, connectTimeoutMs: 300 }, {});
    try {
      const t0 = performance.now();
      const error = await quick.request({ path: '/v1/agent/self', timeoutMs: 5_000 }).then(() => undefined, (e: unknown) => e);
      const took = performance.now() - t0;
      console.log(`      [measure] Consul call, connect never completes, connectTimeoutMs 300: unreachable after ${took.toFixed(1)} ms`);
      assert.ok(error instanceof ConsulUnreachableError, `a ConsulUnreachableError, not ${String(error)}`);
      assert.equal((error.cause as { code?: string }).code, 'UND_ERR_CONNECT_TIMEOUT');
      // undici's own timer wheel took 0.9 s for a 300 ms connect timeout.
      assert.ok(took >= 295 && took < 300 + 3 * SLACK_MS, `took ${took.toFixed(1)} ms`);
    } finally {
      await quick.close();
    }
  });

  it("ends when the caller's signal aborts, with an AbortedError", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('shutting down')), 100);
    const t0 = performance.now();
    const error = await client.request({ path: '/v1/agent/self', timeoutMs: 5_000, signal: controller.signal }).then(() => undefined, (e: unknown) => e);
    const took = performance.now() - t0;
    assert.ok(error instanceof AbortedError, `an AbortedError, not ${String(error)}`);
    assert.ok(took < 100 + SLACK_MS, `took ${took.toFixed(1)} ms`);
  });
});
