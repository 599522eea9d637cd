import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function startOwner(): Promise<{ owner: ReturnType<typeof spawn>; agentPid: number }> {
  const owner = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', 'test/fixtures/agent-owner.ts'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: owner.stdout });
  const [line] = (await once(lines, 'line')) as [string];
  lines.close();
  const agentPid = Number(line);
  assert.ok(Number.isInteger(agentPid) && alive(agentPid), `agent pid ${line} should be alive`);
  return { owner, agentPid };
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) return true;
    await sleep(100);
  }
  return false;
}

describe('test harness: agents never outlive their owner', function () {
  this.timeout(90_000);

  it('kills the agent when the owning process is interrupted (SIGINT)', async () => {
    const { owner, agentPid } = await startOwner();
    owner.kill('SIGINT');
    await once(owner, 'exit');
    assert.ok(await waitGone(agentPid, 10_000), 'agent still running after its owner was interrupted');
  });

  it('kills the agent when the owning process is SIGKILLed (watchdog)', async () => {
    const { owner, agentPid } = await startOwner();
    owner.kill('SIGKILL');
    await once(owner, 'exit');
    assert.ok(await waitGone(agentPid, 10_000), 'agent still running after its owner was SIGKILLed');
  });
});

describe('scripts/provision-consul.sh', () => {
  it('fails with a clear reason when CONSUL_BIN points nowhere', () => {
    const run = spawnSync('bash', ['scripts/provision-consul.sh'], {
      env: { ...process.env, CONSUL_BIN: '/nonexistent/consul' },
      encoding: 'utf8',
    });
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /CONSUL_BIN=\/nonexistent\/consul is not an executable file/);
  });

  it('fails with a clear reason when there is no binary, no cache and no Go', () => {
    const run = spawnSync('bash', ['scripts/provision-consul.sh'], {
      env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent-home', PROXYLESS_CACHE: '/nonexistent-cache' },
      encoding: 'utf8',
    });
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /no consul binary: .*no 'go' toolchain/);
  });
});
