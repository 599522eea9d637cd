import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startEtcd, startEtcdCluster } from './support/etcd.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

async function v3(url: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(`${url}/v3/${path}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });
  const json = (await r.json()) as Record<string, unknown>;
  assert.equal(r.status, 200, JSON.stringify(json));
  return json;
}

async function get(url: string, key: string): Promise<string | undefined> {
  const answer = (await v3(url, 'kv/range', { key: b64(key) })) as { kvs?: { value: string }[] };
  const value = answer.kvs?.[0]?.value;
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString();
}

describe('test harness: etcd', function () {
  this.timeout(120_000);

  it('starts a single member on loopback that keeps its data across a restart and loses it on wipe()', async () => {
    const etcd = await startEtcd();
    try {
      assert.match(etcd.clientUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
      await v3(etcd.clientUrl, 'kv/put', { key: b64('/h/a'), value: b64('1') });
      await etcd.restart();
      assert.equal(await get(etcd.clientUrl, '/h/a'), '1');
      await etcd.wipe();
      assert.equal(await get(etcd.clientUrl, '/h/a'), undefined);
    } finally {
      await etcd.close();
    }
    assert.equal(etcd.running, false);
  });

  it('starts a 3-member cluster that elects a new leader when the leader is killed', async () => {
    const cluster = await startEtcdCluster(3);
    try {
      const leader = await cluster.waitForLeader();
      const follower = cluster.members.find((m) => m !== leader);
      assert.ok(follower);
      await v3(follower.clientUrl, 'kv/put', { key: b64('/h/c'), value: b64('x') });
      await leader.kill();
      const next = await cluster.waitForLeader(30_000);
      assert.notEqual(next, leader);
      assert.equal(await get(next.clientUrl, '/h/c'), 'x');
      await leader.start();
      await cluster.waitForLeader(30_000);
      assert.equal(await get(leader.clientUrl, '/h/c'), 'x');
    } finally {
      await cluster.stop();
    }
    assert.ok(cluster.members.every((m) => !m.running));
  });
});

describe('scripts/provision-etcd.sh', () => {
  it('fails with a clear reason when ETCD_BIN points nowhere', () => {
    const run = spawnSync('bash', ['scripts/provision-etcd.sh'], {
      env: { ...process.env, ETCD_BIN: '/nonexistent/etcd' },
      encoding: 'utf8',
    });
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /ETCD_BIN=\/nonexistent\/etcd is not an executable file/);
    assert.equal(run.stdout, '');
  });

  it('prints the path of a working etcd on its last line', () => {
    const run = spawnSync('bash', ['scripts/provision-etcd.sh'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const path = run.stdout.trim().split('\n').at(-1) ?? '';
    const version = spawnSync(path, ['--version'], { encoding: 'utf8' });
    assert.match(version.stdout, /etcd Version: 3\./);
  });
});
