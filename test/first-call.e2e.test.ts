/**
 * A new user's first script, run as a real child process (ESM with top-level
 * await, and CommonJS): a call in progress keeps the process alive until it
 * settles, by its deadline, and says why it failed when discovery is the
 * reason (the registry, the address tried, what sets it); an idle client,
 * dispatcher and resolver let the process exit by itself; the gateway fails
 * fast at start when its registry cannot be reached. Real Consul, real etcd.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EtcdClient } from '@proxyless/etcd';
import { freePort, startConsulAgent, type ConsulAgent } from './support/consul.js';
import { startEtcd, type EtcdServer } from './support/etcd.js';
import { runSource, type Ran } from './support/processes.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const fixture = (ext: 'mjs' | 'cjs'): string => join(root, 'test', 'fixtures', `first-request.${ext}`);

/** Runs a script as a new user would (the sources through tsx); killed after `killAfterMs`. `ranMs`: from the script's first line to its exit, by its own clock (no start-up or tsx compile time). */
async function run(args: string[], env: Record<string, string | undefined>, killAfterMs = 60_000): Promise<Ran & { ranMs: number }> {
  const ran = await runSource(args, env, killAfterMs);
  return { ...ran, ranMs: Number(/ran (\d+) ms/.exec(ran.stderr)?.[1] ?? NaN) };
}

/** A port where nothing listens. */
async function deadPort(): Promise<number> {
  return freePort();
}

describe('a first call, in a child process (real Consul, real etcd)', function () {
  this.timeout(180_000);
  const timeoutMs = 1500;

  describe('with the registry unreachable, the call keeps the process alive and fails by its deadline, naming the registry and its address', () => {
    for (const registry of ['consul', 'etcd'] as const) {
      for (const ext of ['mjs', 'cjs'] as const) {
        for (const mode of ['client', 'fetch'] as const) {
          it(`${registry}, ${ext === 'mjs' ? 'ESM' : 'CommonJS'}, ${mode === 'client' ? 'client.text()' : 'fetch through the dispatcher'}`, async () => {
            const port = await deadPort();
            const address = `127.0.0.1:${port}`;
            const env = registry === 'consul'
              ? { CONSUL_HTTP_ADDR: address, REGISTRY: 'consul' }
              : { ETCDCTL_ENDPOINTS: `http://${address}`, REGISTRY: 'etcd' };
            const r = await run([fixture(ext)], { ...env, MODE: mode, TIMEOUT_MS: String(timeoutMs), FIRST_REQUEST_TIMING: '1' });
            console.log(`      [measure] exit ${String(r.code)} after ${String(r.ranMs)} ms (deadline ${timeoutMs} ms)`);
            assert.equal(r.signal, null, `killed: the call never settled\n${r.stderr}`);
            assert.notEqual(r.code, 0, `exited 0 with the call unsettled\n${r.stdout}${r.stderr}`);
            assert.notEqual(r.code, 13, `exited 13: the process ended under a pending top-level await\n${r.stderr}`);
            assert.ok(r.ranMs >= timeoutMs - 50 && r.ranMs <= timeoutMs + 1000, `ran ${String(r.ranMs)} ms`);
            // The error's own line (fetch's TypeError carries it as `cause`; an uncaught rejection prints the throwing source line first).
            const line = r.stderr.split('\n').find((l) => l.includes('Resolving "hello" via') && !l.includes('new ResolutionFailedError')) ?? '';
            assert.match(line, new RegExp(`Resolving "hello" via ${registry} failed`), r.stderr);
            assert.match(line, new RegExp(address.replace(/\./g, '\\.')), r.stderr);
            assert.match(line, registry === 'consul' ? /CONSUL_HTTP_ADDR/ : /ETCDCTL_ENDPOINTS/, r.stderr);
            assert.doesNotMatch(r.stderr, /Unknown service|No healthy endpoint/);
          });
        }
      }
    }
  });

  describe('resolver.resolve() awaited alone, registry unreachable: kept alive until it fails, naming the registry', () => {
    for (const registry of ['consul', 'etcd'] as const) {
      it(registry, async () => {
        const address = `127.0.0.1:${await deadPort()}`;
        const env = registry === 'consul' ? { CONSUL_HTTP_ADDR: address, REGISTRY: 'consul' } : { ETCDCTL_ENDPOINTS: `http://${address}`, REGISTRY: 'etcd' };
        const r = await run([join(root, 'test', 'fixtures', 'resolve-once.mjs')], { ...env, TIMEOUT_MS: String(timeoutMs) });
        console.log(`      [measure] resolve() exit ${String(r.code)} after ${String(r.ranMs)} ms`);
        assert.equal(r.signal, null, 'killed');
        assert.equal(r.code, 1, `exit ${String(r.code)}: ${r.stderr}`);
        const line = r.stderr.split('\n').find((l) => l.startsWith('ResolutionFailedError: Resolving "hello"')) ?? '';
        assert.match(line, new RegExp(address.replace(/\./g, '\\.')), r.stderr);
        assert.match(line, registry === 'consul' ? /CONSUL_HTTP_ADDR/ : /ETCDCTL_ENDPOINTS/, r.stderr);
        assert.ok(r.ranMs <= timeoutMs + 1000, `ran ${String(r.ranMs)} ms`);
      });
    }
  });

  describe('examples/client with the registry unreachable: one line naming it, exit 1, without waiting out every call', () => {
    for (const registry of ['consul', 'etcd'] as const) {
      it(registry, async () => {
        const address = `127.0.0.1:${await deadPort()}`;
        const env = registry === 'consul' ? { CONSUL_HTTP_ADDR: address, REGISTRY: 'consul' } : { ETCDCTL_ENDPOINTS: `http://${address}`, REGISTRY: 'etcd' };
        const t0 = performance.now();
        const r = await run(['examples/client/client.ts', 'hello', '10'], env, 60_000);
        const took = performance.now() - t0;
        console.log(`      [measure] examples/client exit ${String(r.code)} after ${took.toFixed(0)} ms (5 s deadline per call, 10 calls asked)`);
        assert.equal(r.signal, null, 'killed');
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stdout, new RegExp(`#1 failed: ResolutionFailedError: Resolving "hello" via ${registry} failed: .*${address.replace(/\./g, '\\.')}.*${registry === 'consul' ? 'CONSUL_HTTP_ADDR' : 'ETCDCTL_ENDPOINTS'}`));
        assert.match(r.stdout, /hello: 0\/1 ok \(stopped after 1 of 10\)/);
        assert.ok(took < 20_000, `took ${took.toFixed(0)} ms: it waited out more than one call`);
      });
    }
  });

  describe('after one request, an idle client, dispatcher and resolver let the process exit by itself', () => {
    let agent: ConsulAgent;
    let etcd: EtcdServer & { close(): Promise<void> };
    let backend: Server;
    before(async () => {
      [agent, etcd] = await Promise.all([startConsulAgent(), startEtcd()]);
      backend = createServer((_req, res) => res.end('hi'));
      backend.listen(0, '127.0.0.1');
      await once(backend, 'listening');
      const port = (backend.address() as AddressInfo).port;
      const reg = await fetch(`${agent.httpUrl}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Name: 'hello', ID: 'hello-1', Address: '127.0.0.1', Port: port }) });
      assert.equal(reg.status, 200, await reg.text());
      const admin = new EtcdClient({ endpoints: etcd.clientUrl }, {});
      await admin.put('/proxyless/services/hello/hello-1', JSON.stringify({ address: '127.0.0.1', port }));
      await admin.close();
    });
    after(async () => {
      backend?.closeAllConnections();
      backend?.close();
      await Promise.all([agent?.stop(), etcd?.close()]);
    });

    for (const registry of ['consul', 'etcd'] as const) {
      for (const mode of ['client', 'fetch'] as const) {
        it(`${registry}, ${mode === 'client' ? 'client.text()' : 'fetch through the dispatcher'}, nothing closed`, async () => {
          const env = registry === 'consul' ? { CONSUL_HTTP_ADDR: agent.httpAddr, REGISTRY: 'consul' } : { ETCDCTL_ENDPOINTS: etcd.clientUrl, REGISTRY: 'etcd' };
          const r = await run([fixture('mjs')], { ...env, MODE: mode, TIMEOUT_MS: '5000', FIRST_REQUEST_TIMING: '1' }, 30_000);
          console.log(`      [measure] exit ${String(r.code)} after ${String(r.ranMs)} ms`);
          assert.equal(r.signal, null, `still alive after 30 s: an idle handle keeps the process alive\n${r.stdout}${r.stderr}`);
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stdout, /status 200: hi/);
          assert.ok(r.ranMs < 5_000, `exited ${String(r.ranMs)} ms after start`);
        });
      }
    }
  });

  describe('the proxyless-gateway bin fails fast at start when its registry is unreachable', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'gw-start-'));
      writeFileSync(join(dir, 'gateway.json'), JSON.stringify({ port: 0, discovery: { startTimeoutMs: timeoutMs } }));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    for (const registry of ['consul', 'etcd'] as const) {
      it(`${registry}: one line naming the registry, its address and the variable; exit 1`, async () => {
        const port = await deadPort();
        const address = `127.0.0.1:${port}`;
        const env = registry === 'consul' ? { CONSUL_HTTP_ADDR: address, REGISTRY: 'consul' } : { ETCDCTL_ENDPOINTS: `http://${address}`, REGISTRY: 'etcd' };
        const t0 = performance.now();
        const r = await run(['packages/gateway/src/cli.ts', '--config', join(dir, 'gateway.json')], env, 60_000);
        const took = performance.now() - t0;
        console.log(`      [measure] gateway exit ${String(r.code)} after ${took.toFixed(0)} ms (start timeout ${timeoutMs} ms): ${r.stderr.trim()}`);
        assert.equal(r.signal, null, 'killed: the gateway never gave up');
        assert.equal(r.code, 1, r.stderr);
        const lines = r.stderr.trim().split('\n');
        assert.equal(lines.length, 1, r.stderr);
        assert.match(lines[0] ?? '', /^proxyless-gateway: cannot list services: /);
        assert.match(lines[0] ?? '', new RegExp(address.replace(/\./g, '\\.')));
        assert.match(lines[0] ?? '', registry === 'consul' ? /CONSUL_HTTP_ADDR/ : /ETCDCTL_ENDPOINTS/);
        assert.doesNotMatch(r.stdout, /listening/);
      });
    }
  });
});
