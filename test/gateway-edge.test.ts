/**
 * @proxyless/gateway at the edge: who may say who the client is
 * (`trustedProxies` and `X-Forwarded-*`), with a real Consul agent, a real
 * backend and real sockets from two loopback addresses (127.0.0.1 and 127.0.0.2).
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { startConsulAgent, type ConsulAgent } from './support/consul.js';
import { createGateway, type AccessLogEntry, type Gateway, type GatewayStatus } from '@proxyless/gateway';
import { checkTrustedProxies, clientAddress } from '../packages/gateway/src/trusted-proxies.js';
import { InvalidOptionError } from '@proxyless/core';

describe('@proxyless/gateway trusted proxies: the client-address walk', () => {
  const trust = checkTrustedProxies('trustedProxies', ['10.0.0.0/8', 'fd00::/8', '192.0.2.7'])!;
  const trustedIp = fc.oneof(
    fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255)).map(([a, b, c]) => `10.${a}.${b}.${c}`),
    fc.tuple(fc.nat(0xff), fc.nat(0xffff)).map(([a, b]) => `fd${a.toString(16).padStart(2, '0')}::${b.toString(16)}`),
    fc.constant('192.0.2.7'),
  );
  const untrustedIp = fc.oneof(
    fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `203.0.${a}.${b}`),
    fc.nat(0xffff).map((a) => `2001:db8::${a.toString(16)}`),
    fc.constant('192.0.2.8'),
  );
  const hop = fc.oneof(trustedIp, untrustedIp);
  /** X-Forwarded-For as proxies write it, with the odd spacing and empty entries seen in the wild. */
  const join = (hops: readonly string[], spaces: readonly boolean[]): string => hops.map((h, i) => (spaces[i % spaces.length] ? ` ${h} ` : h)).join(',');
  /** The definition: right to left, the first untrusted hop; all trusted, the left-most. */
  function oracle(hops: readonly string[]): string {
    for (let i = hops.length - 1; i >= 0; i--) if (!trust.check(hops[i]!, isIP(hops[i]!) === 4 ? 'ipv4' : 'ipv6')) return hops[i]!;
    return hops[0]!;
  }

  it('is the right-most untrusted address of X-Forwarded-For and the peer (the left-most when every hop is trusted)', () => {
    fc.assert(
      fc.property(fc.array(hop, { maxLength: 8 }), hop, fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }), (forwardedFor, peer, spaces) => {
        assert.equal(clientAddress(trust, peer, join(forwardedFor, spaces)), oracle([...forwardedFor, peer]));
      }),
    );
  });

  it('cannot be chosen by the client: whatever it prepends, garbage included, the answer is the same once an untrusted hop follows', () => {
    const spoof = fc.array(fc.oneof(hop, fc.string({ maxLength: 12 }).filter((s) => !s.includes(','))), { maxLength: 6 });
    fc.assert(
      fc.property(spoof, fc.array(hop, { maxLength: 5 }), untrustedIp, fc.array(trustedIp, { maxLength: 4 }), (spoofed, before, client, proxies) => {
        // The client's real address is `client`; every hop after it is a trusted proxy; the peer is the last of them (or the client).
        const honest = [...before, client, ...proxies];
        const peer = honest.pop()!;
        const truth = clientAddress(trust, peer, honest.join(', '));
        assert.equal(truth, client);
        assert.equal(clientAddress(trust, peer, [...spoofed, ...honest].join(', ')), client);
      }),
    );
  });

  it('never returns a string that is not an IP address, whatever X-Forwarded-For holds', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), trustedIp, (forwardedFor, peer) => {
        assert.notEqual(isIP(clientAddress(trust, peer, forwardedFor)), 0);
      }),
    );
  });

  it('checks trustedProxies once, with a typed error naming the entry', () => {
    assert.equal(checkTrustedProxies('trustedProxies', []), undefined);
    const list = checkTrustedProxies('trustedProxies', ['loopback', 'private', 'linklocal', '2001:db8::/32', '198.51.100.1'])!;
    for (const ip of ['127.0.0.1', '::1', '10.1.2.3', '172.20.0.1', '192.168.1.1', 'fd12::1', '169.254.1.1', 'fe80::1', '2001:db8:1::1', '198.51.100.1']) {
      assert.ok(list.check(ip, isIP(ip) === 4 ? 'ipv4' : 'ipv6'), ip);
    }
    assert.ok(list.check('::ffff:127.0.0.1', 'ipv6'), 'an IPv4-mapped peer (a server on ::) is matched');
    for (const ip of ['8.8.8.8', '172.32.0.1', '2001:db9::1', '198.51.100.2']) assert.ok(!list.check(ip, isIP(ip) === 4 ? 'ipv4' : 'ipv6'), ip);
    for (const [bad, option] of [
      ['10.0.0.0/33', 'trustedProxies[0]'],
      ['localhost', 'trustedProxies[0]'],
      ['10.0.0.0/x', 'trustedProxies[0]'],
      ['::1/129', 'trustedProxies[0]'],
    ] as const) {
      assert.throws(() => checkTrustedProxies('trustedProxies', [bad]), (e: unknown) => e instanceof InvalidOptionError && e.message.includes(option) && e.message.includes('CIDR'));
    }
    assert.throws(() => checkTrustedProxies('trustedProxies', '10.0.0.0/8'), InvalidOptionError);
    assert.throws(() => createGateway({ trustedProxies: ['10.0.0.300'] }), (e: unknown) => e instanceof InvalidOptionError && e.message.includes('trustedProxies[0]'));
  });
});

describe('@proxyless/gateway trusted proxies and access log (real Consul, real backend, real sockets)', function () {
  this.timeout(60_000);
  let agent: ConsulAgent;
  let backend: Server;
  /** Trusts 127.0.0.2 only. */
  let trusting: Gateway;
  /** The default: trusts nobody. */
  let plain: Gateway;

  let backendPort: number;
  const dir = mkdtempSync(join(tmpdir(), 'gwedge-'));

  before(async () => {
    agent = await startConsulAgent();
    backend = createServer((req, res) => {
      req.resume();
      req.once('end', () => res.end(JSON.stringify(req.headers)));
    });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    const reg = await fetch(`${agent.httpUrl}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify({ Name: 'echo', ID: 'echo-1', Address: '127.0.0.1', Port: (backendPort = (backend.address() as AddressInfo).port) }),
    });
    assert.equal(reg.status, 200, await reg.text());
    const routes = [
      { path: '/echo/**', service: 'echo' },
      { path: '/limited/**', service: 'echo', rateLimit: { ratePerSecond: 0.1, burst: 1 } },
    ];
    // Listening on every interface: a connection from 127.0.0.2 keeps its address.
    trusting = createGateway({ consulAddress: agent.httpAddr, host: '0.0.0.0', port: 0, discovery: { enabled: false }, routes, trustedProxies: ['127.0.0.2'] });
    plain = createGateway({ consulAddress: agent.httpAddr, host: '0.0.0.0', port: 0, discovery: { enabled: false }, routes });
    await Promise.all([trusting.listen(), plain.listen()]);
  });

  after(async () => {
    await Promise.all([trusting?.close({ graceMs: 500 }), plain?.close({ graceMs: 500 })]);
    backend?.close();
    backend?.closeAllConnections();
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A request over a fresh socket from `from` (a loopback address) to the gateway. */
  function send(gateway: Gateway | string, from: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: string; requestId: string }> {
    const port = Number(new URL(typeof gateway === 'string' ? gateway : gateway.url).port);
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path, localAddress: from, headers, method: body === undefined ? 'GET' : 'POST', agent: false, signal: AbortSignal.timeout(10_000) }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, body: text, requestId: String(res.headers['x-request-id'] ?? '') }));
        res.once('error', reject);
      });
      req.once('error', reject);
      req.end(body);
    });
  }

  const spoofed = {
    'x-forwarded-for': '6.6.6.6',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'evil.example',
    'x-forwarded-prefix': '/outer',
    forwarded: 'for=6.6.6.6;proto=https',
    'x-real-ip': '6.6.6.6',
  };

  it('replaces a client\'s X-Forwarded-*, and drops its Forwarded and X-Real-IP, when its address is not trusted', async () => {
    for (const [gateway, from] of [[trusting, '127.0.0.1'], [plain, '127.0.0.2'], [plain, '127.0.0.1']] as const) {
      const answer = await send(gateway, from, '/echo/x', spoofed);
      assert.equal(answer.status, 200);
      const seen = JSON.parse(answer.body) as Record<string, string>;
      const port = new URL(gateway.url).port;
      assert.deepEqual(
        { for: seen['x-forwarded-for'], proto: seen['x-forwarded-proto'], host: seen['x-forwarded-host'], prefix: seen['x-forwarded-prefix'], forwarded: seen['forwarded'], realIp: seen['x-real-ip'] },
        { for: from, proto: 'http', host: `127.0.0.1:${port}`, prefix: '/echo', forwarded: undefined, realIp: undefined },
        `${gateway === plain ? 'default gateway' : 'trusting gateway'}, peer ${from}`,
      );
    }
  });

  it('honours them from a trusted proxy: X-Forwarded-For appended to, Proto/Host/Forwarded kept, the prefixes joined', async () => {
    const answer = await send(trusting, '127.0.0.2', '/echo/x', spoofed);
    const seen = JSON.parse(answer.body) as Record<string, string>;
    assert.deepEqual(
      { for: seen['x-forwarded-for'], proto: seen['x-forwarded-proto'], host: seen['x-forwarded-host'], prefix: seen['x-forwarded-prefix'], forwarded: seen['forwarded'], realIp: seen['x-real-ip'] },
      { for: '6.6.6.6, 127.0.0.2', proto: 'https', host: 'evil.example', prefix: '/outer/echo', forwarded: 'for=6.6.6.6;proto=https', realIp: '6.6.6.6' },
    );
  });

  it('rate-limits the client behind a trusted proxy by its own address, and a spoofing client by its socket\'s', async () => {
    // Behind the trusted proxy: two clients, a bucket each.
    assert.equal((await send(trusting, '127.0.0.2', '/limited/a', { 'x-forwarded-for': '198.51.100.1' })).status, 200);
    assert.equal((await send(trusting, '127.0.0.2', '/limited/a', { 'x-forwarded-for': '198.51.100.1' })).status, 429);
    assert.equal((await send(trusting, '127.0.0.2', '/limited/a', { 'x-forwarded-for': '198.51.100.2' })).status, 200);
    // A client that invents a new X-Forwarded-For each time still has one bucket: its socket's.
    assert.equal((await send(trusting, '127.0.0.1', '/limited/a', { 'x-forwarded-for': '198.51.100.3' })).status, 200);
    assert.equal((await send(trusting, '127.0.0.1', '/limited/a', { 'x-forwarded-for': '198.51.100.4' })).status, 429);
  });

  /** The access log's lines, each parsed (a torn or partial line fails the parse). */
  function logLines(file: string): AccessLogEntry[] {
    const text = readFileSync(file, 'utf8');
    assert.ok(text === '' || text.endsWith('\n'), 'the log ends with a whole line');
    return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AccessLogEntry);
  }

  it('writes one JSON line per request, checked against the requests made; no token, cookie or query reaches it; complete once the gateway drained', async () => {
    const file = join(dir, 'access.log');
    const gateway = createGateway({ consulAddress: agent.httpAddr, port: 0, discovery: { enabled: false }, routes: [
      { path: '/echo/**', service: 'echo' },
      { path: '/limited/**', service: 'echo', rateLimit: { ratePerSecond: 0.1, burst: 1 } },
    ], accessLog: { path: file } });
    await gateway.listen();
    const secrets = { authorization: 'Bearer SECRET-BEARER-1', cookie: 'sid=SECRET-COOKIE-2' };
    const made = [
      { method: 'GET', path: '/echo/a', sent: '/echo/a?access_token=SECRET-QUERY-3&x=1', body: undefined, status: 200, outcome: 'succeeded' },
      { method: 'POST', path: '/echo/b', sent: '/echo/b', body: 'hello', status: 200, outcome: 'succeeded' },
      { method: 'GET', path: '/nowhere', sent: '/nowhere?token=SECRET-QUERY-4', body: undefined, status: 404, outcome: 'noRoute' },
      { method: 'GET', path: '/limited/c', sent: '/limited/c', body: undefined, status: 200, outcome: 'succeeded' },
      { method: 'GET', path: '/limited/c', sent: '/limited/c', body: undefined, status: 429, outcome: 'rejected' },
    ];
    const answers: { status: number; requestId: string }[] = [];
    for (const m of made) answers.push(await send(gateway, '127.0.0.1', m.sent, secrets, m.body));
    assert.deepEqual(answers.map((a) => a.status), made.map((m) => m.status));
    await gateway.close({ graceMs: 1_000 });
    const text = readFileSync(file, 'utf8');
    assert.doesNotMatch(text, /SECRET/, 'a token, a cookie or a query was logged');
    const lines = logLines(file);
    assert.equal(lines.length, made.length, text);
    lines.forEach((line, i) => {
      const m = made[i]!;
      assert.equal(line.method, m.method);
      assert.equal(line.path, m.path);
      assert.equal(line.status, m.status);
      assert.equal(line.outcome, m.outcome);
      assert.equal(line.clientIp, '127.0.0.1');
      assert.ok(line.bytes !== null && line.bytes > 100 && line.bytes < 2_000, `bytes ${line.bytes}`);
      assert.ok(line.durationMs >= 0 && line.durationMs < 10_000);
      assert.ok(Math.abs(Date.parse(line.time) - Date.now()) < 60_000, line.time);
      if (m.outcome === 'noRoute') {
        assert.deepEqual([line.route, line.service, line.endpoint, line.attempts, line.requestId], [null, null, null, 0, null]);
        return;
      }
      assert.equal(line.requestId, answers[i]!.requestId);
      assert.equal(line.service, 'echo');
      assert.equal(line.endpoint, m.outcome === 'succeeded' ? `127.0.0.1:${backendPort}` : null);
      assert.equal(line.attempts, m.outcome === 'succeeded' ? 1 : 0);
    });
  });

  it('logs the query with includeQuery, secret-looking values redacted; a bad accessLog is a typed error', async () => {
    const file = join(dir, 'access-query.log');
    const gateway = createGateway({ consulAddress: agent.httpAddr, port: 0, discovery: { enabled: false }, routes: [{ path: '/echo/**', service: 'echo' }], accessLog: { path: file, includeQuery: true } });
    await gateway.listen();
    await send(gateway, '127.0.0.1', '/echo/q?page=2&access_token=SECRET-5&api_key=SECRET-6&Password=SECRET-7&q=a+b', {});
    await gateway.close({ graceMs: 1_000 });
    assert.deepEqual(logLines(file).map((l) => l.path), ['/echo/q?page=2&access_token=[redacted]&api_key=[redacted]&Password=[redacted]&q=a+b']);
    assert.throws(() => createGateway({ accessLog: { path: '' } }), (e: unknown) => e instanceof InvalidOptionError && e.message.includes('accessLog.path'));
    assert.throws(() => createGateway({ accessLog: { path: 'stdout', inclideQuery: true } as never }), (e: unknown) => e instanceof InvalidOptionError && e.message.includes('includeQuery'));
    const unwritable = createGateway({ consulAddress: agent.httpAddr, port: 0, discovery: { enabled: false }, accessLog: { path: join(dir, 'no-such-dir', 'a.log') } });
    await assert.rejects(unwritable.listen(), (e: unknown) => e instanceof InvalidOptionError && e.message.includes('no-such-dir') && e.message.includes('ENOENT'));
    await unwritable.destroy();
  });

  it('with --workers 2, every worker appends whole lines to one file; SIGUSR2 reopens it after logrotate moved it', async () => {
    const file = join(dir, 'workers.log');
    const config = join(dir, 'gateway.json');
    writeFileSync(config, JSON.stringify({ discovery: { enabled: false }, routes: [{ path: '/echo/**', service: 'echo' }], accessLog: { path: file } }));
    const child = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', 'packages/gateway/src/cli.ts', '--config', config, '--workers', '2'], {
      env: { ...process.env, CONSUL_HTTP_ADDR: agent.httpAddr, PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = once(child, 'exit');
    try {
      const started = Date.now();
      while (!/listening on (http:\/\/\S+)/.test(output)) {
        assert.ok(Date.now() - started < 30_000 && child.exitCode === null, `the gateway did not start: ${output}`);
        await sleep(50);
      }
      const url = /listening on (http:\/\/\S+)/.exec(output)![1]!;
      // A connection per request: the kernel spreads them over both workers.
      const burst = async (n: number, tag: string): Promise<void> => {
        const answers = await Promise.all(Array.from({ length: n }, (_, i) => send(url, '127.0.0.1', `/echo/${tag}/${i}`, {})));
        assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([200]));
      };
      for (let i = 0; i < 4; i++) await burst(20, 'before');
      renameSync(file, `${file}.1`); // what logrotate does
      child.kill('SIGUSR2');
      const reopened = Date.now();
      while (!existsSync(file)) {
        assert.ok(Date.now() - reopened < 10_000, `SIGUSR2 did not reopen the log: ${output}`);
        await sleep(20);
      }
      await sleep(300); // the second worker's reopen
      await burst(20, 'after');
      const status = (await (await fetch(`${url}/_proxyless/status.json`, { signal: AbortSignal.timeout(10_000) })).json()) as GatewayStatus;
      assert.equal(status.workers?.length, 2);
      assert.ok(status.workers.every((w) => w.requests > 0), `both workers served (and logged) requests: ${JSON.stringify(status.workers)}`);
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, output);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    const rotated = logLines(`${file}.1`);
    const fresh = logLines(file);
    assert.equal(rotated.length, 80, 'every request before the rotation, one whole line each');
    assert.ok(rotated.every((l) => l.path.startsWith('/echo/before/') && l.status === 200));
    assert.equal(fresh.length, 20, 'every request after the rotation, in the new file');
    assert.ok(fresh.every((l) => l.path.startsWith('/echo/after/') && l.status === 200));
  });
});
