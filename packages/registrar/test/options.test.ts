import assert from 'node:assert/strict';
import { ConsulHttpClient, InvalidOptionError } from '@proxyless/core';
import { ConsulRegistry, Registrar, consulRegistry, parseDuration, validateMeta, type ConsulRegistryOptions, type RegistrarOptions } from '../src/index.js';
import { defaultAddress, resolveRegistrarOptions } from '../src/options.js';
import { truncateOutput } from '../src/health.js';
import { formatDuration } from '../src/registry-consul.js';
import { parseCliArgs, UsageError } from '../src/cli-args.js';

const base: RegistrarOptions = { name: 'web', port: 8080, address: '10.0.0.5', registry: consulRegistry({ address: '127.0.0.1:1' }) };

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
    assert.equal(o.ttlMs, 15_000);
    assert.equal(o.heartbeatIntervalMs, 5000);
    assert.equal(o.requestTimeoutMs, 5000);
    assert.equal(o.retryMaxMs, 5000, 'backoff capped at one heartbeat interval');
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


  it('rejects bad weights, tags, jitter and IDs', function () {
    rejects({ weights: { passing: 0, warning: 1 } }, 'weights.passing');
    rejects({ weights: { passing: 1, warning: -1 } }, 'weights.warning');
    rejects({ tags: ['ok', 'has space'] }, 'tags[1]');
    rejects({ jitter: 0.9 }, 'jitter');
    rejects({ id: 'a/b' }, 'id');
    rejects({ registry: 'consul' }, 'registry');
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

describe('consulRegistry() and the options that moved to it', function () {
  const rejectsRegistry = (options: ConsulRegistryOptions | Record<string, unknown>, option: string): void => {
    assert.throws(
      () => consulRegistry(options),
      (error: unknown) => error instanceof InvalidOptionError && error.option === option && error.message.includes(`"${option}"`),
    );
  };

  it('is the default registry: a TTL check service:<id> in the agent from CONSUL_HTTP_ADDR', function () {
    const registrar = new Registrar({ name: 'web', port: 8080, address: '10.0.0.5' });
    assert.ok(registrar.registry instanceof ConsulRegistry);
    assert.equal(registrar.registry.checkId, `service:${registrar.options.id}`);
    assert.equal(registrar.registry.checkName, 'web TTL heartbeat');
    assert.equal(registrar.registry.deregisterCriticalServiceAfterMs, 60_000);
    assert.deepEqual(registrar.registration, {
      name: 'web', id: registrar.options.id, address: '10.0.0.5', port: 8080, registry: 'consul', registrationId: `service:${registrar.options.id}`,
    });
  });

  it('takes the TTL check settings and the connection', function () {
    const registrar = new Registrar({
      ...base,
      registry: consulRegistry({ address: '10.0.0.9:8501', checkId: 'web-check', checkName: 'web beats', deregisterCriticalServiceAfterMs: 0 }),
    });
    assert.ok(registrar.registry instanceof ConsulRegistry);
    assert.equal(registrar.registration.registrationId, 'web-check');
    assert.equal(registrar.registry.checkName, 'web beats');
    assert.equal(registrar.registry.deregisterCriticalServiceAfterMs, 0);
    assert.equal(registrar.registry.client.connection.origin, 'http://10.0.0.9:8501');
  });

  it('validates its options at once, naming the bad one', function () {
    rejectsRegistry({ deregisterCriticalServiceAfterMs: 59_999 }, 'deregisterCriticalServiceAfterMs');
    rejectsRegistry({ checkId: '' }, 'checkId');
    rejectsRegistry({ checkId: 'a/b' }, 'checkId');
    rejectsRegistry({ checkName: '' }, 'checkName');
    rejectsRegistry({ client: {} }, 'client');
    rejectsRegistry({ adress: 'x' }, 'adress');
    const client = new ConsulHttpClient({ address: '127.0.0.1:1' });
    rejectsRegistry({ client, address: '127.0.0.1:2' }, 'client');
    assert.throws(() => consulRegistry({ adress: 'x' } as never), /did you mean "address"\?/);
  });

  it('refuses the old top-level spellings with an error naming where each moved', function () {
    const moved: [Record<string, unknown>, string, string][] = [
      [{ checkId: 'c' }, 'checkId', 'moved: use registry: consulRegistry({ checkId })'],
      [{ checkName: 'n' }, 'checkName', 'moved: use registry: consulRegistry({ checkName })'],
      [{ deregisterCriticalServiceAfterMs: 90_000 }, 'deregisterCriticalServiceAfterMs', 'moved: use registry: consulRegistry({ deregisterCriticalServiceAfterMs })'],
      [{ consul: { address: '127.0.0.1:1', token: 'secret-token' } }, 'consul', 'moved: use registry: consulRegistry({ address, token, … })'],
      [{ consul: new ConsulHttpClient({ address: '127.0.0.1:1' }) }, 'consul', 'moved: use registry: consulRegistry({ client })'],
    ];
    for (const [options, option, words] of moved) {
      // Beside an etcd registry too: etcd would have ignored them silently before.
      for (const registry of [undefined, (): never => assert.fail('the registry must not be built')]) {
        assert.throws(
          () => new Registrar({ name: 'web', port: 8080, address: '10.0.0.5', ...(registry ? { registry } : {}), ...options }),
          (error: unknown) => {
            assert.ok(error instanceof InvalidOptionError, String(error));
            assert.equal(error.code, 'ERR_INVALID_OPTION');
            assert.equal(error.option, option);
            assert.ok(error.message.startsWith(`Invalid option "${option}": ${words}`), error.message);
            assert.doesNotMatch(error.message, /secret-token/);
            return true;
          },
        );
      }
    }
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

  it('gives the Consul settings to consulRegistry(), and refuses them with etcd', function () {
    const c = parseCliArgs(['--name', 'w', '--port', '1', '--consul', '10.0.0.2:8500', '--deregister-after', '2m', '--', 'x']);
    assert.deepEqual(c.consul, { address: '10.0.0.2:8500', deregisterCriticalServiceAfterMs: 120_000 });
    assert.equal('consul' in c.registrar, false);
    assert.equal('deregisterCriticalServiceAfterMs' in c.registrar, false);
    assert.throws(() => parseCliArgs(['--name', 'w', '--port', '1', '--registry', 'etcd', '--deregister-after', '2m', '--', 'x']), /--deregister-after is a Consul setting/);
  });

  it('defaults to a TCP probe and names the bad argument', function () {
    assert.deepEqual(parseCliArgs(['--name', 'w', '--port', '1', '--', 'x']).probe, { kind: 'tcp' });
    assert.throws(() => parseCliArgs(['--name', 'w', '--port', '1', '--check-tcp', '--check-http', '/', '--', 'x']), UsageError);
    assert.throws(() => parseCliArgs(['--name', 'w', '--port', '1', '--meta', 'novalue', '--', 'x']), /--meta/);
    assert.throws(() => parseCliArgs(['--name', 'w', '--port', '1', '--deadline', '10ms', '--', 'x']), /--deadline/);
  });
});
