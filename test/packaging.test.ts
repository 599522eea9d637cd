/**
 * The packages as a user gets them: `npm pack` of every workspace package,
 * installed from the tarballs into apps in a temporary folder outside the
 * repository (offline, from npm's cache), then used the way users use them:
 * an ES module, a CommonJS module, TypeScript consumers with the default
 * `skipLibCheck: false` (node16, nodenext CommonJS, bundler), and the
 * installed `proxyless-register` and `proxyless-gateway` bins, against a real Consul agent.
 *
 * Twice: once with only what the packages require (no optional peer: a type
 * that names `@opentelemetry/api` or `prom-client` fails to check there), and
 * once with the optional peers installed (tracing and Prometheus metrics).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, startConsulAgent, type ConsulAgent } from './support/consul.js';
import {
  cleanEnv,
  installScratchApp,
  packAll,
  readJson,
  repoRoot,
  run,
  workspacePackages,
  type Manifest,
  type PackedPackage,
} from './support/packaging.js';

/** Every import specifier of an entry point a user can write: `@proxyless/core`, `@proxyless/http-client/prometheus`… */
function entryPoints(packed: readonly PackedPackage[]): string[] {
  return packed.flatMap((p) =>
    Object.keys(p.manifest.exports ?? { '.': null })
      .filter((key) => key !== './package.json')
      .map((key) => (key === '.' ? p.manifest.name : `${p.manifest.name}${key.slice(1)}`)),
  );
}

/** Every string in an `exports` map (all conditions, nested). */
function exportTargets(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (value && typeof value === 'object') return Object.values(value).flatMap(exportTargets);
  return [];
}

/** Files under `dir` (recursively) whose names end with `suffix`. */
function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(suffix))
    .map((e) => join(e.parentPath, e.name));
}

/** The package names a module's text imports (static, dynamic, re-exports, require), without Node built-ins. */
function importedPackages(text: string): Set<string> {
  const names = new Set<string>();
  // Statements only (tsc starts each at a line's start), so an error message that quotes `import { x } from '…'` does not count.
  const specifiers = /^\s*(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const match of text.matchAll(specifiers)) {
    const spec = (match[1] ?? match[2] ?? match[3])!;
    if (spec.startsWith('.') || spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]!)) continue;
    const parts = spec.split('/');
    names.add(spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!);
  }
  return names;
}

/** Comments stripped, so TSDoc examples (`import … from '@proxyless/…'`) do not count as imports. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

/** Entry points that load a peer the user installs only to use them. */
const needsPeer: Record<string, string> = { '@proxyless/http-client/prometheus': 'prom-client' };

/** Every third-party optional peer of a packed package (`@opentelemetry/api`, `prom-client`): what the "with peers" app adds. */
function optionalPeers(packed: readonly PackedPackage[]): string[] {
  const ours = new Set(packed.map((p) => p.manifest.name));
  return [...new Set(packed.flatMap((p) => Object.keys(p.manifest.peerDependenciesMeta ?? {}).filter((n) => p.manifest.peerDependenciesMeta?.[n]?.optional && !ours.has(n))))].sort();
}

describe('packaging: the tarballs installed into an app outside the repository', function () {
  this.timeout(120_000);
  let agent: ConsulAgent;
  let tmp: string;
  let packs: string;
  let packed: PackedPackage[];

  before(async function () {
    this.timeout(600_000);
    agent = await startConsulAgent();
    tmp = mkdtempSync(join(tmpdir(), 'proxyless-packaging-'));
    packs = join(tmp, 'packs');
    mkdirSync(packs);
    const t0 = Date.now();
    packed = await packAll(workspacePackages(), packs);
    console.log(`      [measure] npm pack of ${String(packed.length)} packages: ${String(Date.now() - t0)} ms`);
  });

  after(async function () {
    await agent?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /**
   * One app per variant: with only what the packages require (a user who
   * neither traces nor exports Prometheus metrics: the optional peers absent,
   * so a type or a module that leaks one fails here), and with the optional
   * peers installed. Both get typescript and @types/node, a TypeScript user's own tools.
   */
  for (const withPeers of [false, true]) {
    describe(withPeers ? 'with the optional peers installed (prom-client, @opentelemetry/api)' : 'with only the required dependencies (no optional peer installed)', () => {
      let app: string;
      /** The packages this app installs: every tarball; without peers, not those that are only another's optional peer (@proxyless/etcd). */
      let mine: PackedPackage[];
      const installed = (p: PackedPackage): string => join(app, 'node_modules', p.manifest.name);
      /** The entry points this app can load: every one, less those needing a peer it lacks. */
      const usable = (): string[] => entryPoints(mine).filter((s) => withPeers || needsPeer[s] === undefined);

      before(async function () {
        this.timeout(600_000);
        app = join(tmp, withPeers ? 'app-with-peers' : 'app-required-only');
        mkdirSync(app);
        const peers = optionalPeers(packed);
        mine = withPeers ? packed : packed.filter((p) => !packed.some((o) => o.manifest.peerDependenciesMeta?.[p.manifest.name]?.optional));
        const t0 = Date.now();
        await installScratchApp(app, packs, mine, [...(withPeers ? peers : []), 'typescript', '@types/node']);
        console.log(`      [measure] npm ci --offline of the scratch app (${withPeers ? `with ${peers.join(', ')}` : 'no optional peer'}): ${String(Date.now() - t0)} ms`);
        for (const peer of peers) assert.equal(existsSync(join(app, 'node_modules', peer)), withPeers, `${peer} installed: ${String(!withPeers)}`);
      });

      if (withPeers) {
        it('packs every workspace package (found from the root package.json)', () => {
          const names = packed.map((p) => p.manifest.name);
          for (const name of ['@proxyless/core', '@proxyless/registrar', '@proxyless/http-client', '@proxyless/load-report']) assert.ok(names.includes(name), names.join());
          assert.equal(packed.length, workspacePackages().length);
        });

        it('each tarball has the LICENSE, a README, its dist and src, and no tests or build info', () => {
          const license = readFileSync(join(repoRoot, 'LICENSE'), 'utf8');
          assert.match(license, /^MIT License/);
          for (const p of packed) {
            const files = new Set(p.files);
            for (const required of ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'src/index.ts']) {
              assert.ok(files.has(required), `${p.filename} lacks ${required}`);
            }
            assert.equal(readFileSync(join(installed(p), 'LICENSE'), 'utf8'), license, `${p.manifest.name}: LICENSE differs from the repository's`);
            assert.equal(p.manifest.license, 'MIT');
            const stray = p.files.filter((f) => /(^|\/)test\/|\.test\.|tsbuildinfo/.test(f));
            assert.deepEqual(stray, [], `${p.filename} ships ${stray.join(', ')}`);
          }
        });

        it('no path in a published package.json points at a file the tarball lacks', () => {
          for (const p of packed) {
            const m = readJson<Manifest>(join(installed(p), 'package.json'));
            const bins = typeof m.bin === 'string' ? [m.bin] : Object.values(m.bin ?? {});
            const paths = [...exportTargets(m.exports), ...(m.types ? [m.types] : []), ...(m.main ? [m.main] : []), ...bins];
            assert.ok(paths.length > 0, p.manifest.name);
            for (const path of paths) assert.ok(p.files.includes(path.replace(/^\.\//, '')), `${p.manifest.name}: package.json names ${path}, not in ${p.filename}`);
          }
        });

        it('every entry point loads from require() as well as import (a default condition), on Node ^20.19 || >=22.12', () => {
          for (const p of packed) {
            assert.equal(p.manifest.engines?.['node'], '^20.19.0 || >=22.12.0', `${p.manifest.name}: engines.node`);
            for (const [key, target] of Object.entries(p.manifest.exports ?? {})) {
              if (key === './package.json') continue;
              const conditions = Object.keys(target as object);
              assert.ok(conditions.includes('types') && conditions.at(-1) === 'default', `${p.manifest.name} ${key}: ${conditions.join()}`);
            }
          }
        });

        it('source maps carry their sources, and declaration maps point at the shipped src', () => {
          for (const p of packed) {
            const dir = installed(p);
            const maps = filesUnder(join(dir, 'dist'), '.js.map');
            assert.ok(maps.length > 0);
            for (const file of maps) {
              const map = readJson<{ sources: string[]; sourcesContent?: (string | null)[] }>(file);
              assert.equal(map.sourcesContent?.filter((s) => typeof s === 'string').length, map.sources.length, `${file}: sourcesContent`);
            }
            for (const file of filesUnder(join(dir, 'dist'), '.d.ts.map')) {
              const map = readJson<{ sources: string[] }>(file);
              for (const source of map.sources) assert.ok(existsSync(join(file, '..', source)), `${file} points at ${source}, not shipped`);
            }
          }
        });

        it('dependencies are exactly what the code imports; type imports come with their types', () => {
          for (const p of packed) {
            const dir = installed(p);
            const m = p.manifest;
            const declared = new Set([...Object.keys(m.dependencies ?? {}), ...Object.keys(m.peerDependencies ?? {})]);
            const runtime = new Set<string>();
            for (const file of filesUnder(join(dir, 'dist'), '.js')) for (const name of importedPackages(code(readFileSync(file, 'utf8')))) runtime.add(name);
            const typeOnly = [...declared].filter((d) => d.startsWith('@types/'));
            assert.deepEqual([...declared].filter((d) => !d.startsWith('@types/')).sort(), [...runtime].sort(), `${m.name}: dependencies + peerDependencies vs. imports of dist/*.js`);
            const typeImports = new Set<string>();
            for (const file of filesUnder(join(dir, 'dist'), '.d.ts')) for (const name of importedPackages(code(readFileSync(file, 'utf8')))) typeImports.add(name);
            for (const name of typeImports) {
              assert.ok(declared.has(name), `${m.name}: its .d.ts imports ${name}, which is not a dependency`);
              const own = readJson<Manifest & { typings?: string }>(join(app, 'node_modules', name, 'package.json'));
              const shipsTypes = own.types !== undefined || own.typings !== undefined || exportTargets(own.exports).some((t) => t.endsWith('.d.ts') || t.endsWith('.d.mts') || t.endsWith('.d.cts'));
              assert.ok(shipsTypes || declared.has(`@types/${name.replace(/^@([^/]+)\//, '$1__')}`), `${m.name}: ${name}'s types are neither shipped by it nor a dependency (@types/…)`);
            }
            for (const t of typeOnly) {
              const target = t.slice('@types/'.length).replace(/^([^_]+)__/, '@$1/');
              assert.ok(typeImports.has(target), `${m.name}: ${t} is a dependency but no .d.ts imports ${target}`);
            }
            for (const [peer, meta] of Object.entries(m.peerDependenciesMeta ?? {})) assert.equal(meta.optional, true, `${m.name}: peer ${peer}`);
          }
          const http = packed.find((p) => p.manifest.name === '@proxyless/http-client');
          assert.equal(http?.manifest.dependencies?.['prom-client'], undefined, 'prom-client is not installed for every http-client user');
          assert.equal(http?.manifest.peerDependenciesMeta?.['prom-client']?.optional, true);
        });
      }

      /** The same program in both module systems: a registered service answers through the balancing client; metrics through prom-client when installed. */
      const flow = (load: (spec: string) => string): string => `
const { createServer } = ${load('node:http')};
const { ConsulResolver, ClosedError, parseLoadReport } = ${load('@proxyless/core')};
const { Registrar } = ${load('@proxyless/registrar')};
const { LoadReporter, loadReportListener } = ${load('@proxyless/load-report')};
const http = ${load('@proxyless/http-client')};
${withPeers ? `const { registerClientMetrics } = ${load('@proxyless/http-client/prometheus')};\nconst { Registry } = ${load('prom-client')};` : ''}
async function main(name) {
  const reporter = new LoadReporter();
  const server = createServer(loadReportListener(reporter, (req, res) => res.end('hello from ' + name)));
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const registrar = new Registrar({ name, port: server.address().port, address: '127.0.0.1', logger: false });
  await registrar.start({ timeoutMs: 20000 });
  const resolver = new ConsulResolver();
  const client = http.createClient({ service: name, resolver });
  ${withPeers ? 'const registry = new Registry();\n  registerClientMetrics(client, { registry });' : ''}
  const res = await client.text('/');
  const metrics = ${withPeers ? '/proxyless_http_client_/.test(await registry.metrics())' : 'false'};
  const traces = await http.telemetryReady();
  const report = parseLoadReport(res.headers['endpoint-load-metrics'])?.named_metrics?.rif === 0;
  await reporter.close();
  await client.close();
  await resolver.close();
  await registrar.close();
  server.close();
  return { status: res.statusCode, body: res.body, metrics, traces, report, oneCopy: http.ClosedError === ClosedError };
}
`;
      /** Without peers: an entry point that needs one fails to load with an error that names it (not a type error, not a crash elsewhere). */
      const missingPeers = (load: (spec: string) => string): string =>
        withPeers
          ? 'const missing = {};\n'
          : `const missing = {};\n${Object.keys(needsPeer)
              .map((s) => `try { ${load(s)}; missing[${JSON.stringify(s)}] = 'loaded'; } catch (e) { missing[${JSON.stringify(s)}] = String(e.message).includes(${JSON.stringify(needsPeer[s])}) ? 'names its peer' : String(e.message); }`)
              .join('\n')}\n`;
      const expectedMissing = (): Record<string, string> => (withPeers ? {} : Object.fromEntries(Object.keys(needsPeer).map((s) => [s, 'names its peer'])));

      /** Loads every entry point and returns its sorted export names. */
      const everyEntryPoint = (specs: string[], load: (spec: string) => string): string =>
        `const entryPoints = {};\n${specs.map((s) => `entryPoints[${JSON.stringify(s)}] = Object.keys(${load(s)}).sort();`).join('\n')}\n`;

      interface Out {
        entryPoints: Record<string, string[]>;
        flow: Record<string, unknown>;
        missing: Record<string, string>;
      }
      const nodeRun = async (file: string): Promise<Out> => {
        const result = await run(process.execPath, [file], { cwd: app, env: cleanEnv({ CONSUL_HTTP_ADDR: agent.httpAddr }), timeoutMs: 60_000 });
        assert.equal(result.code, 0, `${file}:\n${result.stdout}\n${result.stderr}`);
        return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as Out;
      };
      const expectedFlow = (name: string): Record<string, unknown> => ({ status: 200, body: `hello from ${name}`, metrics: withPeers, traces: withPeers, report: true, oneCopy: true });

      let esmExports: Record<string, string[]> | undefined;

      it(`an ES module imports every entry point and runs a service, a client${withPeers ? ' and metrics' : ''}; telemetryReady() is ${String(withPeers)}`, async () => {
        const specs = usable();
        const file = join(app, 'check.mjs');
        const load = (s: string): string => `await import(${JSON.stringify(s)})`;
        writeFileSync(file, `${everyEntryPoint(specs, load)}${missingPeers(load)}${flow(load)}console.log(JSON.stringify({ entryPoints, missing, flow: await main('packaging-esm-${String(withPeers)}') }));\n`);
        const out = await nodeRun(file);
        assert.deepEqual(out.flow, expectedFlow(`packaging-esm-${String(withPeers)}`));
        assert.deepEqual(out.missing, expectedMissing());
        for (const spec of specs) assert.ok((out.entryPoints[spec]?.length ?? 0) > 0, `${spec} exports nothing`);
        esmExports = out.entryPoints;
      });

      it('a CommonJS module require()s every entry point (the same exports) and runs the same', async () => {
        const specs = usable();
        const file = join(app, 'check.cjs');
        const load = (s: string): string => `require(${JSON.stringify(s)})`;
        writeFileSync(
          file,
          `${everyEntryPoint(specs, load)}${missingPeers(load)}${flow(load)}` +
            `main('packaging-cjs-${String(withPeers)}').then((flow) => console.log(JSON.stringify({ entryPoints, missing, flow })), (e) => { console.error(e); process.exit(1); });\n`,
        );
        const out = await nodeRun(file);
        assert.deepEqual(out.flow, expectedFlow(`packaging-cjs-${String(withPeers)}`));
        assert.deepEqual(out.missing, expectedMissing());
        assert.ok(esmExports, 'the ES module test ran first');
        // A "module.exports" key is how require(esm) hands over a namespace; nothing else differs.
        const cjsExports = Object.fromEntries(Object.entries(out.entryPoints).map(([k, v]) => [k, v.filter((n) => n !== 'module.exports' && n !== '__esModule')]));
        assert.deepEqual(cjsExports, esmExports);
      });

      describe('TypeScript consumers (skipLibCheck: false, strict)', () => {
        const usage = `
import { ConsulResolver, StaticResolver, isProxylessError, type ServiceInstance, type DnsMessage } from '@proxyless/core';
import { Registrar, type RegistrarLogger, type RegistrarOptions } from '@proxyless/registrar';
import { createClient, telemetryReady, type ProxylessClient } from '@proxyless/http-client';
import { LoadReporter, loadReportListener, loadReportExpress, loadReportFastify, type LoadReporterOptions } from '@proxyless/load-report';
import { createGateway, type Gateway, type GatewayStatus } from '@proxyless/gateway';
${withPeers ? "import { registerClientMetrics } from '@proxyless/http-client/prometheus';\nimport { Registry } from 'prom-client';" : ''}

const logger: RegistrarLogger = { warn: (m: string) => void m, info: (m: string) => void m };
const options: RegistrarOptions = { name: 'web', port: 8080, logger };
export const registrar: Registrar = new Registrar(options);
export const resolver = new ConsulResolver();
export const fixed = new StaticResolver({ services: { web: [{ address: '127.0.0.1', port: 8080 }] } });
export const client: ProxylessClient = createClient({ service: 'web', resolver });
${withPeers ? 'export const metrics = registerClientMetrics(client, { registry: new Registry() });' : ''}
export const traces: Promise<boolean> = telemetryReady();
const loadOptions: LoadReporterOptions = { format: 'JSON', probePath: false };
export const load = new LoadReporter(loadOptions);
export const listener = loadReportListener(load, (_req, res) => res.end());
export const adapters = [loadReportExpress(load), loadReportFastify(load)] as const;
export const gateway: Gateway = createGateway({ port: 0, routes: [{ path: '/api/**', service: 'web' }] });
export const services = (s: GatewayStatus): string[] => s.services.map((x) => x.name);
export const first = (list: readonly ServiceInstance[]): string | undefined => list[0]?.id;
export const coded = (e: unknown): boolean => isProxylessError(e, 'ERR_TIMEOUT');
export type Message = DnsMessage;
`;
        const consumers: { name: string; type: 'module' | 'commonjs'; file: string; compilerOptions: Record<string, unknown> }[] = [
          { name: 'node16 (ES module)', type: 'module', file: 'index.ts', compilerOptions: { module: 'node16', moduleResolution: 'node16' } },
          { name: 'bundler', type: 'module', file: 'index.ts', compilerOptions: { module: 'preserve', moduleResolution: 'bundler' } },
          { name: 'nodenext (CommonJS .cts, require of the ES modules)', type: 'commonjs', file: 'index.cts', compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext' } },
        ];
        for (const consumer of consumers) {
          it(`${consumer.name}: tsc --noEmit type-checks every entry point and typical use`, async function () {
            this.timeout(180_000);
            const dir = join(app, `ts-${consumer.name.split(' ')[0]!}`);
            mkdirSync(dir, { recursive: true });
            writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${consumer.file}`, private: true, type: consumer.type }));
            const every = usable().map((s, i) => `import * as entry${String(i)} from '${s}';\nexport { entry${String(i)} };`).join('\n');
            writeFileSync(join(dir, consumer.file), `${every}\n${usage}`);
            writeFileSync(
              join(dir, 'tsconfig.json'),
              JSON.stringify({
                compilerOptions: { ...consumer.compilerOptions, target: 'ES2022', strict: true, skipLibCheck: false, noEmit: true, types: ['node'] },
                files: [consumer.file],
              }),
            );
            const result = await run(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '-p', dir, '--pretty', 'false'], { cwd: dir, timeoutMs: 170_000 });
            assert.equal(result.code, 0, `tsc (${consumer.name}):\n${result.stdout}${result.stderr}`);
          });
        }
      });

      if (!withPeers) {
        it('the installed proxyless-gateway bin answers --help, and a bad config is one line naming the key and exit code 2', async () => {
          const bin = join(app, 'node_modules', '.bin', 'proxyless-gateway');
          const help = await run(bin, ['--help'], { cwd: app, env: cleanEnv({}), timeoutMs: 30_000 });
          assert.equal(help.code, 0, help.stderr);
          assert.match(help.stdout, /^Usage: proxyless-gateway \[--config <file>\]/);
          writeFileSync(join(app, 'gateway.json'), JSON.stringify({ port: 0, rotues: [] }));
          const bad = await run(bin, ['--config', join(app, 'gateway.json')], { cwd: app, env: cleanEnv({}), timeoutMs: 30_000 });
          assert.equal(bad.code, 2, bad.stderr);
          assert.equal(bad.stderr, 'proxyless-gateway: Invalid option "rotues": not an option of the gateway config; did you mean "routes"?\n');
        });

        it('the installed proxyless-register bin registers a command, and on SIGTERM deregisters and exits with its code', async () => {
          const port = await freePort();
          const bin = join(app, 'node_modules', '.bin', 'proxyless-register');
          const server = `require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1')`;
          const child = spawn(bin, ['--name', 'packaging-bin', '--port', String(port), '--address', '127.0.0.1', '--ttl', '3s', '--drain-delay', '200ms', '--', process.execPath, '-e', server], {
            cwd: app,
            env: cleanEnv({ CONSUL_HTTP_ADDR: agent.httpAddr }),
            stdio: ['ignore', 'ignore', 'pipe'],
          });
          let stderr = '';
          child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
          const exited = new Promise<number | null>((ok) => child.once('exit', (code) => setImmediate(() => ok(code))));
          try {
            const deadline = Date.now() + 30_000;
            let id: string | undefined;
            while (id === undefined) {
              assert.ok(Date.now() < deadline, `not passing in 30 s:\n${stderr}`);
              const res = await fetch(`${agent.httpUrl}/v1/health/service/packaging-bin?passing`);
              id = ((await res.json()) as { Service: { ID: string; Port: number } }[]).find((e) => e.Service.Port === port)?.Service.ID;
              if (id === undefined) await sleep(100);
            }
            assert.equal(await (await fetch(`http://127.0.0.1:${String(port)}/`)).text(), 'ok');
            child.kill('SIGTERM');
            const code = await Promise.race([exited, sleep(20_000, 'still running')]);
            assert.equal(code, 143, stderr);
            assert.match(stderr.trimEnd().split('\n').at(-1)!, /exiting with code 143, the command's \(killed by SIGTERM\)/);
            assert.equal((await fetch(`${agent.httpUrl}/v1/agent/service/${id}`)).status, 404, 'deregistered');
          } finally {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          }
        });
      }
    });
  }
});
