/**
 * EtcdClient's deadlines where undici alone would not keep them: a call or a
 * watch still waiting for a connection (nodejs/undici#386).
 */
import assert from 'node:assert/strict';
import { TimeoutError } from '@proxyless/core';
import { EtcdClient } from '@proxyless/etcd';
import { startUnansweredListener, type UnansweredListener } from '../../../test/support/unanswered-connect.js';

describe('EtcdClient: a member whose connect never completes', () => {
  const SLACK_MS = 100; // a loaded CI machine; without requestUntilAborted these took the 10 s connect timeout
  let listener: UnansweredListener;
  let client: EtcdClient;
  beforeEach(async () => {
    listener = await startUnansweredListener();
    client = new EtcdClient({ endpoints: [`http://127.0.0.1:${listener.port}`] }, {});
  });
  afterEach(async () => {
    await client.close();
    await listener.close();
  });

  it('a call ends at its timeout with a TimeoutError, not at the connect timeout', async () => {
    const t0 = performance.now();
    const error = await client.range('/services/', { prefix: true, timeoutMs: 300 }).then(() => undefined, (e: unknown) => e);
    const took = performance.now() - t0;
    console.log(`      [measure] etcd range, connect never completes, 300 ms timeout: failed after ${took.toFixed(1)} ms`);
    assert.ok(error instanceof TimeoutError, `a TimeoutError, not ${String(error)}`);
    assert.ok(took >= 295 && took < 300 + SLACK_MS, `took ${took.toFixed(1)} ms`);
  });

  it('a watch ends at its connect timeout with a TimeoutError', async () => {
    const controller = new AbortController();
    const t0 = performance.now();
    const error = await (async () => {
      for await (const message of client.watch({ key: '/services/', prefix: true }, { signal: controller.signal, connectTimeoutMs: 300 })) assert.fail(`no message expected, got ${JSON.stringify(message)}`);
    })().then(() => undefined, (e: unknown) => e);
    const took = performance.now() - t0;
    controller.abort();
    console.log(`      [measure] etcd watch, connect never completes, 300 ms connect timeout: failed after ${took.toFixed(1)} ms`);
    assert.ok(error instanceof TimeoutError, `a TimeoutError, not ${String(error)}`);
    assert.ok(took >= 295 && took < 300 + SLACK_MS, `took ${took.toFixed(1)} ms`);
  });
});
