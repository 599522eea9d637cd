import assert from 'node:assert/strict';
import { InvalidOptionError } from '@proxyless/core';
import { Registrar, parseDuration, validateMeta, type RegistrarOptions } from '../src/index.js';
import { defaultAddress, formatDuration, resolveRegistrarOptions, truncateOutput } from '../src/options.js';
import { parseCliArgs, UsageError } from '../src/cli-args.js';

const base: RegistrarOptions = { name: 'web', port: 8080, address: '10.0.0.5', consul: { address: '127.0.0.1:1' } };

function rejects(options: Partial<RegistrarOptions> | Record<string, unknown>, option: string | RegExp): void {
  assert.throws(
    () => new Registrar({ ...base, ...options }),
    (error: unknown) => {
      assert.ok(error instanceof InvalidOptionError, String(error));
      if (typeof option === 'string') assert.equal(error.option, option);
      else assert.match(error.option, option);
      assert.match(error.message, new RegExp(`"${error.option.replace(/[.[\]]/g, '\\$&')}"`));
      return true;
    },
  );
}

describe('Registrar options', function () {
  it('applies sensible defaults', function () {
    const o = resolveRegistrarOptions({ name: 'web', port: 8080, address: '10.0.0.5' });
    assert.match(o.id, /^web-.+-8080$/);
    assert.equal(o.checkId, `service:${o.id}`);
    assert.equal(o.ttlMs, 15_000);
    assert.equal(o.heartbeatIntervalMs, 5000);
    assert.equal(o.deregisterCriticalServiceAfterMs, 60_000);
    assert.equal(o.requestTimeoutMs, 5000);
    assert.equal(o.retryMaxDelayMs, 5000, 'backoff capped at one heartbeat interval');
    assert.deepEqual(o.tags, []);
  });

  it('defaults the address to a non-internal IPv4 address, never a wildcard', function () {
    const picked = defaultAddress({
      lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true, netmask: '255.0.0.0', mac: '', cidr: null }],
      eth0: [
        { address: 'fe80::1', family: 'IPv6', internal: false, netmask: '', mac: '', cidr: null, scopeid: 2 },
        { address: '10.1.2.3', family: 'IPv4', internal: false, netmask: '255.0.0.0', mac: '', cidr: null },
      ],
    });
    assert.equal(picked, '10.1.2.3');
    assert.equal(defaultAddress({ lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true, netmask: '', mac: '', cidr: null }] }), undefined);
    const fromHost = defaultAddress();
    if (fromHost !== undefined) assert.notEqual(fromHost, '0.0.0.0');
  });

  it('rejects an empty or invalid name', function () {
    rejects({ name: '' }, 'name');
    rejects({ name: undefined }, 'name');
    rejects({ name: 'web/../x' }, 'name');
  });

  it('rejects bad ports', function () {
    for (const port of [0, -1, 65_536, 80.5, Number.NaN, '8080']) rejects({ port }, 'port');
  });

  it('rejects wildcard and malformed addresses', function () {
    for (const address of ['0.0.0.0', '::', '', 'a b', 'host/path']) rejects({ address }, 'address');
  });

  it('rejects a TTL too short for the heartbeat', function () {
    rejects({ ttlMs: 500 }, 'ttlMs');
    rejects({ ttlMs: 2000, heartbeatIntervalMs: 1500 }, 'ttlMs');
    rejects({ ttlMs: 10_000, requestTimeoutMs: 20_000 }, 'requestTimeoutMs');
    assert.doesNotThrow(() => resolveRegistrarOptions({ ...base, ttlMs: 2000 }));
  });

  it('rejects DeregisterCriticalServiceAfter under Consul\'s 1-minute minimum', function () {
    rejects({ deregisterCriticalServiceAfterMs: 59_999 }, 'deregisterCriticalServiceAfterMs');
    assert.equal(resolveRegistrarOptions({ ...base, deregisterCriticalServiceAfterMs: 0 }).deregisterCriticalServiceAfterMs, 0);
  });

  it('rejects bad weights, tags, jitter and IDs', function () {
    rejects({ weights: { passing: 0, warning: 1 } }, 'weights.passing');
    rejects({ weights: { passing: 1, warning: -1 } }, 'weights.warning');
    rejects({ tags: ['ok', 'has space'] }, 'tags[1]');
    rejects({ jitter: 0.9 }, 'jitter');
    rejects({ id: 'a/b' }, 'id');
    rejects({ checkId: '' }, 'checkId');
  });

  it('enforces Consul\'s meta rules', function () {
    assert.deepEqual(validateMeta({ version: '1', 'az_1-b': 'x' }), { version: '1', 'az_1-b': 'x' });
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
    rejects({ meta: many }, 'meta');
    rejects({ meta: { 'bad.key': 'v' } }, 'meta.bad.key');
    rejects({ meta: { ['k'.repeat(129)]: 'v' } }, /^meta\.k+$/);
    rejects({ meta: { 'consul-version': 'v' } }, 'meta.consul-version');
    rejects({ meta: { 'Consul-version': 'v' } }, 'meta.Consul-version');
    rejects({ meta: { big: 'x'.repeat(513) } }, 'meta.big');
    rejects({ meta: { n: 1 } }, 'meta.n');
    assert.doesNotThrow(() => validateMeta({ ['k'.repeat(128)]: 'x'.repeat(512) }));
  });
});

describe('durations and check output', function () {
  it('parses Go-style durations', function () {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('15s'), 15_000);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('0'), 0);
    for (const bad of ['', '15', 's', '1x', '1s junk', '-1s']) assert.throws(() => parseDuration(bad, '--ttl'), /--ttl/);
  });

  it('formats durations for Consul', function () {
    assert.equal(formatDuration(15_000), '15s');
    assert.equal(formatDuration(1500), '1500ms');
  });

  it('caps output at 4096 bytes without splitting a character', function () {
    assert.equal(truncateOutput('short'), 'short');
    const long = truncateOutput('é'.repeat(5000));
    assert.ok(Buffer.byteLength(long) <= 4096);
    assert.ok(!long.includes('\uFFFD'));
    assert.match(long, /truncated\]$/);
  });
});

describe('proxyless-register arguments', function () {
  it('parses a full command line', function () {
    const c = parseCliArgs([
      '--name', 'web', '--port', '8080', '--tag', 'a', '--tag', 'b', '--meta', 'k=v=w', '--ttl', '6s',
      '--check-http', '/health', '--drain-delay', '2s', '--deadline', '20s', '--', 'python3', '-m', 'http.server',
    ]);
    assert.equal(c.registrar.name, 'web');
    assert.equal(c.registrar.port, 8080);
    assert.deepEqual(c.registrar.tags, ['a', 'b']);
    assert.deepEqual(c.registrar.meta, { k: 'v=w' });
    assert.equal(c.registrar.ttlMs, 6000);
    assert.deepEqual(c.probe, { kind: 'http', url: 'http://127.0.0.1:8080/health' });
    assert.equal(c.drainDelayMs, 2000);
    assert.equal(c.deadlineMs, 20_000);
    assert.deepEqual(c.command, ['python3', '-m', 'http.server']);
  });

  it('defaults to a TCP probe and names the bad argument', function () {
    assert.deepEqual(parseCliArgs(['--name', 'w', '--port', '1', '--', 'x']).probe, { kind: 'tcp' });
    assert.throws(() => parseCliArgs(['--name', 'w', '--port', '1', '--check-tcp', '--check-http', '/', '--', 'x']), UsageError);
    assert.throws(() => parseCliArgs(['--name', 'w', '--port', '1', '--meta', 'novalue', '--', 'x']), /--meta/);
    assert.throws(() => parseCliArgs(['--name', 'w', '--port', '1', '--deadline', '10ms', '--', 'x']), /--deadline/);
  });
});
