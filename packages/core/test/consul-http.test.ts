/**
 * ConsulHttpClient's deadlines where undici alone would not keep them: a call
 * still waiting for a connection (nodejs/undici#386).
 */
import assert from 'node:assert/strict';
import { AbortedError, ConsulHttpClient, TimeoutError } from '@proxyless/core';
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
