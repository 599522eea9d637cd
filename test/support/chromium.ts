/**
 * Test support: the headless Chromium the browser tests drive, provisioned on
 * first use by scripts/provision-chromium.sh (CHROMIUM_BIN, Debian's
 * /usr/bin/chromium, or apt-get install chromium). Never skips: when no
 * Chromium can be had, the promise rejects with the script's reason and what
 * to do.
 */
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

let provisioned: Promise<string> | undefined;

/** Runs scripts/provision-chromium.sh; resolves with the binary's path (its progress goes to stderr as it happens). */
export function provisionChromium(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((ok, fail) => {
    const child = spawn('bash', [join(repoRoot, 'scripts', 'provision-chromium.sh')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
      // apt's output is long; the script's own lines say what happens.
      for (const line of chunk.toString().split('\n')) if (line.startsWith('[provision-chromium]')) process.stderr.write(`${line}\n`);
    });
    child.once('error', fail);
    child.once('close', (code) => {
      if (code === 0) ok(out.trim().split('\n').at(-1) ?? '');
      else fail(new Error(`Chromium could not be provisioned (scripts/provision-chromium.sh exited ${String(code)}):\n${err.trim().split('\n').slice(-8).join('\n')}`));
    });
  });
}

/** The Chromium binary for this test run, provisioned once per process. */
export function chromiumBinary(): Promise<string> {
  provisioned ??= provisionChromium();
  return provisioned;
}
