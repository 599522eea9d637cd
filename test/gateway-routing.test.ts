/**
 * @proxyless/gateway routing: config checks (every route, defaults and
 * discovery key), and the `proxyless-gateway` command's exit code for them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGateway } from '@proxyless/gateway';

/** Runs the bin (from source) with `--config <file>` holding `config`; resolves with its exit code and stderr. */
async function runCli(config: unknown): Promise<{ code: number | null; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-routing-'));
  try {
    const file = join(dir, 'gateway.json');
    writeFileSync(file, JSON.stringify(config));
    const child = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', 'packages/gateway/src/cli.ts', '--config', file], {
      // An unreachable registry: a config error must end the start before any connection is tried.
      env: { ...process.env, CONSUL_HTTP_ADDR: '127.0.0.1:1', PORT: '0' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    return { code, stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('@proxyless/gateway config: unknown keys are rejected', function () {
  this.timeout(60_000);

  it('rejects a misspelt key in a route, in defaults and in discovery, naming the nearest key', () => {
    assert.throws(() => createGateway({ routes: [{ path: '/a/**', service: 'a', timeoutMS: 100 } as never] }), {
      code: 'ERR_INVALID_OPTION',
      message: 'Invalid option "routes[0].timeoutMS": not an option of a route; did you mean "timeoutMs"?',
    });
    assert.throws(() => createGateway({ routes: [{ path: '/a/**', service: 'a' }, { path: '/b/**', service: 'b', stripPrefx: false } as never] }), /"routes\[1\]\.stripPrefx".*did you mean "stripPrefix"\?/);
    assert.throws(() => createGateway({ defaults: { retires: 2 } as never }), /"defaults\.retires": not an option of a route policy \(defaults\); did you mean "retries"\?/);
    assert.throws(() => createGateway({ discovery: { enable: false } as never }), /"discovery\.enable": not an option of discovery; did you mean "enabled"\?/);
    assert.throws(() => createGateway({ routes: ['/a/**' as never] }), /"routes\[0\]".*must be an object/);
    assert.throws(() => createGateway({ defaults: 5 as never }), /"defaults".*must be an object/);
    // Well-spelt configs still pass.
    createGateway({ routes: [{ path: '/a/**', service: 'a', timeoutMs: 100, stripPrefix: false }], defaults: { retries: 0 }, discovery: { enabled: false, ignored: [], startTimeoutMs: 100 } });
  });

  it('ends proxyless-gateway with exit code 2 and one line for a misspelt route key', async () => {
    const { code, stderr } = await runCli({ routes: [{ path: '/api/**', service: 'users', timeoutMS: 2000 }] });
    assert.equal(code, 2, stderr);
    assert.equal(stderr, 'proxyless-gateway: Invalid option "routes[0].timeoutMS": not an option of a route; did you mean "timeoutMs"?\n');
  });
});
