/**
 * Every example runs as written.
 *
 * - The commands of examples/README.md (and examples/** /README.md) marked
 *   `<!-- example: command <id> -->` are run verbatim (`sh -c`, repository root),
 *   with only the environment pointing at a throw-away Consul dev agent.
 * - The ```ts blocks of every README marked `<!-- example: runs -->` (must exit 0
 *   by itself) or `<!-- example: serves -->` (must register a passing instance,
 *   then deregister and exit 0 on SIGTERM; it gets a free port in `PORT`) are
 *   written to a new app under os.tmpdir() set up as the root README's
 *   `<!-- example: install -->` block says (the packed tarballs, the registry
 *   packages it names at the lockfile's versions, offline; `"type": "module"`),
 *   type-checked with its tsc under the root README's `<!-- example: tsconfig -->`
 *   tsconfig.json and run with tsx; the app is removed afterwards.
 * - The ```dockerfile blocks marked `<!-- example: dockerfile <id> -->` are run
 *   without Docker: their exec-form `ENTRYPOINT` + `CMD` as one argv, the
 *   `proxyless-register` CLI from source, port 8080 replaced by a free one.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, startConsulAgent, type ConsulAgent } from './support/consul.js';
import { startEtcd, type EtcdServer } from './support/etcd.js';
import { EtcdClient } from '@proxyless/etcd';
import { installScratchApp, npm, packAll, readJson, workspacePackages } from './support/packaging.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// ---------------------------------------------------------------- README parsing

interface MarkedBlock {
  file: string;
  line: number;
  marker: string;
  lang: string;
  code: string;
}

/** Fenced blocks preceded (blank lines allowed) by `<!-- example: … -->`. */
function markedBlocks(file: string): MarkedBlock[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const blocks: MarkedBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const marker = /^\s*<!--\s*example:\s*(.+?)\s*-->\s*$/.exec(lines[i]!)?.[1];
    if (marker === undefined) continue;
    let j = i + 1;
    while (j < lines.length && lines[j]!.trim() === '') j++;
    const fence = /^(\s*)(```+|~~~+)\s*([\w-]*)/.exec(lines[j] ?? '');
    assert.ok(fence, `${relative(repoRoot, file)}:${String(i + 1)}: "<!-- example: ${marker} -->" is not followed by a fenced code block`);
    const close = fence[2]!;
    const body: string[] = [];
    let k = j + 1;
    while (k < lines.length && !lines[k]!.trim().startsWith(close)) body.push(lines[k++]!);
    blocks.push({ file, line: j + 1, marker, lang: fence[3] ?? '', code: body.join('\n') });
    i = k;
  }
  return blocks;
}

function readmes(): string[] {
  const found: string[] = [];
  const root = join(repoRoot, 'README.md');
  if (existsSync(root)) found.push(root);
  for (const pkg of readdirSync(join(repoRoot, 'packages'))) {
    const file = join(repoRoot, 'packages', pkg, 'README.md');
    if (existsSync(file)) found.push(file);
  }
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name === 'README.md') found.push(path);
    }
  };
  walk(join(repoRoot, 'examples'));
  return found;
}

const allBlocks = readmes().flatMap(markedBlocks);
const where = (b: MarkedBlock): string => `${relative(repoRoot, b.file)}:${String(b.line)}`;

/** One command line per `<!-- example: command <id> -->`; the same id in two READMEs must say the same thing. */
const commands = new Map<string, { command: string; at: string }>();
for (const block of allBlocks) {
  const id = /^command\s+([\w-]+)$/.exec(block.marker)?.[1];
  if (id === undefined) continue;
  const command = block.code.trim();
  assert.ok(!command.includes('\n'), `${where(block)}: a command block holds one command line`);
  const seen = commands.get(id);
  if (seen) assert.equal(command, seen.command, `command "${id}" differs between ${seen.at} and ${where(block)}`);
  else commands.set(id, { command, at: where(block) });
}
/** `runs`, `runs needs=users,orders` (those services are up first: examples/service instances) or `serves`. */
const runnable = /^(runs|serves)(?:\s+needs=([\w-]+(?:,[\w-]+)*))?$/;
const codeBlocks = allBlocks.filter((b) => runnable.test(b.marker));
const kindOf = (b: MarkedBlock): { kind: string; needs: string[] } => {
  const m = runnable.exec(b.marker)!;
  return { kind: m[1]!, needs: m[2]?.split(',') ?? [] };
};
for (const block of allBlocks) {
  const known = runnable.test(block.marker) || ['install', 'tsconfig'].includes(block.marker) || block.marker.startsWith('command ') || block.marker.startsWith('dockerfile ');
  assert.ok(known, `${where(block)}: unknown marker "<!-- example: ${block.marker} -->" (runs [needs=svc,…] | serves | install | tsconfig | command <id> | dockerfile <id>)`);
  if (!runnable.test(block.marker)) continue;
  assert.ok(['ts', 'typescript'].includes(block.lang), `${where(block)}: runnable blocks are \`\`\`ts blocks`);
}

/** `<!-- example: dockerfile <id> -->` blocks: the argv their exec-form ENTRYPOINT and CMD make together. */
const dockerfiles = new Map<string, { argv: string[]; at: string }>();
for (const block of allBlocks) {
  const id = /^dockerfile\s+([\w-]+)$/.exec(block.marker)?.[1];
  if (id === undefined) continue;
  const execForm = (instruction: string): string[] => {
    const line = new RegExp(`^${instruction}\\s+(\\[.*\\])\\s*$`, 'm').exec(block.code)?.[1];
    assert.ok(line, `${where(block)}: no exec-form ${instruction} [...]`);
    return JSON.parse(line) as string[];
  };
  dockerfiles.set(id, { argv: [...execForm('ENTRYPOINT'), ...execForm('CMD')], at: where(block) });
}

/**
 * The root README's `<!-- example: install -->` block, as the test follows it:
 * the tarballs and registry packages its `npm install` lines name, and its
 * other `npm` lines (`npm pkg set type=module`) to run in the app afterwards.
 * (`git clone`, `npm run pack`, `mkdir`/`npm init`: the test packs and makes the app itself.)
 */
function installSteps(): { tarballs: string[]; registry: { name: string; range: string | undefined }[]; npm: string[][]; at: string } {
  const block = allBlocks.find((b) => b.marker === 'install');
  assert.ok(block, 'README.md has no "<!-- example: install -->" block');
  const lines = block.code.replace(/\\\n/g, ' ').split('\n').map((l) => l.replace(/\s#.*$/, '').trim());
  const out = { tarballs: [] as string[], registry: [] as { name: string; range: string | undefined }[], npm: [] as string[][], at: where(block) };
  for (const line of lines) {
    for (const part of line.split('&&').map((p) => p.trim().split(/\s+/))) {
      if (part[0] !== 'npm') continue;
      if (part[1] === 'install') {
        for (const arg of part.slice(2).filter((a) => !a.startsWith('-'))) {
          if (arg.endsWith('.tgz')) out.tarballs.push(basename(arg));
          else {
            const at = arg.lastIndexOf('@');
            out.registry.push(at > 0 ? { name: arg.slice(0, at), range: arg.slice(at + 1) } : { name: arg, range: undefined });
          }
        }
      } else if (part[1] === 'pkg') out.npm.push(part.slice(1));
    }
  }
  return out;
}

function command(id: string): string {
  const entry = commands.get(id);
  assert.ok(entry, `examples/README.md has no "<!-- example: command ${id} -->" block`);
  return entry.command;
}

// ---------------------------------------------------------------- processes

interface Running {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the match once the output matches. */
  waitFor: (pattern: RegExp, timeoutMs: number, what: string) => Promise<RegExpExecArray>;
}

const started: ChildProcess[] = [];

/** Child processes of `pid`, recursively (Linux /proc). */
function descendants(pid: number): number[] {
  try {
    const children = readFileSync(`/proc/${String(pid)}/task/${String(pid)}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return [...children, ...children.flatMap(descendants)];
  } catch {
    return [];
  }
}

function killTree(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  // The registrar CLI starts its command in a process group of its own: collect the whole tree first.
  for (const pid of [...descendants(child.pid), child.pid]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * Runs a README command line as written. `exec env` makes the spawned
 * process become the command itself (dash would otherwise stay in between),
 * so the signal we send reaches it as it would from a terminal or `docker stop`,
 * and its exit code is the command's.
 */
function run(commandLine: string, env: Record<string, string | undefined>, file = 'sh', args = ['-c', `exec env ${commandLine}`], cwd = repoRoot): Running {
  const child = spawn(file, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    out += chunk.toString();
    for (const l of listeners) l();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((ok) => {
    child.once('exit', (code, signal) => {
      // Let the last output chunks arrive.
      setImmediate(() => ok({ code, signal }));
    });
  });
  const waitFor = (pattern: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> =>
    new Promise((ok, fail) => {
      const check = (): boolean => {
        const m = pattern.exec(out);
        if (m) {
          cleanup();
          ok(m);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        cleanup();
        fail(new Error(`${what}: no ${String(pattern)} in ${String(timeoutMs)} ms; output:\n${out}`));
      }, timeoutMs);
      const onExit = (): void => {
        if (!check()) {
          cleanup();
          fail(new Error(`${what}: exited (${String(child.exitCode ?? child.signalCode)}) before ${String(pattern)}; output:\n${out}`));
        }
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        listeners.delete(listener);
        child.off('exit', onExit);
      };
      const listener = (): void => void check();
      if (check()) return;
      listeners.add(listener);
      child.once('exit', onExit);
    });
  return { child, output: () => out, exited, waitFor };
}

async function exitWithin(p: Running, timeoutMs: number, what: string): Promise<number | null> {
  const result = await Promise.race([p.exited, sleep(timeoutMs, undefined, { ref: false })]);
  assert.ok(result, `${what}: still running after ${String(timeoutMs)} ms; output:\n${p.output()}`);
  return result.code ?? (result.signal ? -1 : null);
}

/** Thrown by a condition of {@link until} to stop waiting at once. */
class GiveUp extends Error {}

/** Polls `condition` until it returns a value other than undefined, or fails at the deadline. */
async function until<T>(condition: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await condition();
      if (value !== undefined) return value;
    } catch (error) {
      if (error instanceof GiveUp) throw error;
      last = error;
    }
    await sleep(100);
  }
  throw new Error(`${what}: not true within ${String(timeoutMs)} ms${last instanceof Error ? ` (last error: ${last.message})` : ''}`);
}

// ---------------------------------------------------------------- Consul

interface AgentService {
  ID: string;
  Service: string;
  Port: number;
  Address: string;
}

let agent: ConsulAgent;

async function agentServices(): Promise<Record<string, AgentService>> {
  const res = await fetch(`${agent.httpUrl}/v1/agent/services`);
  return (await res.json()) as Record<string, AgentService>;
}

async function passing(service: string): Promise<AgentService[]> {
  const res = await fetch(`${agent.httpUrl}/v1/health/service/${service}?passing=true`);
  return ((await res.json()) as { Service: AgentService }[]).map((e) => e.Service);
}

const consulEnv = (): Record<string, string> => ({
  CONSUL_HTTP_ADDR: agent.httpAddr,
  CONSUL_DNS_ADDR: `${agent.dns.host}:${String(agent.dns.port)}`,
});

// ---------------------------------------------------------------- tests

describe('examples run as written', function () {
  this.timeout(90_000);

  before(async function () {
    this.timeout(60_000);
    agent = await startConsulAgent();
  });

  after(async () => {
    for (const child of started) killTree(child);
    await agent?.stop();
  });

  describe('client and DNS client against two instances of examples/service', () => {
    const services: { run: Running; id: string; port: number }[] = [];

    before(async function () {
      this.timeout(60_000);
      for (let n = 0; n < 2; n++) {
        const p = run(command('service'), { ...consulEnv(), PORT: '0' });
        services.push({ run: p, id: '', port: 0 });
      }
      for (const s of services) {
        const m = await s.run.waitFor(/READY (\S+) (\d+)/, 45_000, 'examples/service');
        s.id = m[1]!;
        s.port = Number(m[2]);
      }
      await until(async () => ((await passing('hello')).length === 2 ? true : undefined), 15_000, 'two passing hello instances');
    });

    after(async function () {
      this.timeout(30_000);
      // Gracefully (deregistered, not left behind as passing until their TTL runs out), then by force.
      await Promise.all(
        services.map(async (s) => {
          if (s.run.child.exitCode !== null || s.run.child.signalCode !== null) return;
          s.run.child.kill('SIGTERM');
          await Promise.race([s.run.exited, sleep(15_000, undefined, { ref: false })]);
          killTree(s.run.child);
        }),
      );
    });

    it('client: every call succeeds, answered by the registered instances, and the process exits by itself', async () => {
      const p = run(command('client'), consulEnv());
      const code = await exitWithin(p, 45_000, 'examples/client');
      const out = p.output();
      assert.equal(code, 0, out);
      assert.match(out, /hello: 10\/10 ok/);
      const answered = [...out.matchAll(/^#\d+ 200 from (\S+)/gm)].map((m) => m[1]!);
      assert.equal(answered.length, 10, out);
      const ids = services.map((s) => s.id);
      for (const who of answered) assert.ok(ids.includes(who), `answer from ${who}, not one of ${ids.join(', ')}:\n${out}`);
    });

    it('DNS client: prints both instances from SRV records, then the removal of one seen by its watch', async () => {
      const p = run(command('dns-client'), consulEnv());
      await p.waitFor(/watching hello/, 45_000, 'examples/dns-client');
      const resolved = /RFC 2782 order:\n((?: {2}\d+\. .*\n)+)/.exec(p.output());
      assert.ok(resolved, p.output());
      for (const s of services) assert.match(resolved[1]!, new RegExp(`127\\.0\\.0\\.1:${String(s.port)} `), p.output());
      // Stop one instance while the watch runs: it leaves the passing set at once (drain).
      const leaving = services[1]!;
      leaving.run.child.kill('SIGTERM');
      await p.waitFor(new RegExp(`^ {2}- 127\\.0\\.0\\.1:${String(leaving.port)} `, 'm'), 15_000, 'DNS watch removal');
      const code = await exitWithin(p, 20_000, 'examples/dns-client');
      assert.equal(code, 0, p.output());
      assert.equal(await exitWithin(leaving.run, 20_000, 'examples/service'), 0, leaving.run.output());
    });
  });

  it('service-fastify: registers, serves, and on SIGTERM deregisters and exits 0', async () => {
    const p = run(command('service-fastify'), { ...consulEnv(), SERVICE_NAME: 'fastify-example', PORT: '0' });
    const m = await p.waitFor(/READY (\S+) (\S+):(\d+)/, 45_000, 'examples/service-fastify');
    const [, id, address, port] = m;
    const healthy = await until(async () => {
      const list = await passing('fastify-example');
      return list.some((s) => s.ID === id) ? list : undefined;
    }, 15_000, 'fastify instance passing');
    assert.equal(healthy.find((s) => s.ID === id)?.Port, Number(port));
    const res = await fetch(`http://${address!}:${port!}/`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { instance: id, port: Number(port) });
    p.child.kill('SIGTERM');
    assert.equal(await exitWithin(p, 30_000, 'examples/service-fastify after SIGTERM'), 0, p.output());
    assert.match(p.output(), new RegExp(`DEREGISTERED ${id!}`));
    assert.equal((await agentServices())[id!], undefined, 'still registered after exit');
  });

  it('registrar README Dockerfile: proxyless-register in front of python3 -m http.server registers it passing, and deregisters on SIGTERM', async () => {
    const example = dockerfiles.get('python-http-server');
    assert.ok(example, 'packages/registrar/README.md has no "<!-- example: dockerfile python-http-server -->" block');
    const [cli, ...args] = example.argv;
    assert.equal(cli, 'proxyless-register', example.at);
    // As written, but the CLI from source and a free port for the image's 8080.
    const port = String(await freePort());
    const argv = ['--conditions=proxyless-source', '--import', 'tsx', join(repoRoot, 'packages/registrar/src/cli.ts'), ...args.map((a) => (a === '8080' ? port : a))];
    const name = argv[argv.indexOf('--name') + 1]!;
    const p = run('', consulEnv(), process.execPath, argv);
    try {
      const t0 = Date.now();
      const [instance] = await until(async () => {
        if (p.child.exitCode !== null) throw new GiveUp(`exited ${String(p.child.exitCode)}:\n${p.output()}`);
        const list = (await passing(name)).filter((s) => s.Port === Number(port));
        return list.length > 0 ? list : undefined;
      }, 30_000, `${example.at}: ${name} on port ${port} registered and passing; output:\n${p.output().split('\n').slice(-15).join('\n')}`);
      console.log(`      [measure] ${example.at}: CLI spawn → passing: ${String(Date.now() - t0)} ms`);
      assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
      p.child.kill('SIGTERM');
      assert.equal(await exitWithin(p, 20_000, 'proxyless-register after SIGTERM'), 143, p.output());
      assert.equal((await agentServices())[instance!.ID], undefined, `still registered after exit:\n${p.output()}`);
    } finally {
      killTree(p.child);
    }
  });

  describe('container entrypoint (the Dockerfile ENTRYPOINT command line, without Docker)', () => {
    it('Dockerfile runs entrypoint.sh in front of the app, and entrypoint.sh execs proxyless-register', () => {
      const dockerfile = readFileSync(join(repoRoot, 'examples/container/Dockerfile'), 'utf8');
      assert.match(dockerfile, /^ENTRYPOINT \["\.\/entrypoint\.sh"\]$/m);
      assert.match(dockerfile, /^CMD \["node", "server\.js"\]$/m);
      assert.match(command('container'), /examples\/container\/entrypoint\.sh node examples\/container\/server\.js$/);
      const script = readFileSync(join(repoRoot, 'examples/container/entrypoint.sh'), 'utf8');
      assert.match(script, /^exec \$\{PROXYLESS_REGISTER:-proxyless-register\}/m);
    });

    for (const appExitCode of [0, 3]) {
      it(`registers the app, and on SIGTERM deregisters before the app is signalled and exits with its code (${String(appExitCode)})`, async () => {
        const port = await freePort();
        const name = `container-example-${String(appExitCode)}`;
        const p = run(command('container'), { ...consulEnv(), PORT: String(port), SERVICE_NAME: name, APP_EXIT_CODE: String(appExitCode), DRAIN_DELAY: '200ms' });
        const [instance] = await until(async () => {
          const list = await passing(name);
          return list.length > 0 ? list : undefined;
        }, 45_000, `${name} registered and passing`);
        assert.equal(instance!.Port, port);
        const res = await fetch(`http://127.0.0.1:${String(port)}/`);
        assert.equal(res.status, 200);
        assert.equal(((await res.json()) as { app: string }).app, 'container-example');

        p.child.kill('SIGTERM');
        await p.waitFor(/app: SIGTERM, closing/, 20_000, 'app signalled');
        // The CLI passes the signal on only after deregistering.
        assert.equal((await agentServices())[instance!.ID], undefined, `still registered when the app got SIGTERM:\n${p.output()}`);
        assert.equal(await exitWithin(p, 20_000, 'proxyless-register after SIGTERM'), appExitCode, p.output());
      });
    }
  });

  describe('README code blocks, in a new app set up as the README Install says (the tarballs, not the workspace)', () => {
    // Outside the repository (a run never leaves files in it, two runs never share a directory).
    let tmpDir = '';
    let app = '';

    const blockFile = (n: number): string => join(app, `block-${String(n)}.ts`);
    /** A block as a user runs it: `npx tsx app.ts` in the app (tsx's `node --import tsx` form, so signals reach the program itself). */
    const runBlock = (n: number, env: Record<string, string>): Running => run('', { NODE_OPTIONS: undefined, ...env }, process.execPath, ['--import', 'tsx', blockFile(n)], app);

    before(async function () {
      this.timeout(600_000);
      tmpDir = mkdtempSync(join(tmpdir(), 'proxyless-readme-blocks-'));
      const packs = join(tmpDir, 'packs');
      app = join(tmpDir, 'your-app');
      mkdirSync(packs);
      mkdirSync(app);
      const t0 = Date.now();
      const packed = await packAll(workspacePackages(), packs);
      const steps = installSteps();
      const tarballs = steps.tarballs.map((file) => {
        const p = packed.find((q) => q.filename === file);
        assert.ok(p, `${steps.at}: installs ${file}, but npm run pack made ${packed.map((q) => q.filename).join(', ')}`);
        return p;
      });
      const lock = readJson<{ packages: Record<string, { version?: string }> }>(join(repoRoot, 'package-lock.json')).packages;
      for (const { name, range } of steps.registry) {
        const version = lock[`node_modules/${name}`]?.version;
        assert.ok(version, `${steps.at}: installs ${name}, which the repository's lockfile does not have (the test installs offline)`);
        if (range !== undefined) assert.ok(version === range || version.startsWith(`${range}.`), `${steps.at}: ${name}@${range}, the repository uses ${version}`);
      }
      await installScratchApp(app, packs, tarballs, steps.registry.map((r) => r.name));
      for (const args of steps.npm) {
        const r = await npm(args, app);
        assert.equal(r.code, 0, `npm ${args.join(' ')}:\n${r.stderr}`);
      }
      console.log(`      [measure] pack + install of the README's app (${tarballs.length} tarballs, ${steps.registry.map((r) => r.name).join(', ')}): ${String(Date.now() - t0)} ms`);
      // Each block is a module of its own (`export {}`), so top-level names do not clash.
      for (const [n, block] of codeBlocks.entries()) writeFileSync(blockFile(n), `// ${where(block)}\n${block.code}\nexport {};\n`);
      // The README's own tsconfig.json: a new app has none, and `npx tsc --noEmit` without one only prints tsc's help.
      const tsconfig = allBlocks.find((b) => b.marker === 'tsconfig');
      assert.ok(tsconfig, 'README.md has no "<!-- example: tsconfig -->" block (the tsconfig.json that `npx tsc --noEmit` checks the blocks with)');
      const { compilerOptions } = JSON.parse(tsconfig.code) as { compilerOptions: Record<string, unknown> };
      assert.deepEqual(
        { module: compilerOptions['module'], strict: compilerOptions['strict'], skipLibCheck: compilerOptions['skipLibCheck'] },
        { module: 'nodenext', strict: true, skipLibCheck: false },
        `${where(tsconfig)}: the README's tsconfig.json checks under nodenext, strict, skipLibCheck: false`,
      );
      writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['block-*.ts'] }));
    });
    /** Services a block needs, stopped after each block. */
    const helpers: Running[] = [];
    afterEach(async function () {
      this.timeout(30_000);
      await Promise.all(
        helpers.splice(0).map(async (h) => {
          if (h.child.exitCode !== null || h.child.signalCode !== null) return;
          h.child.kill('SIGTERM');
          await Promise.race([h.exited, sleep(15_000, undefined, { ref: false })]);
          killTree(h.child);
        }),
      );
    });
    after(() => {
      if (tmpDir !== '') rmSync(tmpDir, { recursive: true, force: true });
    });

    it('finds the runnable blocks of the package READMEs', () => {
      assert.ok(codeBlocks.length > 0, 'no <!-- example: runs|serves --> block in any README');
    });

    it('the app is an ES module package, as the Install says, and resolves @proxyless/* to the installed tarballs', () => {
      assert.equal(readJson<{ type?: string }>(join(app, 'package.json')).type, 'module');
      assert.ok(!lstatSync(join(app, 'node_modules/@proxyless/core')).isSymbolicLink(), 'a copy from the tarball, not a link to the workspace');
    });

    it('the runnable blocks type-check (the app\'s tsc: strict, nodenext, skipLibCheck: false)', async function () {
      this.timeout(180_000);
      const tsc = run('', { NODE_OPTIONS: undefined }, process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '-p', join(app, 'tsconfig.json'), '--pretty', 'false'], app);
      await exitWithin(tsc, 170_000, 'tsc');
      const names = new Map<string, string>(codeBlocks.map((b, n) => [`block-${String(n)}.ts`, where(b)]));
      const errors = tsc.output().split('\n').filter((line) => line.includes('error TS'));
      assert.deepEqual(errors.map((line) => line.replace(/^.*?(block-\d+\.ts)/, (_, f: string) => names.get(f) ?? f)), []);
    });

    it('README.md quick start with no agent reachable: fails within its start() timeout, naming the address and CONSUL_HTTP_ADDR', async () => {
      const n = codeBlocks.findIndex((b) => relative(repoRoot, b.file) === 'README.md' && b.code.includes('new Registrar('));
      assert.ok(n >= 0, 'the README quick start block');
      const nowhere = `127.0.0.1:${String(await freePort())}`; // nothing listens there
      const p = runBlock(n, { CONSUL_HTTP_ADDR: nowhere });
      const t0 = Date.now();
      const code = await exitWithin(p, 30_000, 'quick start without an agent');
      const out = p.output();
      assert.notEqual(code, 0, out);
      assert.ok(Date.now() - t0 >= 9000, `gave up after ${String(Date.now() - t0)} ms, before its 10 s timeout:\n${out}`);
      const hint = new RegExp(`Consul at http://${nowhere.replace(/\./g, '\\.')} is unreachable: .*Set CONSUL_HTTP_ADDR`, 'g');
      // Once as the registrar's warning while it retries, once in the rejection that ends the process.
      assert.match(out, /proxyless registrar hello-\S+: Consul at .* retrying for up to 10000 ms/);
      assert.match(out, /TimeoutError: Registrar\.start timed out after 10000 ms: Consul at /);
      assert.equal(out.match(hint)?.length, 2, out);
    });

    it('every package a block imports is one the Install installs (a direct dependency of the app, not one reachable only through npm\'s hoisting)', () => {
      const manifest = readJson<{ dependencies?: Record<string, string>; devDependencies?: Record<string, string> }>(join(app, 'package.json'));
      const direct = new Set([...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.devDependencies ?? {})]);
      const missing: string[] = [];
      for (const block of codeBlocks) {
        for (const m of block.code.matchAll(/^\s*import\s[^'"]*['"]([^'"]+)['"]/gm)) {
          const spec = m[1]!;
          if (spec.startsWith('node:') || spec.startsWith('.')) continue;
          const name = spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');
          if (!direct.has(name)) missing.push(`${where(block)} imports ${spec}`);
        }
      }
      assert.deepEqual(missing, [], `installed by the README's Install: ${[...direct].join(', ')}`);
    });

    for (const [n, block] of codeBlocks.entries()) {
      it(`${where(block)} (${block.marker})`, async () => {
        const { kind, needs } = kindOf(block);
        for (const service of needs) {
          const svc = run(command('service'), { ...consulEnv(), SERVICE_NAME: service, PORT: '0' });
          helpers.push(svc);
          const id = (await svc.waitFor(/READY (\S+) \d+/, 45_000, `examples/service as ${service}`))[1]!;
          await until(async () => ((await passing(service)).some((s) => s.ID === id) ? true : undefined), 15_000, `${service} passing`);
        }
        const before = await agentServices();
        // A service block listens on PORT (its default, e.g. 8080, could be taken by anything else running).
        const env = kind === 'serves' ? { ...consulEnv(), PORT: String(await freePort()) } : consulEnv();
        const p = runBlock(n, env);
        if (kind === 'runs') {
          assert.equal(await exitWithin(p, 30_000, where(block)), 0, p.output());
          return;
        }
        const id = await until(async () => {
          const now = await agentServices();
          for (const svc of Object.values(now)) {
            if (before[svc.ID]) continue;
            if ((await passing(svc.Service)).some((s) => s.ID === svc.ID)) return svc.ID;
          }
          if (p.child.exitCode !== null) throw new GiveUp(`exited ${String(p.child.exitCode)}:\n${p.output()}`);
          return undefined;
        }, 30_000, `${where(block)} registers a passing instance`);
        p.child.kill('SIGTERM');
        assert.equal(await exitWithin(p, 30_000, `${where(block)} after SIGTERM`), 0, p.output());
        assert.equal((await agentServices())[id], undefined, `${id} still registered after exit`);
      });
    }
  });
});

// ---------------------------------------------------------------- etcd

describe('examples run as written on etcd (REGISTRY=etcd)', function () {
  this.timeout(90_000);
  let etcd: EtcdServer & { close(): Promise<void> };
  let admin: EtcdClient;
  const etcdEnv = (): Record<string, string> => ({ REGISTRY: 'etcd', ETCDCTL_ENDPOINTS: etcd.clientUrl });
  /** The instance keys of a service: id → value. */
  const keys = async (service: string): Promise<Map<string, { port: number; lease: string }>> => {
    const { kvs } = await admin.range(`/proxyless/services/${service}/`, { prefix: true });
    return new Map(kvs.map((kv) => [kv.key.toString().split('/').pop()!, { port: (JSON.parse(kv.value.toString()) as { port: number }).port, lease: kv.lease }]));
  };

  before(async function () {
    this.timeout(60_000);
    etcd = await startEtcd();
    admin = new EtcdClient({ endpoints: etcd.clientUrl }, {});
  });

  after(async () => {
    await admin?.close();
    await etcd?.close();
  });

  it('service ×2 and client: every call succeeds, answered by the instances registered in etcd; SIGTERM removes their keys', async () => {
    const services = [0, 1].map(() => run(command('service'), { ...etcdEnv(), SERVICE_NAME: 'hello-etcd', PORT: '0', DRAIN_DELAY_MS: '100' }));
    try {
      const ids = await Promise.all(services.map(async (s) => (await s.waitFor(/READY (\S+) (\d+)/, 45_000, 'examples/service on etcd'))[1]!));
      assert.deepEqual([...(await keys('hello-etcd')).keys()].sort(), [...ids].sort());
      const p = run(command('client').replace(/ hello 10$/, ' hello-etcd 10'), etcdEnv());
      const code = await exitWithin(p, 45_000, 'examples/client on etcd');
      assert.equal(code, 0, p.output());
      assert.match(p.output(), /hello-etcd: 10\/10 ok/);
      const answered = [...p.output().matchAll(/^#\d+ 200 from (\S+)/gm)].map((m) => m[1]!);
      assert.equal(answered.length, 10, p.output());
      for (const who of answered) assert.ok(ids.includes(who), `answer from ${who}:\n${p.output()}`);
      for (const s of services) s.child.kill('SIGTERM');
      for (const s of services) assert.equal(await exitWithin(s, 20_000, 'examples/service after SIGTERM'), 0, s.output());
      assert.equal((await keys('hello-etcd')).size, 0, 'keys left behind');
    } finally {
      for (const s of services) killTree(s.child);
    }
  });

  it('service-fastify: registers a key with a lease, serves, and on SIGTERM deletes it and exits 0', async () => {
    const p = run(command('service-fastify'), { ...etcdEnv(), SERVICE_NAME: 'fastify-etcd', PORT: '0' });
    const [, id, , port] = await p.waitFor(/READY (\S+) (\S+):(\d+)/, 45_000, 'examples/service-fastify on etcd');
    const entry = (await keys('fastify-etcd')).get(id!);
    assert.equal(entry?.port, Number(port));
    assert.notEqual(entry?.lease, '0');
    p.child.kill('SIGTERM');
    assert.equal(await exitWithin(p, 30_000, 'examples/service-fastify after SIGTERM'), 0, p.output());
    assert.equal((await keys('fastify-etcd')).size, 0);
  });

  it('container entrypoint: registers the app in etcd, and on SIGTERM deletes its key before the app is signalled', async () => {
    const port = await freePort();
    const p = run(command('container'), { ...etcdEnv(), PORT: String(port), SERVICE_NAME: 'container-etcd', APP_EXIT_CODE: '0', DRAIN_DELAY: '200ms' });
    try {
      await until(async () => ((await keys('container-etcd')).size === 1 ? true : undefined), 45_000, 'container-etcd registered in etcd');
      const [entry] = [...(await keys('container-etcd')).values()];
      assert.equal(entry?.port, port);
      p.child.kill('SIGTERM');
      await p.waitFor(/app: SIGTERM, closing/, 20_000, 'app signalled');
      assert.equal((await keys('container-etcd')).size, 0, `still registered when the app got SIGTERM:\n${p.output()}`);
      assert.equal(await exitWithin(p, 20_000, 'proxyless-register after SIGTERM'), 0, p.output());
    } finally {
      killTree(p.child);
    }
  });
});
