/**
 * scripts/provision-chromium.sh fails loudly, with the reason and what to do,
 * when it cannot provide a Chromium (the install path itself runs for real in
 * the first `npm test` on a machine without Chromium: gateway.e2e.test.ts).
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { provisionChromium } from './support/chromium.js';

describe('scripts/provision-chromium.sh', () => {
  let bin: string;
  const missing = '/nonexistent/proxyless-test/chromium';

  before(() => {
    // A PATH with only what the script needs, and `id`/`sudo` stand-ins for an ordinary user without sudo rights.
    bin = mkdtempSync(join(tmpdir(), 'provision-chromium-test-'));
    for (const tool of ['bash', 'mkdir', 'flock', 'date', 'env']) {
      symlinkSync(execFileSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
    }
    const stub = (name: string, body: string): void => {
      writeFileSync(join(bin, name), `#!${join(bin, 'bash')}\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    stub('id', 'case "$1" in -u) echo 1000;; -un) echo tester;; *) echo "uid=1000(tester)";; esac');
    stub('sudo', 'echo "sudo: a password is required" >&2; exit 1');
    stub('apt-get', 'echo "apt-get must not run in this test" >&2; exit 99');
  });
  after(() => rmSync(bin, { recursive: true, force: true }));

  const run = (env: NodeJS.ProcessEnv): Promise<string> =>
    provisionChromium({ PATH: bin, HOME: tmpdir(), PROXYLESS_CHROMIUM_DEBIAN_BIN: missing, ...env });

  it('fails naming CHROMIUM_BIN when it is not an executable', async () => {
    await assert.rejects(run({ CHROMIUM_BIN: '/nonexistent/chrome' }), (error: Error) => {
      assert.match(error.message, /exited 1/);
      assert.match(error.message, /CHROMIUM_BIN=\/nonexistent\/chrome is not an executable file/);
      assert.match(error.message, /sudo apt-get install chromium/);
      return true;
    });
  });

  it('fails with what to do when Chromium is missing and the user cannot install packages', async () => {
    await assert.rejects(run({}), (error: Error) => {
      assert.match(error.message, new RegExp(`Chromium is missing \\(${missing.replace(/\//g, '\\/')}\\); installing Debian's chromium package needs root`));
      assert.match(error.message, /this user \(tester\) is not root and has no passwordless sudo/);
      assert.match(error.message, /point CHROMIUM_BIN at a Chromium or Chrome binary, then run npm test again/);
      return true;
    });
  });

  it('fails when there is no apt-get to install with', async () => {
    rmSync(join(bin, 'apt-get'));
    await assert.rejects(run({}), /this machine has no apt-get to install Debian's chromium package/);
  });
});
