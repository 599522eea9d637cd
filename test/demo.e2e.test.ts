import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';

/** Child processes of `pid`, recursively (Linux /proc). */
async function descendants(pid: number): Promise<number[]> {
  const { readFile } = await import('node:fs/promises');
  try {
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean).map(Number);
    const nested = await Promise.all(children.map((c) => descendants(c)));
    return [...children, ...nested.flat()];
  } catch {
    return [];
  }
}

describe('npm run demo', function () {
  this.timeout(180_000);

  for (const registry of ['consul', 'etcd'] as const) {
  it(`--registry ${registry}: runs to completion with zero failed requests in the graceful and failover steps, and leaves no process behind`, async () => {
    const demo = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', 'examples/demo/demo.ts', '--registry', registry], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    demo.stdout.on('data', (c: Buffer) => (out += c.toString()));
    demo.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const seen = new Set<number>();
    const sampler = setInterval(() => {
      void descendants(demo.pid!).then((pids) => pids.forEach((p) => seen.add(p)));
    }, 500);
    const [code] = (await once(demo, 'exit')) as [number | null];
    clearInterval(sampler);
    assert.equal(code, 0, out);
    assert.match(out, /graceful step \(SIGTERM\): +0 failed/);
    assert.match(out, /failover step \(SIGKILL\): +0 failed/);
    assert.match(out, /Summary/);
    assert.ok(seen.size >= 4, `expected the demo to start an agent and services, saw ${String(seen.size)} processes`);
    const isAlive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    // The harness's watchdog shell notices its owner is gone within a second.
    let alive = [...seen].filter(isAlive);
    for (let i = 0; i < 30 && alive.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      alive = alive.filter(isAlive);
    }
    assert.deepEqual(alive, [], `processes left behind by the demo: ${alive.join(', ')}`);
    assert.match(out, registry === 'etcd' ? /client-side load balancing with etcd/ : /client-side load balancing with Consul/);
  });
  }
});
