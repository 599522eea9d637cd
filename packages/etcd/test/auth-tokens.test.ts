import assert from 'node:assert/strict';
import type { ServiceSnapshot } from '@proxyless/core';
import { EtcdClient, EtcdResolver } from '@proxyless/etcd';
import { startEtcd, type EtcdServer } from '../../../test/support/etcd.js';
import { startTcpProxy, type TcpProxy } from '../../../test/support/tcp-proxy.js';
import { untilServices, untilSnapshot } from '../../../test/support/wait.js';

const value = (port: number): string => JSON.stringify({ address: '127.0.0.1', port });
const ports = (s: ServiceSnapshot): number[] => s.instances.map((i) => i.port).sort((a, b) => a - b);

/**
 * etcd's simple tokens live in memory. A restart rebuilds them only from the
 * raft entries after the last snapshot, so a login older than that snapshot
 * (every login, on a cluster that has run a while: a snapshot every 100 000
 * entries by default) is forgotten. `--snapshot-count=1` puts every login
 * behind a snapshot at once, as time does in production.
 */
describe('etcd with authentication: tokens etcd forgets', function () {
  this.timeout(60_000);
  const password = 'app-secret';
  let etcd: EtcdServer & { close(): Promise<void> };
  let root: EtcdClient;

  before(async () => {
    etcd = await startEtcd({ args: ['--snapshot-count=1'] });
    const setup = new EtcdClient({ endpoints: etcd.clientUrl }, {});
    try {
      await setup.request('/v3/auth/user/add', { name: 'root', password: 'root-secret' });
      await setup.request('/v3/auth/user/grant', { user: 'root', role: 'root' });
      // The application's user reads and writes the Proxyless prefix only.
      await setup.request('/v3/auth/user/add', { name: 'app', password });
      await setup.request('/v3/auth/role/add', { name: 'app' });
      const b64 = (s: string): string => Buffer.from(s).toString('base64');
      await setup.request('/v3/auth/role/grant', { name: 'app', perm: { permType: 'READWRITE', key: b64('/proxyless/'), range_end: b64('/proxyless0') } });
      await setup.request('/v3/auth/user/grant', { user: 'app', role: 'app' });
      await setup.request('/v3/auth/enable', {});
    } finally {
      await setup.close();
    }
    root = new EtcdClient({ endpoints: etcd.clientUrl, username: 'root', password: 'root-secret' }, {});
  });
  after(async () => {
    await root?.close();
    await etcd?.close();
  });

  it('a watch whose token a restart forgot logs in again and sees the next change within a second of the restart', async () => {
    // Backoff capped low so the reconnect after the restart is prompt; the token is what this test is about.
    const resolver = new EtcdResolver({ endpoints: etcd.clientUrl, username: 'app', password, backoff: { initialMs: 50, maxMs: 300 } });
    try {
      await root.put('/proxyless/services/restarted/a', value(7001));
      const watch = resolver.watch('restarted');
      watch.on('error', () => undefined);
      const catalog = resolver.watchServices();
      catalog.on('error', () => undefined);
      assert.deepEqual(ports(await watch.ready({ timeoutMs: 10_000 })), [7001]);
      await untilServices(catalog, (s) => s.has('restarted'), 10_000);
      await etcd.restart();
      const back = performance.now();
      await root.put('/proxyless/services/restarted/b', value(7002));
      await root.put('/proxyless/services/another/a', value(7003));
      await untilSnapshot(watch, (s) => ports(s).join() === '7001,7002', 5_000);
      const seenAfter = Math.round(performance.now() - back);
      await untilServices(catalog, (s) => s.has('another'), 5_000);
      const catalogAfter = Math.round(performance.now() - back);
      console.log(`      [measure] after the restart: the service watch saw the next change within ${seenAfter} ms, the catalog watch within ${catalogAfter} ms`);
      assert.ok(seenAfter <= 1000, `the watch saw the change ${seenAfter} ms after the restart`);
      assert.equal(watch.current?.stale, false);
    } finally {
      await resolver.close();
    }
  });

  it('a watch open while a password change voids its token keeps its view, and logs in again when it reconnects', async () => {
    let proxy: TcpProxy | undefined;
    const resolver = await (async () => {
      proxy = await startTcpProxy(Number(new URL(etcd.clientUrl).port));
      return new EtcdResolver({ endpoints: proxy.url, username: 'app', password, backoff: { initialMs: 50, maxMs: 300 } });
    })();
    try {
      await root.put('/proxyless/services/rotated/a', value(7101));
      const watch = resolver.watch('rotated');
      watch.on('error', () => undefined);
      await watch.ready({ timeoutMs: 10_000 });
      // Setting the password (here to the same value) voids every token of the user.
      await root.request('/v3/auth/user/changepw', { name: 'app', password });
      // The open stream was authorized when it was created: it carries on.
      await root.put('/proxyless/services/rotated/b', value(7102));
      await untilSnapshot(watch, (s) => ports(s).join() === '7101,7102', 5_000);
      // The connection drops: the watch reconnects with the token etcd no longer knows.
      proxy?.cut();
      proxy?.restore();
      const back = performance.now();
      await root.put('/proxyless/services/rotated/c', value(7103));
      await untilSnapshot(watch, (s) => ports(s).join() === '7101,7102,7103', 5_000);
      const seenAfter = Math.round(performance.now() - back);
      console.log(`      [measure] after the password change and a dropped connection: the watch saw the next change within ${seenAfter} ms`);
      assert.ok(seenAfter <= 1000, `the watch saw the change ${seenAfter} ms after the reconnect`);
    } finally {
      await resolver.close();
      await proxy?.close();
    }
  });
});
