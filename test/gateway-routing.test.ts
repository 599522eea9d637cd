/**
 * @proxyless/gateway routing: config checks (every route, defaults and
 * discovery key), and the `proxyless-gateway` command's exit code for them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { createGateway } from '@proxyless/gateway';
import { resolveRouteTable } from '../packages/gateway/src/routing.js';

/** Runs the bin (from source) with `--config <file>` holding `config`; resolves with its exit code and stderr. */
async function runCli(config: unknown): Promise<{ code: number | null; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-routing-'));
  try {
    const file = join(dir, 'gateway.json');
    writeFileSync(file, JSON.stringify(config));
    const child = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', 'packages/gateway/src/cli.ts', '--config', file], {
      // An unreachable registry: a config error must end the start before any connection is tried.
      env: { ...process.env, CONSUL_HTTP_ADDR: '127.0.0.1:1', PORT: '0' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    return { code, stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('@proxyless/gateway config: unknown keys are rejected', function () {
  this.timeout(60_000);

  it('rejects a misspelt key in a route, in defaults and in discovery, naming the nearest key', () => {
    assert.throws(() => createGateway({ routes: [{ path: '/a/**', service: 'a', timeoutMS: 100 } as never] }), {
      code: 'ERR_INVALID_OPTION',
      message: 'Invalid option "routes[0].timeoutMS": not an option of a route; did you mean "timeoutMs"?',
    });
    assert.throws(() => createGateway({ routes: [{ path: '/a/**', service: 'a' }, { path: '/b/**', service: 'b', stripPrefx: false } as never] }), /"routes\[1\]\.stripPrefx".*did you mean "stripPrefix"\?/);
    assert.throws(() => createGateway({ defaults: { retires: 2 } as never }), /"defaults\.retires": not an option of a route policy \(defaults\); did you mean "retries"\?/);
    assert.throws(() => createGateway({ discovery: { enable: false } as never }), /"discovery\.enable": not an option of discovery; did you mean "enabled"\?/);
    assert.throws(() => createGateway({ routes: ['/a/**' as never] }), /"routes\[0\]".*must be an object/);
    assert.throws(() => createGateway({ defaults: 5 as never }), /"defaults".*must be an object/);
    // Well-spelt configs still pass.
    createGateway({ routes: [{ path: '/a/**', service: 'a', timeoutMs: 100, stripPrefix: false }], defaults: { retries: 0 }, discovery: { enabled: false, ignored: [], startTimeoutMs: 100 } });
  });

  it('ends proxyless-gateway with exit code 2 and one line for a misspelt route key', async () => {
    const { code, stderr } = await runCli({ routes: [{ path: '/api/**', service: 'users', timeoutMS: 2000 }] });
    assert.equal(code, 2, stderr);
    assert.equal(stderr, 'proxyless-gateway: Invalid option "routes[0].timeoutMS": not an option of a route; did you mean "timeoutMs"?\n');
  });
});

/** A seeded PRNG (mulberry32): the split tests draw the same numbers on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A request as the table reads it: its headers. */
const req = (headers: Record<string, string> = {}): IncomingMessage => ({ headers }) as unknown as IncomingMessage;

describe('@proxyless/gateway route table: predicates, precedence, weighted splits', () => {
  it('picks the longest prefix first, then the most specific route: exact host, longer wildcard, no host; more headers; config order', () => {
    const table = resolveRouteTable([
      { path: '/api/**', service: 'plain' },
      { path: '/api/**', service: 'wild', host: '*.example.com' },
      { path: '/api/**', service: 'deep-wild', host: '*.eu.example.com' },
      { path: '/api/**', service: 'exact', host: 'api.example.com' },
      { path: '/api/**', service: 'canary', headers: { 'X-Canary': '1' } },
      { path: '/api/**', service: 'canary-debug', headers: { 'x-canary': '1', 'x-debug': true } },
      { path: '/api/**', service: 'second-plain' },
      { path: '/api/v2/**', service: 'v2' },
      { path: '/api/**', service: 'no-beta', headers: { 'x-beta': false }, host: 'beta.example.com' },
    ], {});
    const at = (path: string, headers: Record<string, string> = {}): string | undefined => table.match(path, req(headers))?.service;
    assert.equal(at('/api/x'), 'plain', 'no condition matches: the first plain route, in config order');
    assert.equal(at('/api/v2/x', { host: 'api.example.com', 'x-canary': '1' }), 'v2', 'a longer prefix beats every predicate');
    assert.equal(at('/api/x', { host: 'api.example.com:8443', 'x-canary': '1' }), 'exact', 'an exact host (port ignored) beats headers');
    assert.equal(at('/api/x', { host: 'API.Example.COM.' }), 'exact', 'hosts compare case-insensitively, without a trailing dot');
    assert.equal(at('/api/x', { host: 'a.eu.example.com' }), 'deep-wild', 'the longer wildcard first');
    assert.equal(at('/api/x', { host: 'a.b.example.com' }), 'wild', 'a wildcard matches any depth of subdomain');
    assert.equal(at('/api/x', { host: 'example.com' }), 'plain', '*.example.com is not example.com itself');
    assert.equal(at('/api/x', { host: 'notexample.com' }), 'plain');
    assert.equal(at('/api/x', { 'x-canary': '1', 'x-debug': '' }), 'canary-debug', 'two header conditions beat one; true means present, any value');
    assert.equal(at('/api/x', { 'x-canary': '1' }), 'canary');
    assert.equal(at('/api/x', { 'x-canary': '2' }), 'plain', 'a string is the exact value');
    assert.equal(at('/api/x', { host: 'beta.example.com' }), 'no-beta', 'false means absent');
    assert.equal(at('/api/x', { host: 'beta.example.com', 'x-beta': 'y' }), 'wild');
    assert.equal(at('/apix'), undefined, 'a prefix matches whole segments');
    assert.deepEqual([...table.services].sort(), ['canary', 'canary-debug', 'deep-wild', 'exact', 'no-beta', 'plain', 'second-plain', 'v2', 'wild']);
    assert.equal(table.match('/api/x', req({ 'x-canary': '1' }))?.id, '/api/** [x-canary=1] -> canary');
  });

  it('keeps the rate-limit rule (so the buckets) of a route whose limit is unchanged across tables: same path, host and headers in any order; a changed limit or route gets its own', () => {
    const limit = { ratePerSecond: 5, burst: 10 };
    const before = resolveRouteTable([
      { path: '/a/**', service: 'a', rateLimit: limit, headers: { 'x-one': '1', 'x-two': true } },
      { path: '/b/**', services: [{ service: 'b1', weight: 1 }, { service: 'b2', weight: 1 }], rateLimit: limit },
      { path: '/c/**', service: 'c', rateLimit: limit },
      { path: '/d/**', service: 'd', rateLimit: limit, host: 'd.example.com' },
    ], {});
    const after = resolveRouteTable([
      // Moved, headers written in another order, another service: the same route, the same limit.
      { path: '/a', service: 'a2', rateLimit: { ...limit }, headers: { 'x-two': true, 'X-One': '1' } },
      { path: '/b/**', services: [{ service: 'b1', weight: 3 }, { service: 'b2', weight: 1 }], rateLimit: { ...limit } },
      { path: '/c/**', service: 'c', rateLimit: { ...limit, burst: 11 } },
      { path: '/d/**', service: 'd', rateLimit: { ...limit } },
    ], {}).keepRateLimitsOf(before);
    const ruleOf = (table: typeof before, id: string): unknown => table.routes.find((r) => r.id.startsWith(id))?.rateLimit;
    assert.equal(ruleOf(after, '/a'), ruleOf(before, '/a/**'));
    assert.equal(ruleOf(after, '/b/** -> b1'), ruleOf(before, '/b/** -> b1'));
    assert.equal(ruleOf(after, '/b/** -> b2'), ruleOf(before, '/b/** -> b1'), 'the shares of a weighted route keep sharing one rule');
    assert.notEqual(ruleOf(after, '/c/**'), ruleOf(before, '/c/**'), 'a changed burst is a new bucket');
    assert.notEqual(ruleOf(after, '/d/**'), ruleOf(before, '/d/**'), 'without its host condition it is another route');
    assert.equal(after.match('/a/x', req({ 'x-one': '1', 'x-two': '' }))?.service, 'a2', 'the kept table still routes by the new routes');
  });

  it('splits a weighted route by its weights: 95/5 within 5 sigma over 20,000 requests, a 0 weight gets nothing', () => {
    const table = resolveRouteTable([{ path: '/**', services: [{ service: 'stable', weight: 95 }, { service: 'canary', weight: 5 }, { service: 'dark', weight: 0 }] }], {}, 'routes', seeded(24));
    const counts = new Map<string, number>();
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const route = table.match('/x', req());
      assert.ok(route);
      counts.set(route.service, (counts.get(route.service) ?? 0) + 1);
    }
    const canary = counts.get('canary') ?? 0;
    const sigma = Math.sqrt(n * 0.05 * 0.95);
    assert.ok(Math.abs(canary - n * 0.05) < 5 * sigma, `canary got ${canary} of ${n} (expected ${n * 0.05} ± ${Math.round(5 * sigma)})`);
    assert.equal(counts.get('dark'), undefined);
    assert.equal((counts.get('stable') ?? 0) + canary, n);
    // Each share is its own route, so the status page counts stable and canary apart.
    assert.deepEqual(table.routes.map((r) => r.id), ['/** -> stable (95%)', '/** -> canary (5%)', '/** -> dark (0%)']);
  });

  it('keeps a client on one service with sticky (header or cookie), and still splits clients by weight', () => {
    const table = resolveRouteTable([
      { path: '/h/**', services: [{ service: 'a', weight: 3 }, { service: 'b', weight: 1 }], sticky: { header: 'X-User' } },
      { path: '/c/**', services: [{ service: 'a', weight: 1 }, { service: 'b', weight: 1 }], sticky: { cookie: 'session' } },
    ], {});
    let b = 0;
    for (let user = 0; user < 4000; user++) {
      const first = table.match('/h/x', req({ 'x-user': `user-${user}` }))?.service;
      for (let again = 0; again < 3; again++) assert.equal(table.match('/h/y', req({ 'x-user': `user-${user}` }))?.service, first);
      if (first === 'b') b++;
    }
    // 25 % of users on b: sd = sqrt(4000 * 0.25 * 0.75) ≈ 27; 5 sigma.
    assert.ok(Math.abs(b - 1000) < 137, `b got ${b} of 4000 users`);
    const bySession = (cookie: string): string | undefined => table.match('/c/x', req({ cookie }))?.service;
    const session = bySession('theme=dark; session=s-1234');
    for (let i = 0; i < 5; i++) assert.equal(bySession(`session=s-1234; other=${i}`), session);
  });

  it('rejects bad predicates and splits with errors naming the fix', () => {
    const bad = (route: Record<string, unknown>): unknown => resolveRouteTable([{ path: '/a/**', ...route }], {});
    assert.throws(() => bad({}), /routes\[0\].*needs either "service" or weighted "services"/);
    assert.throws(() => bad({ service: 'a', services: [{ service: 'b', weight: 1 }] }), /not both/);
    assert.throws(() => bad({ services: [] }), /routes\[0\]\.services.*non-empty array/);
    assert.throws(() => bad({ services: [{ service: 'a', wieght: 1 }] }), /"routes\[0\]\.services\[0\]\.wieght".*did you mean "weight"/);
    assert.throws(() => bad({ services: [{ service: 'a', weight: -1 }] }), /services\[0\]\.weight.*at least 0/);
    assert.throws(() => bad({ services: [{ service: 'a', weight: 0 }] }), /at least one service a weight above 0/);
    assert.throws(() => bad({ services: [{ service: 'a', weight: 1 }, { service: 'a', weight: 1 }] }), /listed twice/);
    assert.throws(() => bad({ service: 'a', host: 'http://example.com' }), /routes\[0\]\.host.*host name/);
    assert.throws(() => bad({ service: 'a', host: 'a.*.com' }), /routes\[0\]\.host/);
    assert.throws(() => bad({ service: 'a', headers: { 'x-a': 1 } }), /routes\[0\]\.headers\.x-a.*string.*true.*false/);
    assert.throws(() => bad({ service: 'a', headers: { 'bad header': 'x' } }), /not a header name/);
    assert.throws(() => bad({ service: 'a', sticky: { header: 'x-user' } }), /sticky.*weighted "services" only/);
    assert.throws(() => bad({ services: [{ service: 'a', weight: 1 }], sticky: { header: 'x', cookie: 'y' } }), /one of "header" or "cookie"/);
    assert.throws(() => bad({ services: [{ service: 'a', weight: 1 }], sticky: { heder: 'x' } }), /sticky\.heder.*did you mean "header"/);
    assert.throws(() => bad({ service: 'a', hosts: 'x.com' }), /"routes\[0\]\.hosts".*did you mean "host"/);
  });
});
