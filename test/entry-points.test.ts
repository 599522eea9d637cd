/**
 * The main entry point of each package is its supported API: nothing it
 * exports is tagged `@internal` (those helpers live on the package's
 * `internal` subpath, for the sibling packages), and the `internal` subpath
 * is never a typedoc entry point.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import ts from 'typescript';
import { repoRoot, workspacePackages } from './support/packaging.js';

/** Export names of `file` whose declaration carries an `@internal` tag. */
function internalExports(file: string): string[] {
  const program = ts.createProgram([file], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, noEmit: true, customConditions: ['proxyless-source'] });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file);
  assert.ok(source, file);
  const module = checker.getSymbolAtLocation(source);
  assert.ok(module, `${file} is not a module`);
  const tagged: string[] = [];
  for (const exported of checker.getExportsOfModule(module)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const internal = (symbol.declarations ?? []).some((d) => ts.getJSDocTags(d).some((t) => t.tagName.text === 'internal'));
    if (internal) tagged.push(exported.name);
  }
  return tagged.sort();
}

describe('entry points: the main entries carry no @internal helper', function () {
  this.timeout(60_000);
  for (const { manifest, dir } of workspacePackages()) {
    it(`${manifest.name}: nothing its src/index.ts exports is tagged @internal`, () => {
      assert.deepEqual(internalExports(join(repoRoot, dir, 'src/index.ts')), [], `move these to ${manifest.name}/internal (src/internal.ts) and import them from there`);
    });

    it(`${manifest.name}: an internal subpath, if any, is not documented (not a typedoc entry point)`, () => {
      const entries = (manifest as { typedocOptions?: { entryPoints?: string[] } }).typedocOptions?.entryPoints ?? [];
      assert.ok(!entries.some((e) => /internal/.test(e)), entries.join());
    });
  }
});
