/**
 * The import rules of `npm run lint:deps` (.dependency-cruiser.cjs): the tree
 * has no import cycle (type-only imports count) and no boundary crossing, and
 * the check fails, naming the modules, on an injected cycle or crossing. The
 * injections go into a temporary copy of packages/, never the tree itself.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const bin = join(repoRoot, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');
const packages = ['core', 'registrar', 'http-client', 'etcd', 'load-report'];

interface Run {
  code: number;
  output: string;
}

/** Runs the same check as `npm run lint:deps`, in `cwd`, on `targets`. */
async function depcruise(cwd: string, targets: readonly string[]): Promise<Run> {
  const args = [bin, '-c', '.dependency-cruiser.cjs', '--output-type', 'err-long', ...targets];
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, args, { cwd, timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('import rules (npm run lint:deps)', function () {
  this.timeout(120_000); // a cruise takes ~3 s alone; the machine is shared
  let copy: string;

  before(async () => {
    // packages/ (sources and tests, no dist) and the config; node_modules links
    // to the real one except @proxyless/*, which point into the copy.
    copy = await mkdtemp(join(tmpdir(), 'proxyless-lint-deps-'));
    for (const p of packages) {
      for (const part of ['src', 'test', 'package.json']) {
        await cp(join(repoRoot, 'packages', p, part), join(copy, 'packages', p, part), { recursive: true });
      }
    }
    for (const f of ['.dependency-cruiser.cjs', 'tsconfig.check.json', 'tsconfig.base.json']) await cp(join(repoRoot, f), join(copy, f));
    await mkdir(join(copy, 'node_modules/@proxyless'), { recursive: true });
    for (const entry of await readdir(join(repoRoot, 'node_modules'))) {
      if (entry !== '@proxyless') await symlink(join(repoRoot, 'node_modules', entry), join(copy, 'node_modules', entry));
    }
    for (const p of packages) await symlink(join(copy, 'packages', p), join(copy, 'node_modules/@proxyless', p));
  });

  after(async () => {
    await rm(copy, { recursive: true, force: true });
  });

  it('passes on the tree: no cycle, no boundary crossing', async () => {
    const run = await depcruise(repoRoot, ['packages', 'test', 'bench', 'examples', 'scripts']);
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /no dependency violations found/);
  });

  it('passes on the untouched copy (the copy resolves like the tree)', async () => {
    const run = await depcruise(copy, ['packages']);
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /no dependency violations found/);
  });

  it('fails on a type-only import cycle, naming it', async () => {
    const dir = join(copy, 'packages/http-client/src');
    await writeFile(join(dir, 'zz-cycle-a.ts'), "import type { B } from './zz-cycle-b.js';\nexport interface A { b: B }\n");
    await writeFile(join(dir, 'zz-cycle-b.ts'), "import type { A } from './zz-cycle-a.js';\nexport interface B { a: A }\n");
    try {
      const run = await depcruise(copy, ['packages']);
      assert.notEqual(run.code, 0, run.output);
      assert.match(run.output, /no-circular: packages\/http-client\/src\/zz-cycle-a\.ts → [\s\S]*packages\/http-client\/src\/zz-cycle-b\.ts/);
      assert.match(run.output, /leaf module/); // the rule's comment names the fix
    } finally {
      await rm(join(dir, 'zz-cycle-a.ts'));
      await rm(join(dir, 'zz-cycle-b.ts'));
    }
  });

  it('fails on a boundary crossing, naming the rule and both modules', async () => {
    const leaks = [
      ['core/src/zz-leak.ts', "import type { ProxylessClient } from '@proxyless/http-client';\nexport type C = ProxylessClient;\n", 'core-stays-generic', 'packages/http-client/src/index.ts'],
      ['registrar/src/zz-leak.ts', "import type { ProxylessClient } from '@proxyless/http-client';\nexport type C = ProxylessClient;\n", 'registrar-not-http-client', 'packages/http-client/src/index.ts'],
      ['http-client/src/zz-leak.ts', "import type { Registrar } from '@proxyless/registrar';\nexport type R = Registrar;\n", 'http-client-not-registrar', 'packages/registrar/src/index.ts'],
      ['etcd/src/zz-leak.ts', "export { createClient } from '@proxyless/http-client';\n", 'etcd-not-http-client', 'packages/http-client/src/index.ts'],
      // http-client's layers: a lower folder importing a higher one.
      ['http-client/src/endpoints/zz-leak.ts', "import type { Call } from '../request/call.js';\nexport type C = Call;\n", 'http-client-layer-endpoints', 'packages/http-client/src/request/call.ts'],
      ['http-client/src/shared/zz-leak.ts', "import type { ProxylessClient } from '../client.js';\nexport type C = ProxylessClient;\n", 'http-client-layer-shared', 'packages/http-client/src/client.ts'],
      ['load-report/src/zz-leak.ts', "import type { Registrar } from '@proxyless/registrar';\nexport type R = Registrar;\n", 'load-report-core-only', 'packages/registrar/src/index.ts'],
      ['core/src/zz-leak-report.ts', "export { LoadReporter } from '@proxyless/load-report';\n", 'core-stays-generic', 'packages/load-report/src/index.ts'],
      ['core/src/zz-leak-test.ts', "export * from '../test/zz-helper.js';\n", 'src-not-tests', 'packages/core/test/zz-helper.ts'],
    ] as const;
    await writeFile(join(copy, 'packages/core/test/zz-helper.ts'), 'export const helper = 1;\n');
    for (const [file, source] of leaks) await writeFile(join(copy, 'packages', file), source);
    try {
      const run = await depcruise(copy, ['packages']);
      assert.notEqual(run.code, 0, run.output);
      for (const [file, , rule, target] of leaks) {
        assert.match(run.output, new RegExp(`${rule}: packages/${file.replace(/\./g, '\\.')} → ${target.replace(/\./g, '\\.')}`), run.output);
      }
      assert.doesNotMatch(run.output, /no-circular/);
    } finally {
      for (const [file] of leaks) await rm(join(copy, 'packages', file));
      await rm(join(copy, 'packages/core/test/zz-helper.ts'));
    }
  });
});
