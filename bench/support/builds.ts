/**
 * Bench helpers: the built packages of a checkout (this tree or a BEFORE one).
 *
 * Benchmarks run the built packages (`dist/`), never the sources through tsx:
 * tsx's keepNames transform adds a `__name()` call to every named closure
 * (~3.5 µs per request in profiles). {@link requireBuilt} stops a run whose
 * packages resolve to their sources or whose `dist/` is missing or older than
 * `src/`; {@link loadBuild} imports one checkout's build by path (its own
 * core, undici and opossum), for a worker process that runs that build alone.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The checkout this bench file belongs to. */
export const THIS_TREE = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** One checkout's built core and http-client, loaded in this process. */
export interface Build {
  dir: string;
  core: typeof import('@proxyless/core');
  http: typeof import('@proxyless/http-client');
  /** Versions of what the build runs on (node, undici, opossum). */
  versions: string;
}

function newestMtime(dir: string, keep: (name: string) => boolean): { ms: number; file: string } {
  let best = { ms: 0, file: '' };
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !keep(entry.name)) continue;
    const file = join(entry.parentPath, entry.name);
    const ms = statSync(file).mtimeMs;
    if (ms > best.ms) best = { ms, file };
  }
  return best;
}

/**
 * Throws, naming the fix, unless every package of `dir` is built and its
 * `dist/` is at least as new as its `src/` (and, for this tree, unless the
 * workspace packages resolve to `dist/`: no `--conditions=proxyless-source`).
 */
export function requireBuilt(dir: string = THIS_TREE): void {
  if (dir === THIS_TREE) {
    const resolved = fileURLToPath(import.meta.resolve('@proxyless/core'));
    if (!resolved.includes(join('packages', 'core', 'dist'))) {
      throw new Error(
        `@proxyless/core resolves to ${resolved}: benchmarks run the built packages, not the sources. ` +
          'Run them without --conditions=proxyless-source (npm run bench -- bench/<file>, or node --import tsx bench/<file>).',
      );
    }
  }
  const packages = join(dir, 'packages');
  if (!existsSync(packages)) throw new Error(`${dir} is not a Proxyless checkout (no packages/ folder)`);
  for (const name of readdirSync(packages)) {
    const pkg = join(packages, name);
    if (!existsSync(join(pkg, 'src'))) continue;
    const built = join(pkg, 'dist', 'index.js');
    if (!existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` in ${dir} first (benchmarks run the built packages)`);
    const src = newestMtime(join(pkg, 'src'), (f) => f.endsWith('.ts'));
    const dist = newestMtime(join(pkg, 'dist'), (f) => f.endsWith('.js') || f === '.tsbuildinfo');
    if (src.ms > dist.ms) {
      throw new Error(
        `${src.file} is newer than ${join(pkg, 'dist')} (built ${new Date(dist.ms).toISOString()}): run \`npm run build\` in ${dir} first (benchmarks run the built packages)`,
      );
    }
  }
}

function packageVersion(fromFile: string, name: string): string {
  try {
    const main = createRequire(fromFile).resolve(name);
    const root = main.slice(0, main.lastIndexOf(`/node_modules/${name}/`) + `/node_modules/${name}/`.length);
    return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Imports the built core and http-client of `dir` (after {@link requireBuilt}). One build per process. */
export async function loadBuild(dir: string): Promise<Build> {
  requireBuilt(dir);
  const coreEntry = join(dir, 'packages', 'core', 'dist', 'index.js');
  const httpEntry = join(dir, 'packages', 'http-client', 'dist', 'index.js');
  const core = (await import(pathToFileURL(coreEntry).href)) as Build['core'];
  const http = (await import(pathToFileURL(httpEntry).href)) as Build['http'];
  const versions = `node ${process.version}, undici ${packageVersion(httpEntry, 'undici')}, opossum ${packageVersion(httpEntry, 'opossum')}`;
  return { dir, core, http, versions };
}

/** `dir at <commit> <subject>` (plus uncommitted changes, if any), for the report. */
export function describeCheckout(dir: string): string {
  try {
    const head = execFileSync('git', ['-C', dir, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim();
    return `${dir} at ${head.length > 90 ? `${head.slice(0, 90)}…` : head}${dirty ? ' (with uncommitted changes)' : ''}`;
  } catch {
    return dir;
  }
}

/** The checkouts to compare: this tree, plus `BENCH_CLIENT_BEFORE` when set (both checked for a fresh build). */
export function checkoutsToCompare(): { label: string; dir: string }[] {
  requireBuilt(THIS_TREE);
  const before = process.env['BENCH_CLIENT_BEFORE'];
  if (before === undefined || before === '') return [{ label: 'this build', dir: THIS_TREE }];
  const dir = resolve(before);
  requireBuilt(dir);
  return [
    { label: 'this build', dir: THIS_TREE },
    { label: 'BEFORE', dir },
  ];
}
