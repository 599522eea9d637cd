/**
 * The release flow (README "Releasing"): `npm run version-packages` runs
 * `changeset version`, which must move every workspace package to one new
 * version together (the `fixed` group in .changeset/config.json), pin the
 * packages' dependencies on each other to it, and write each CHANGELOG.md.
 * Run on a copy of the manifests in a throw-away git repository.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv, readJson, repoRoot, run, workspacePackages, type Manifest } from './support/packaging.js';

describe('release flow (changesets)', function () {
  this.timeout(60_000);
  let copy: string;

  before(() => {
    copy = mkdtempSync(join(tmpdir(), 'proxyless-release-'));
  });
  after(() => rmSync(copy, { recursive: true, force: true }));

  it('one changeset for one package moves every package to the same next version, pins them to each other, writes changelogs', async () => {
    const packages = workspacePackages();
    cpSync(join(repoRoot, 'package.json'), join(copy, 'package.json'));
    mkdirSync(join(copy, '.changeset'));
    cpSync(join(repoRoot, '.changeset', 'config.json'), join(copy, '.changeset', 'config.json'));
    for (const p of packages) {
      mkdirSync(join(copy, p.dir), { recursive: true });
      cpSync(join(repoRoot, p.dir, 'package.json'), join(copy, p.dir, 'package.json'));
    }
    symlinkSync(join(repoRoot, 'node_modules'), join(copy, 'node_modules'));
    const versions = new Set(packages.map((p) => p.manifest.version));
    assert.equal(versions.size, 1, `the packages share one version today: ${[...versions].join(', ')}`);
    const [major, minor, patch] = [...versions][0]!.split('.').map(Number) as [number, number, number];
    const next = `${major}.${minor}.${patch + 1}`;
    writeFileSync(join(copy, '.changeset', 'fix-core.md'), "---\n'@proxyless/core': patch\n---\n\nA fix in core only.\n");
    const git = (...args: string[]) => run('git', ['-c', 'user.email=test@example.invalid', '-c', 'user.name=test', ...args], { cwd: copy });
    assert.equal((await git('init', '-q')).code, 0);
    assert.equal((await git('add', '-A')).code, 0);
    assert.equal((await git('commit', '-q', '-m', 'init')).code, 0);

    const result = await run(process.execPath, [join(repoRoot, 'node_modules/@changesets/cli/bin.js'), 'version'], { cwd: copy, env: cleanEnv() });
    assert.equal(result.code, 0, result.stdout + result.stderr);

    const names = new Set(packages.map((p) => p.manifest.name));
    for (const p of packages) {
      const m = readJson<Manifest>(join(copy, p.dir, 'package.json'));
      assert.equal(m.version, next, `${m.name} moves with the others`);
      for (const [dep, range] of Object.entries(m.dependencies ?? {})) if (names.has(dep)) assert.equal(range, next, `${m.name} → ${dep}`);
      const changelog = readFileSync(join(copy, p.dir, 'CHANGELOG.md'), 'utf8');
      assert.match(changelog, new RegExp(`^# ${m.name.replace('/', '\\/')}\\n\\n## ${next.replace(/\./g, '\\.')}`));
    }
    assert.match(readFileSync(join(copy, 'packages/core/CHANGELOG.md'), 'utf8'), /A fix in core only\./);
    // The changeset is consumed.
    assert.throws(() => readFileSync(join(copy, '.changeset', 'fix-core.md')));
  });
});
