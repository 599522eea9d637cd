/**
 * Runs benchmarks: every bench/*.bench.ts given on the command line, or all of them.
 * Each module exports `async function run(): Promise<void>`.
 *
 * Run: npm run bench [-- bench/http-client.bench.ts …] — on the built
 * packages (`npm run build` first): it stops, naming the fix, when a
 * package's dist/ is missing or older than its src/, or when the packages
 * resolve to their sources (--conditions=proxyless-source).
 */
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { requireBuilt } from './support/builds.js';

requireBuilt();
const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const files = args.length > 0 ? args.map((a) => resolve(a)) : readdirSync(here).filter((f) => f.endsWith('.bench.ts')).sort().map((f) => join(here, f));
for (const file of files) {
  const mod = (await import(pathToFileURL(file).href)) as { run?: () => Promise<void> };
  if (typeof mod.run !== 'function') throw new Error(`${file} does not export run()`);
  await mod.run();
}
