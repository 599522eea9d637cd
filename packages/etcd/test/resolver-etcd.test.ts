import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isProxylessError, type ServiceSnapshot, type ServiceWatch } from '@proxyless/core';
import { EtcdClient, EtcdResolver, confdLayout, type DroppedEntry } from '@proxyless/etcd';
import { startEtcd, type EtcdServer } from '../../../test/support/etcd.js';
import { startTcpProxy } from '../../../test/support/tcp-proxy.js';

const here = dirname(fileURLToPath(import.meta.url));
const value = (port: number, extra: Record<string, unknown> = {}): string => JSON.stringify({ address: '127.0.0.1', port, ...extra });

/** Waits for a snapshot that satisfies `check` (the current one included). */
async function until(watch: ServiceWatch, check: (s: ServiceSnapshot) => boolean, timeoutMs = 10_000): Promise<ServiceSnapshot> {
  if (watch.current && check(watch.current)) return watch.current;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching snapshot in ${timeoutMs} ms; last: ${JSON.stringify(watch.current?.instances.map((i) => i.port))} stale=${String(watch.current?.stale)}`)), timeoutMs);
    const onUpdate = (s: ServiceSnapshot): void => {
      if (!check(s)) return;
      clearTimeout(timer);
      watch.off('update', onUpdate);
      resolve(s);
    };
    watch.on('update', onUpdate);
  });
}

const ports = (s: ServiceSnapshot): number[] => s.instances.map((i) => i.port).sort((a, b) => a - b);

describe('EtcdResolver against a real etcd', function () {
  this.timeout(60_000);
  let etcd: EtcdServer & { close(): Promise<void> };
  let admin: EtcdClient;

  before(async () => {
    etcd = await startEtcd();
    admin = new EtcdClient({ endpoints: etcd.clientUrl });
  });
  after(async () => {
    await admin.close();
    await etcd.close();
  });

  it('resolves the instances of the Proxyless JSON layout, leaving out critical ones', async () => {
    await admin.put('/proxyless/services/res/a', value(1001, { tags: ['v1'], meta: { zone: 'z1' } }));
    await admin.put('/proxyless/services/res/b', value(1002, { health: 'critical' }));
    await admin.put('/proxyless/services/resx/c', value(1003)); // another service sharing the name's start
    const resolver = new EtcdResolver({ endpoints: etcd.clientUrl });
    try {
      const instances = await resolver.resolve('res');
      assert.deepEqual(instances.map((i) => [i.id, i.port, i.zone, i.tags]), [['a', 1001, 'z1', ['v1']]]);
      await assert.rejects(resolver.resolve('nobody'), (e) => isProxylessError(e, 'ERR_NO_HEALTHY_INSTANCES'));
      await assert.rejects(resolver.resolve('../etc'), (e) => isProxylessError(e, 'ERR_INVALID_SERVICE_NAME'));
    } finally {
      await resolver.close();
    }
  });

  it('shares one watch stream among subscribers and delivers diffed events for put, update and delete', async () => {
    const resolver = new EtcdResolver({ endpoints: etcd.clientUrl });
    try {
      const w1 = resolver.watch('diffed');
      const w2 = resolver.watch('diffed');
      assert.equal(resolver.activeWatches, 1);
      await w1.ready({ timeoutMs: 10_000 });
      const changes: string[] = [];
      w2.on('update', (_s, change) => changes.push(`+${change.added.map((i) => i.id).join()} ~${change.updated.map((i) => i.id).join()} -${change.removed.map((i) => i.id).join()}`));
      await admin.put('/proxyless/services/diffed/x', value(2001));
      await until(w1, (s) => ports(s).includes(2001));
      await admin.put('/proxyless/services/diffed/x', value(2001, { tags: ['new'] }));
      await until(w1, (s) => s.instances[0]?.tags[0] === 'new');
      await admin.delete('/proxyless/services/diffed/x');
      await until(w1, (s) => s.instances.length === 0);
      await until(w2, (s) => s.instances.length === 0);
      assert.deepEqual(changes, ['+x ~ -', '+ ~x -', '+ ~ -x']);
      await w1.close();
      assert.equal(resolver.activeWatches, 1);
      await w2.close();
      assert.equal(resolver.activeWatches, 0);
    } finally {
      await resolver.close();
    }
  });

  it('drops malformed, oversized, nested and hostile values with a dropped event, never as instances', async () => {
    const resolver = new EtcdResolver({ endpoints: etcd.clientUrl, maxValueBytes: 1024 });
    const dropped: DroppedEntry[] = [];
    resolver.on('dropped', (d) => dropped.push(d));
    try {
      await admin.put('/proxyless/services/bad/good', value(3001));
      await admin.put('/proxyless/services/bad/notjson', '{address:');
      await admin.put('/proxyless/services/bad/noport', JSON.stringify({ address: '127.0.0.1' }));
      await admin.put('/proxyless/services/bad/zero', JSON.stringify({ address: '0.0.0.0', port: 80 }));
      await admin.put('/proxyless/services/bad/huge', value(3002, { meta: { pad: 'x'.repeat(2000) } }));
      await admin.put('/proxyless/services/bad/nested/deeper', value(3003));
      await admin.put('/proxyless/services/bad/proto', '{"__proto__":{"port":1},"address":"127.0.0.1"}');
      await admin.put('/proxyless/services/bad/inject\n', value(3004));
      const watch = resolver.watch('bad');
      const first = await watch.ready({ timeoutMs: 10_000 });
      assert.deepEqual(ports(first), [3001]);
      const reasons = new Map(dropped.map((d) => [d.key.split('/').slice(4).join('/'), d.reason]));
      for (const key of ['notjson', 'noport', 'zero', 'huge', 'nested/deeper', 'proto', 'inject\\x0a']) {
        assert.ok(reasons.has(key), `${key} should be dropped; got ${[...reasons.keys()].join(', ')}`);
      }
      assert.match(reasons.get('huge') ?? '', /larger than 1024 bytes/);
      // A good value turned bad leaves the set (and is reported); turned good again, comes back.
      await admin.put('/proxyless/services/bad/good', 'garbage');
      await until(watch, (s) => s.instances.length === 0);
      await admin.put('/proxyless/services/bad/good', value(3001));
      await until(watch, (s) => ports(s).join() === '3001');
    } finally {
      await resolver.close();
    }
  });

  it('reads the confd-era layout (/app/servers/<name> → "host:port") as instances', async () => {
    await admin.put('/app/servers/app1', '127.0.0.1:4001');
    await admin.put('/app/servers/app2', '[::1]:4002');
    await admin.put('/app/servers/bad', 'not a host port');
    const resolver = new EtcdResolver({ endpoints: etcd.clientUrl, layout: confdLayout() });
    try {
      const watch = resolver.watch('app');
      const snapshot = await watch.ready({ timeoutMs: 10_000 });
      assert.deepEqual(snapshot.instances.map((i) => [i.id, i.address, i.port]).sort(), [['app1', '127.0.0.1', 4001], ['app2', '::1', 4002]]);
      await admin.put('/app/servers/app3', '127.0.0.1:4003');
      await until(watch, (s) => ports(s).join() === '4001,4002,4003');
    } finally {
      await resolver.close();
    }
  });

  it('keeps the last snapshot marked stale while etcd is unreachable, resumes from its revision, and converges after a compaction during the disconnect', async () => {
    const proxy = await startTcpProxy(Number(new URL(etcd.clientUrl).port));
    const resolver = new EtcdResolver({ endpoints: proxy.url, timeoutMs: 1000, backoff: { initialMs: 50, maxMs: 200 } });
    const resyncs: string[] = [];
    resolver.on('resync', (_s, reason) => resyncs.push(reason));
    try {
      await admin.put('/proxyless/services/part/a', value(5001));
      const watch = resolver.watch('part');
      await until(watch, (s) => ports(s).join() === '5001');
      proxy.cut();
      const stale = await until(watch, (s) => s.stale);
      assert.deepEqual(ports(stale), [5001], 'the last good set stays while etcd is away');
      assert.ok(watch.lastError);
      // While disconnected: changes, then a compaction that removes the history the watch would resume from.
      await admin.put('/proxyless/services/part/b', value(5002));
      await admin.delete('/proxyless/services/part/a');
      const header = await admin.put('/proxyless/services/other/x', value(1));
      await admin.compact(header.revision);
      proxy.restore();
      const back = await until(watch, (s) => !s.stale && ports(s).join() === '5002', 15_000);
      assert.equal(back.stale, false);
      assert.deepEqual(resyncs, ['compacted']);
      // A plain disconnect without compaction resumes from the revision, no full read.
      proxy.cut();
      await until(watch, (s) => s.stale);
      await admin.put('/proxyless/services/part/c', value(5003));
      proxy.restore();
      await until(watch, (s) => !s.stale && ports(s).join() === '5002,5003', 15_000);
      assert.deepEqual(resyncs, ['compacted']);
    } finally {
      await resolver.close();
      await proxy.close();
    }
  });

  it('starts over when etcd comes back with its data wiped (revision behind ours)', async () => {
    const own = await startEtcd();
    const ownAdmin = new EtcdClient({ endpoints: own.clientUrl });
    const resolver = new EtcdResolver({ endpoints: own.clientUrl, timeoutMs: 1000, backoff: { initialMs: 50, maxMs: 200 } });
    const resyncs: string[] = [];
    resolver.on('resync', (_s, reason) => resyncs.push(reason));
    try {
      for (let i = 0; i < 20; i++) await ownAdmin.put('/proxyless/services/wiped/filler', value(6000 + i));
      await ownAdmin.put('/proxyless/services/wiped/a', value(6101));
      const watch = resolver.watch('wiped');
      await until(watch, (s) => ports(s).includes(6101));
      await own.wipe();
      await ownAdmin.put('/proxyless/services/wiped/b', value(6102));
      const after = await until(watch, (s) => !s.stale && ports(s).join() === '6102', 20_000);
      assert.deepEqual(ports(after), [6102]);
      assert.deepEqual(resyncs, ['revision-backwards']);
    } finally {
      await resolver.close();
      await ownAdmin.close();
      await own.close();
    }
  });

  it('close() ends every watch stream and leaves nothing that keeps the process alive', async () => {
    const child = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', join(here, 'fixtures', 'exit-after-close.ts'), etcd.clientUrl], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    assert.equal(code, 0, `child did not exit by itself: ${out}`);
    assert.match(out, /closed with 0 watches/);
    const resolver = new EtcdResolver({ endpoints: etcd.clientUrl });
    await resolver.close();
    await resolver.close();
    assert.throws(() => resolver.watch('c1'), (e) => isProxylessError(e, 'ERR_CLOSED'));
    await assert.rejects(resolver.resolve('c1'), (e) => isProxylessError(e, 'ERR_CLOSED'));
  });

  it('fails over to the next endpoint when the first cannot be reached', async () => {
    const resolver = new EtcdResolver({ endpoints: ['http://127.0.0.1:1', etcd.clientUrl] });
    try {
      await admin.put('/proxyless/services/failover/a', value(7001));
      assert.deepEqual((await resolver.resolve('failover')).map((i) => i.port), [7001]);
      const watch = resolver.watch('failover');
      await watch.ready({ timeoutMs: 10_000 });
      await admin.put('/proxyless/services/failover/b', value(7002));
      await until(watch, (s) => ports(s).join() === '7001,7002');
    } finally {
      await resolver.close();
    }
  });
});
