/**
 * The API docs a newcomer reads: every class (or interface) that emits typed
 * events lists each of them in its own TSDoc (the "Events" section, with a
 * link to the member of its events interface), so the class page shows what
 * it emits, not only the `XxxEvents` interface.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, workspacePackages } from './support/packaging.js';

/** The keys of `export interface <name> { key: [...]; ... }` in `text`. */
function eventKeys(text: string, name: string): string[] | undefined {
  const start = text.indexOf(`export interface ${name} {`);
  if (start < 0) return undefined;
  const body = text.slice(start, text.indexOf('\n}', start));
  return [...body.matchAll(/^\s+(\w+): \[/gm)].map((m) => m[1]!);
}

describe('API docs', () => {
  const sources = workspacePackages().flatMap((p) =>
    // Recursive: http-client's sources sit in folders by role.
    readdirSync(join(repoRoot, p.dir, 'src'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => ({ file: `${p.dir}/src/${f}`, text: readFileSync(join(repoRoot, p.dir, 'src', f), 'utf8') })),
  );
  const emitters = sources.flatMap(({ file, text }) =>
    [...text.matchAll(/^export (?:class|interface) (\w+)(?: extends EventEmitter<(\w+Events)>)/gm)].map((m) => ({ file, text, name: m[1]!, events: m[2]!, at: m.index })),
  );

  it('finds the public event emitters (ProxylessClient, Registrar, ShutdownCoordinator, CatalogWatch, ServiceWatch, EtcdResolver)', () => {
    assert.deepEqual(emitters.map((e) => e.name).sort(), ['CatalogWatch', 'EtcdResolver', 'ProxylessClient', 'Registrar', 'ServiceWatch', 'ShutdownCoordinator']);
  });

  it('each emitter documents every event it emits in its own TSDoc, linked to its events interface', () => {
    const missing: string[] = [];
    for (const e of emitters) {
      const keys = sources.map((s) => eventKeys(s.text, e.events)).find((k) => k !== undefined);
      assert.ok(keys && keys.length > 0, `${e.events} not found`);
      const doc = e.text.slice(e.text.lastIndexOf('/**', e.at), e.at);
      assert.match(doc, /## Events/, `${e.file}: ${e.name} has no "## Events" section`);
      for (const key of keys) if (!doc.includes(`{@link ${e.events}.${key} |`)) missing.push(`${e.file}: ${e.name} does not list '${key}'`);
    }
    assert.deepEqual(missing, []);
  });
});
