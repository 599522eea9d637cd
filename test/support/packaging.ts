/**
 * Test support: the published form of every workspace package, installed the
 * way a user installs it.
 *
 * - {@link workspacePackages} discovers the packages from the root
 *   package.json `workspaces` (a new package is covered without editing tests);
 * - {@link packAll} runs `npm pack` on each into a folder;
 * - {@link installScratchApp} installs the tarballs into an app in a temporary
 *   folder outside the repository, offline: the app's package-lock.json is
 *   derived from the repository's (same versions, same `resolved` and
 *   `integrity`), so `npm ci --offline` takes every third-party tarball from
 *   npm's cache, which the repository's own `npm ci` filled. (`npm install
 *   --offline` would need each dependency's registry metadata, which `npm ci`
 *   does not cache.)
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run as runCommand, type Ran } from './processes.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The fields of a package.json the tests read. */
export interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  type?: string;
  license?: string;
  engines?: Record<string, string>;
  exports?: Record<string, unknown>;
  types?: string;
  main?: string;
  bin?: Record<string, string> | string;
  files?: string[];
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

/** One workspace package. */
export interface WorkspacePackage {
  /** Folder relative to the repository root, e.g. `packages/core`. */
  readonly dir: string;
  readonly manifest: Manifest;
}

/** One packed package. */
export interface PackedPackage extends WorkspacePackage {
  /** Tarball file name in the pack folder. */
  readonly filename: string;
  /** Paths inside the tarball (without the `package/` prefix). */
  readonly files: readonly string[];
}

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller states the file's shape
export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

/** Every non-private workspace package, from the root package.json (`dir/*` patterns expanded). */
export function workspacePackages(): WorkspacePackage[] {
  const patterns = readJson<{ workspaces?: string[] }>(join(repoRoot, 'package.json')).workspaces ?? [];
  const dirs = patterns.flatMap((pattern) => {
    if (!pattern.endsWith('/*')) return [pattern];
    const parent = pattern.slice(0, -2);
    return readdirSync(join(repoRoot, parent), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => `${parent}/${e.name}`);
  });
  return dirs
    .filter((dir) => existsSync(join(repoRoot, dir, 'package.json')))
    .map((dir) => ({ dir, manifest: readJson<Manifest>(join(repoRoot, dir, 'package.json')) }))
    .filter((p) => !p.manifest.private);
}

/** The environment for a nested npm: the outer `npm test`'s npm_* variables would leak its settings (workspace, prefix…). */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('npm_') && key !== 'npm_config_cache' && key !== 'npm_config_userconfig') continue;
    env[key] = value;
  }
  // The outer mocha's --conditions=proxyless-source / --import tsx must not reach the scratch app's processes.
  delete env['NODE_OPTIONS'];
  return { ...env, ...extra };
}

/** Runs a command to its end (bounded by `timeoutMs`), collecting its output; by default in {@link cleanEnv}. */
export function run(file: string, args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Ran> {
  return runCommand(file, args, { ...options, env: options.env ?? cleanEnv() });
}

/** The npm that runs this test (the one `npm test` was started with), else `npm` on PATH. */
export function npm(args: readonly string[], cwd: string, timeoutMs = 180_000): Promise<Ran> {
  const cli = process.env['npm_execpath'];
  return cli && cli.endsWith('.js')
    ? run(process.execPath, [cli, ...args], { cwd, timeoutMs })
    : run('npm', args, { cwd, timeoutMs });
}

/** `npm pack` of every package into `destination`. */
export async function packAll(packages: readonly WorkspacePackage[], destination: string): Promise<PackedPackage[]> {
  const args = ['pack', '--json', '--pack-destination', destination, ...packages.flatMap((p) => ['--workspace', p.dir])];
  const result = await npm(args, repoRoot);
  if (result.code !== 0) throw new Error(`npm ${args.join(' ')} exited ${String(result.code)}:\n${result.stderr}`);
  const packed = JSON.parse(result.stdout) as { name: string; filename: string; files: { path: string }[] }[];
  return packages.map((p) => {
    const entry = packed.find((e) => e.name === p.manifest.name);
    if (!entry) throw new Error(`npm pack produced no tarball for ${p.manifest.name}`);
    return { ...p, filename: entry.filename, files: entry.files.map((f) => f.path) };
  });
}

interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  link?: boolean;
  dev?: boolean;
  devOptional?: boolean;
  peer?: boolean;
  optional?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  [key: string]: unknown;
}

/**
 * Installs the tarballs (and `extra` registry packages, at the versions the
 * repository's lockfile has) into `appDir` with `npm ci --offline`.
 * @returns npm's output.
 */
export async function installScratchApp(
  appDir: string,
  packDir: string,
  packed: readonly PackedPackage[],
  extra: readonly string[],
): Promise<Ran> {
  const lock = readJson<{ packages: Record<string, LockEntry> }>(join(repoRoot, 'package-lock.json')).packages;
  const ours = new Map(packed.map((p) => [p.manifest.name, p]));
  const out: Record<string, LockEntry> = {};

  // Node's lookup in the repository's tree: nearest node_modules first, then upwards.
  const locate = (from: string, name: string): string => {
    let dir = from;
    for (;;) {
      const candidate = dir === '' ? `node_modules/${name}` : `${dir}/node_modules/${name}`;
      if (lock[candidate]) return candidate;
      if (dir === '') throw new Error(`package-lock.json has no ${name} reachable from ${from || 'the root'}`);
      const up = dir.lastIndexOf('/node_modules/');
      dir = up >= 0 ? dir.slice(0, up) : '';
    }
  };
  // A workspace's nested node_modules move under its installed folder.
  const toApp = (path: string): string => {
    for (const p of packed) if (path.startsWith(`${p.dir}/`)) return `node_modules/${p.manifest.name}/${path.slice(p.dir.length + 1)}`;
    return path;
  };
  const visit = (from: string, name: string): void => {
    if (ours.has(name)) return;
    const path = locate(from, name);
    const target = toApp(path);
    if (out[target]) return;
    const entry: LockEntry = { ...lock[path] };
    if (entry.link) throw new Error(`${name} is a workspace link in package-lock.json but not a packed package`);
    // The app installs these for production.
    delete entry.dev;
    delete entry.devOptional;
    delete entry.peer;
    out[target] = entry;
    for (const dep of Object.keys(entry.dependencies ?? {})) visit(path, dep);
    for (const dep of Object.keys(entry.optionalDependencies ?? {})) {
      try {
        visit(path, dep);
      } catch {
        // an optional dependency not installed on this platform
      }
    }
    for (const dep of Object.keys(entry.peerDependencies ?? {})) {
      if (!entry.peerDependenciesMeta?.[dep]?.optional) visit(path, dep);
    }
  };

  const rootDeps: Record<string, string> = {};
  for (const p of packed) {
    const spec = `file:${relative(appDir, join(packDir, p.filename))}`;
    rootDeps[p.manifest.name] = spec;
    const m = p.manifest;
    out[`node_modules/${m.name}`] = {
      version: m.version,
      resolved: spec,
      license: m.license,
      ...(m.dependencies ? { dependencies: m.dependencies } : {}),
      ...(m.peerDependencies ? { peerDependencies: m.peerDependencies } : {}),
      ...(m.peerDependenciesMeta ? { peerDependenciesMeta: m.peerDependenciesMeta } : {}),
      ...(m.bin ? { bin: m.bin } : {}),
      ...(m.engines ? { engines: m.engines } : {}),
    };
    for (const dep of Object.keys(m.dependencies ?? {})) visit(p.dir, dep);
    for (const dep of Object.keys(m.peerDependencies ?? {})) if (!m.peerDependenciesMeta?.[dep]?.optional) visit(p.dir, dep);
  }
  for (const name of extra) {
    visit('', name);
    rootDeps[name] = lock[`node_modules/${name}`]?.version ?? '*';
  }

  const manifest = { name: 'proxyless-scratch-app', version: '1.0.0', private: true, dependencies: rootDeps };
  writeFileSync(join(appDir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  const packageLock = {
    name: manifest.name,
    version: manifest.version,
    lockfileVersion: 3,
    requires: true,
    packages: { '': { name: manifest.name, version: manifest.version, dependencies: rootDeps }, ...out },
  };
  writeFileSync(join(appDir, 'package-lock.json'), `${JSON.stringify(packageLock, null, 2)}\n`);
  const result = await npm(['ci', '--offline', '--no-audit', '--no-fund'], appDir);
  if (result.code !== 0) throw new Error(`npm ci --offline in the scratch app exited ${String(result.code)}:\n${result.stderr}`);
  return result;
}
