/**
 * Test support: a second copy of every workspace package, as an app gets one
 * when npm installs two versions of `@proxyless/core` (one nested under
 * `@proxyless/etcd`, say) or a bundle sits beside an install.
 *
 * Each package's `package.json` and `src/` are copied into
 * `<tmp>/node_modules/@proxyless/<name>`; third-party dependencies are links
 * to the repository's. The copy is loaded through the `proxyless-source`
 * condition the tests run with, so it is today's source (no build needed), in
 * other module instances: other class objects, the same brands. A package of
 * the copy that imports `@proxyless/core` gets the copy's core.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot, workspacePackages, type Manifest } from './packaging.js';

/** A second install of the workspace packages. */
export interface SecondCopy {
  /** The folder holding its `node_modules`. */
  readonly dir: string;
  /** Every entry point a user can import (`@proxyless/core`, `@proxyless/http-client/prometheus`…). */
  readonly entryPoints: readonly string[];
  /** Imports an entry point of the copy, e.g. `@proxyless/core`. */
  import(specifier: string): Promise<Record<string, unknown>>;
  /** Removes the folder (the links only, never what they point to). */
  remove(): void;
}

/** The source file an `exports` entry names under the `proxyless-source` condition. */
function sourceOf(manifest: Manifest, subpath: string): string {
  const target = manifest.exports?.[subpath] as Record<string, unknown> | undefined;
  const source = target?.['proxyless-source'];
  if (typeof source !== 'string') throw new Error(`${manifest.name} exports no "proxyless-source" for "${subpath}"`);
  return source;
}

export function installSecondCopy(): SecondCopy {
  const dir = mkdtempSync(join(tmpdir(), 'proxyless-second-copy-'));
  const modules = join(dir, 'node_modules');
  mkdirSync(modules);
  for (const entry of readdirSync(join(repoRoot, 'node_modules'))) {
    if (entry === '@proxyless' || entry.startsWith('.')) continue;
    symlinkSync(join(repoRoot, 'node_modules', entry), join(modules, entry));
  }
  const packages = workspacePackages();
  const files = new Map<string, string>();
  for (const { dir: packageDir, manifest } of packages) {
    const target = join(modules, manifest.name);
    cpSync(join(repoRoot, packageDir, 'package.json'), join(target, 'package.json'));
    cpSync(join(repoRoot, packageDir, 'src'), join(target, 'src'), { recursive: true });
    for (const subpath of Object.keys(manifest.exports ?? {})) {
      if (subpath === './package.json') continue;
      files.set(subpath === '.' ? manifest.name : `${manifest.name}${subpath.slice(1)}`, join(target, sourceOf(manifest, subpath)));
    }
  }
  return {
    dir,
    entryPoints: [...files.keys()],
    async import(specifier) {
      const file = files.get(specifier);
      if (file === undefined) throw new Error(`no entry point ${specifier} (have ${[...files.keys()].join(', ')})`);
      return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
