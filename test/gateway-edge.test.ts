/**
 * @proxyless/gateway at the edge: who may say who the client is
 * (`trustedProxies` and `X-Forwarded-*`), with a real Consul agent, a real
 * backend and real sockets from two loopback addresses (127.0.0.1 and 127.0.0.2).
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { once } from 'node:events';
import { isIP, type AddressInfo } from 'node:net';
import fc from 'fast-check';
import { startConsulAgent, type ConsulAgent } from './support/consul.js';
import { createGateway, type Gateway } from '@proxyless/gateway';
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

describe('@proxyless/gateway trusted proxies (real Consul, real backend, real sockets)', function () {
  this.timeout(60_000);
  let agent: ConsulAgent;
  let backend: Server;
  /** Trusts 127.0.0.2 only. */
  let trusting: Gateway;
  /** The default: trusts nobody. */
  let plain: Gateway;

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
      body: JSON.stringify({ Name: 'echo', ID: 'echo-1', Address: '127.0.0.1', Port: (backend.address() as AddressInfo).port }),
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
  });

  /** A request over a fresh socket from `from` (a loopback address) to the gateway. */
  function send(gateway: Gateway, from: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
    const port = Number(new URL(gateway.url).port);
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path, localAddress: from, headers, agent: false, signal: AbortSignal.timeout(10_000) }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.once('error', reject);
      });
      req.once('error', reject);
      req.end();
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
});
