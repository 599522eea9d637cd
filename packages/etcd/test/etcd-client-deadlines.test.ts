/**
 * EtcdClient's deadlines where undici alone would not keep them: a call or a
 * watch still waiting for a connection (nodejs/undici#386).
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { TimeoutError } from '@proxyless/core';
import { EtcdClient } from '@proxyless/etcd';
import { startEtcd, type EtcdServer } from '../../../test/support/etcd.js';
import { startUnansweredListener, type UnansweredListener } from '../../../test/support/unanswered-connect.js';

/** Allowance for a loaded CI machine; without our own timers these took undici's 10 s connect timeout, or 0.9 s for 300 ms. */
const SLACK_MS = 100;

describe('EtcdClient: an endpoint whose connect never completes', () => {
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

describe('EtcdClient: fail-over from a member that went away or hangs, to a live one', function () {
  this.timeout(60_000);
  let etcd: EtcdServer & { close(): Promise<void> };
  let client: EtcdClient | undefined;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd.close();
  });
  afterEach(async () => {
    await client?.close();
    client = undefined;
  });

  it('a call moves on from a member whose connect never completes after connectTimeoutMs, within its deadline; the next call goes to the live member', async () => {
    const gone = await startUnansweredListener();
    try {
      client = new EtcdClient({ endpoints: [`http://127.0.0.1:${gone.port}`, etcd.clientUrl], connectTimeoutMs: 300, timeoutMs: 3_000 }, {});
      const t0 = performance.now();
      await client.range('/failover/a', { serializable: true });
      const first = performance.now() - t0;
      console.log(`      [measure] first endpoint never completes a connect: the call was answered by the next after ${first.toFixed(1)} ms (connectTimeoutMs 300)`);
      // The connect timeout is our own precise timer: undici's own (its coarse timer wheel) took 0.9 s here.
      assert.ok(first >= 295 && first < 300 + SLACK_MS, `first call took ${first.toFixed(1)} ms`);
      assert.equal(client.endpoint, etcd.clientUrl, 'the next call goes to the live member');
      await client.put('/failover/a', 'x');
      const { kvs } = await client.range('/failover/a');
      assert.equal(kvs[0]?.value.toString(), 'x');
    } finally {
      await gone.close();
    }
  });

  it('after a call timed out on a member that accepts and never answers, the next call goes to another member', async () => {
    const sockets = new Set<Socket>();
    const hung: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.resume();
    });
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    try {
      client = new EtcdClient({ endpoints: [`http://127.0.0.1:${(hung.address() as AddressInfo).port}`, etcd.clientUrl], timeoutMs: 400 }, {});
      await assert.rejects(client.range('/failover/a'), TimeoutError);
      assert.equal(client.endpoint, etcd.clientUrl, 'the next call goes to the other member');
      await client.range('/failover/a');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => hung.close(r));
    }
  });
});
