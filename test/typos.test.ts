/**
 * Typos fail loudly: an unknown option key in any public options object is an
 * ERR_INVALID_OPTION naming the nearest valid key; a strategy given by name
 * or as an uncalled factory names the call to write; a malformed Consul
 * address says what is malformed; an unknown REGISTRY / --registry is an
 * error; NODE_DEBUG=proxyless lists the registry variables read and ignored.
 */
import assert from 'node:assert/strict';
import {
  ConsulHttpClient,
  ConsulResolver,
  DnsSrvResolver,
  FallbackResolver,
  StaticResolver,
  consistentHash,
  leastRequest,
  locality,
  peakEwma,
  roundRobin,
  slowStart,
  weightedRoundRobin,
  isProxylessError,
} from '@proxyless/core';
import { EtcdClient, EtcdResolver, confdLayout, etcdRegistry, proxylessLayout } from '@proxyless/etcd';
import { createClient, createDispatcher } from '@proxyless/http-client';
import { Registrar, ShutdownCoordinator, consulRegistry } from '@proxyless/registrar';
import { runSource, type Ran } from './support/processes.js';

/** Asserts `make` throws ERR_INVALID_OPTION for `option` suggesting `suggested`. */
function rejectsKey(make: () => unknown, option: string, suggested: string): void {
  assert.throws(make, (error: unknown) => {
    assert.ok(isProxylessError(error, 'ERR_INVALID_OPTION'), String(error));
    assert.equal((error as unknown as { option: string }).option, option);
    assert.match((error as Error).message, new RegExp(`^Invalid option "${option.replace(/\./g, '\\.')}": not an option of .*; did you mean "${suggested}"\\?$`));
    return true;
  });
}

const run = (args: string[], env: NodeJS.ProcessEnv): Promise<Ran> => runSource(args, env, 30_000);

describe('typos fail loudly', function () {
  this.timeout(60_000);
  const resolver = new StaticResolver({ services: { web: [{ address: '127.0.0.1', port: 1 }] } });
  const noEnv = { env: {} };
  after(() => resolver.close());

  it('createClient: unknown keys at every level name the nearest valid key', async function () {
    rejectsKey(() => createClient({ service: 'web', resolver, retrys: 3 } as never), 'retrys', 'retry');
    rejectsKey(() => createClient({ service: 'web', resolver, timeout: 500 } as never), 'timeout', 'timeoutMs');
    rejectsKey(() => createClient({ service: 'web', resolver, breaker: { volumeTreshold: 3 } } as never), 'breaker.volumeTreshold', 'volumeThreshold');
    rejectsKey(() => createClient({ service: 'web', resolver, outlierDetection: { consecutiveFailure: 3 } } as never), 'outlierDetection.consecutiveFailure', 'consecutiveFailures');
    rejectsKey(() => createClient({ service: 'web', resolver, retry: { maxRetry: 3 } } as never), 'retry.maxRetry', 'maxRetries');
    rejectsKey(() => createClient({ service: 'web', resolver, retry: { budget: { ration: 0.1 } } } as never), 'retry.budget.ration', 'ratio');
    rejectsKey(() => createClient({ service: 'web', resolver, tls: { servername: 'x', rejectUnauthorised: false } } as never), 'tls.rejectUnauthorised', 'rejectUnauthorized');
    // Every documented key is accepted (the lists are checked against the types at compile time; this checks the wiring).
    const client = createClient({
      service: 'web', resolver, query: {}, balancer: roundRobin(), timeoutMs: 1000, perTryTimeoutMs: 500, connectTimeoutMs: 100,
      connectionsPerEndpoint: 2, keepAliveTimeoutMs: 1000, maxResponseBytes: 1024, drainTimeoutMs: 10,
      breaker: { errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeoutMs: 100, rollingWindowMs: 1000, rollingBuckets: 10 },
      outlierDetection: { consecutiveFailures: 3, baseEjectionTimeMs: 10, maxEjectionTimeMs: 100, maxEjectionPercent: 50, panicThresholdPercent: 50 },
      failureStatuses: [500],
      retry: { maxRetries: 1, initialMs: 1, maxMs: 10, retryOnStatuses: [503], budget: { ratio: 0.1, windowMs: 1000, minRetriesPerSecond: 1 } },
      scheme: 'auto', tls: { rejectUnauthorized: true, servername: 'x' }, logger: false, retryLayers: [],
    });
    // Policies, the other public options object of a client.
    rejectsKey(() => client.policy({ timeoutMS: 5 } as never), 'timeoutMS', 'timeoutMs');
    rejectsKey(() => client.policy({ retry: { initalMs: 5 } } as never), 'retry.initalMs', 'initialMs');
    client.policy({ timeoutMs: 100, perTryTimeoutMs: 50, retry: { maxRetries: 1, initialMs: 1, maxMs: 2, retryOnStatuses: [503] } });
    // Request options too (checked on the call; the promise rejects).
    await assert.rejects(client.request({ path: '/', timeoutMS: 5 } as never), (e: Error) =>
      isProxylessError(e, 'ERR_INVALID_OPTION') && e.message === 'Invalid option "timeoutMS": not an option of client.request(); did you mean "timeoutMs"?');
    await assert.rejects(client.text({ path: '/', idempotant: true } as never), /did you mean "idempotent"\?/);
    await client.close();
  });

  it('createDispatcher: its own keys and its client options', async function () {
    rejectsKey(() => createDispatcher({ resolver, serviceDomian: 'x' } as never), 'serviceDomian', 'serviceDomain');
    rejectsKey(() => createDispatcher({ resolver, client: { retrys: 3 } } as never), 'client.retrys', 'retry');
    rejectsKey(() => createDispatcher({ resolver, client: { breaker: { resetTimeout: 3 } } } as never), 'client.breaker.resetTimeout', 'resetTimeoutMs');
    const dispatcher = createDispatcher({ resolver, client: { timeoutMs: 100 }, services: {}, serviceDomain: 'service.consul', bareHostnames: false });
    await dispatcher.close();
  });

  it('resolvers: Consul (and its connection, rate limit and backoff), DNS SRV, static, fallback', async function () {
    rejectsKey(() => new ConsulResolver({ adress: '127.0.0.1:8500', ...noEnv } as never), 'adress', 'address');
    rejectsKey(() => new ConsulResolver({ maxStale: 5, ...noEnv } as never), 'maxStale', 'maxStaleMs');
    rejectsKey(() => new ConsulResolver({ rateLimit: { brust: 5 }, ...noEnv } as never), 'rateLimit.brust', 'burst');
    rejectsKey(() => new ConsulResolver({ backoff: { initalMs: 5 }, ...noEnv } as never), 'backoff.initalMs', 'initialMs');
    rejectsKey(() => new ConsulResolver({ tls: { servername: 'x' }, ...noEnv } as never), 'tls.servername', 'serverName');
    rejectsKey(() => new ConsulHttpClient({ tokne: 's3cret' } as never, {}), 'tokne', 'token');
    assert.throws(() => new ConsulHttpClient({ tokne: 's3cret' } as never, {}), (e: Error) => !e.message.includes('s3cret'));
    rejectsKey(() => new DnsSrvResolver({ domian: 'consul' } as never), 'domian', 'domain');
    rejectsKey(() => new StaticResolver({ service: {} } as never), 'service', 'services');
    rejectsKey(() => new FallbackResolver({ primary: resolver, secondary: resolver, primaryTimeout: 5 } as never), 'primaryTimeout', 'primaryTimeoutMs');
    const ok = [
      new ConsulResolver({ address: '127.0.0.1:8500', env: {}, consistency: 'stale', cached: false, maxStaleMs: 5, waitMs: 5000, rateLimit: { burst: 2, minIntervalMs: 10, jitterMs: 1 }, backoff: { initialMs: 5, maxMs: 50 }, timeoutMs: 100, http2: false }),
      new DnsSrvResolver({ domain: 'consul', servers: ['127.0.0.1:8600'], timeoutMs: 100, attempts: 1, logger: false }),
      new FallbackResolver({ primary: resolver, secondary: resolver, primaryTimeoutMs: 5, closeResolvers: false }),
    ];
    for (const r of ok) await r.close();
  });

  it('registrar: its options, weights, retry, Consul connection, and the shutdown coordinator', function () {
    const base = { name: 'web', port: 8080, address: '127.0.0.1', logger: false as const };
    rejectsKey(() => new Registrar({ ...base, ttl: 5000 } as never), 'ttl', 'ttlMs');
    rejectsKey(() => new Registrar({ ...base, tag: ['x'] } as never), 'tag', 'tags');
    rejectsKey(() => new Registrar({ ...base, weights: { passng: 1, warning: 1 } } as never), 'weights.passng', 'passing');
    rejectsKey(() => new Registrar({ ...base, retry: { initalMs: 5 } } as never), 'retry.initalMs', 'initialMs');
    rejectsKey(() => consulRegistry({ adress: 'x' } as never), 'adress', 'address');
    rejectsKey(() => new ShutdownCoordinator({ deadline: 5000 } as never), 'deadline', 'deadlineMs');
    new ShutdownCoordinator({ deadlineMs: 5000, drainDelayMs: 0, exit: false, log: () => undefined });
  });

  it('etcd: connection, resolver, registry and layouts (a misspelt password key is not echoed)', async function () {
    rejectsKey(() => new EtcdResolver({ endpoint: 'http://127.0.0.1:2379', env: {} } as never), 'endpoint', 'endpoints');
    rejectsKey(() => new EtcdResolver({ watchIdle: 100, env: {} } as never), 'watchIdle', 'watchIdleMs');
    rejectsKey(() => etcdRegistry({ prefx: '/x' } as never), 'prefx', 'prefix');
    rejectsKey(() => new EtcdClient({ passwrd: 'hunter2' } as never, {}), 'passwrd', 'password');
    assert.throws(() => new EtcdClient({ passwrd: 'hunter2' } as never, {}), (e: Error) => !e.message.includes('hunter2'));
    rejectsKey(() => new EtcdClient({ tls: { serverName: 'x', rejectUnauthorised: true } } as never, {}), 'tls.rejectUnauthorised', 'rejectUnauthorized');
    rejectsKey(() => proxylessLayout({ prefiks: '/x' } as never), 'prefiks', 'prefix');
    rejectsKey(() => confdLayout({ prefixx: '/x' } as never), 'prefixx', 'prefix');
    const r = new EtcdResolver({ endpoints: 'http://127.0.0.1:2379', env: {}, watchIdleMs: 1000, maxValueBytes: 100, backoff: { initialMs: 5, maxMs: 50 } });
    await r.close();
    etcdRegistry({ endpoints: 'http://127.0.0.1:2379', prefix: '/x', env: {} });
  });

  it('balancer options: unknown keys name the nearest valid key', function () {
    rejectsKey(() => roundRobin({ randm: Math.random } as never), 'randm', 'random');
    rejectsKey(() => consistentHash({ algoritm: 'maglev' } as never), 'algoritm', 'algorithm');
    rejectsKey(() => leastRequest({ choice: 2 } as never), 'choice', 'choices');
    rejectsKey(() => peakEwma({ defaultLatency: 5 } as never), 'defaultLatency', 'defaultLatencyMs');
    rejectsKey(() => weightedRoundRobin({ weights: () => 1 } as never), 'weights', 'weight');
    rejectsKey(() => slowStart(roundRobin(), { window: 5 } as never), 'window', 'windowMs');
    rejectsKey(() => locality(roundRobin(), { zon: 'a' } as never), 'zon', 'zone');
    consistentHash({ algorithm: 'maglev', tableSize: 65_537 });
    locality(roundRobin(), { zone: 'a', minEndpoints: 1, minFraction: 0.5 });
  });

  it('a balancer given as a string or an uncalled factory names the factory to call', function () {
    const cases: [unknown, RegExp][] = [
      ['round-robin', /"round-robin" is a name, not a balancer: use balancer: roundRobin\(\) \(import \{ roundRobin \} from '@proxyless\/core'\)/],
      ['least_request', /use balancer: leastRequest\(\)/],
      ['maglev', /use balancer: consistentHash\(\)/],
      ['fastest', /strategies are values, not names: use one of roundRobin\(\), random\(\), leastRequest\(\), peakEwma\(\)/],
      [roundRobin, /is a balancer factory, not a balancer: call it, e.g. balancer: roundRobin\(\)/],
      [locality, /call it, e.g. balancer: locality\(inner, …\)/],
    ];
    for (const [balancer, message] of cases) {
      assert.throws(() => createClient({ service: 'web', resolver, balancer } as never), (e: Error) => {
        assert.ok(isProxylessError(e, 'ERR_INVALID_OPTION'));
        assert.match(e.message, message);
        return true;
      });
    }
  });

  it('a malformed Consul address says what is malformed and what to write', function () {
    const cases: [string, RegExp][] = [
      ['http//127.0.0.1:8500', /^Invalid option "CONSUL_HTTP_ADDR": "http\/\/127\.0\.0\.1:8500" lacks ":\/\/" after the scheme: did you mean "http:\/\/127\.0\.0\.1:8500"\?$/],
      ['https:/10.0.0.1:8501', /lacks ":\/\/" after the scheme: did you mean "https:\/\/10\.0\.0\.1:8501"\?/],
      ['127.0.0.1:8500/v1/agent', /must be only scheme, host and port, without a path, query or fragment \(has "\/v1\/agent"\): use "http:\/\/127\.0\.0\.1:8500"/],
      ['ftp://127.0.0.1:8500', /must use http or https \(has "ftp"\)/],
    ];
    for (const [address, message] of cases) {
      assert.throws(() => new ConsulHttpClient({}, { CONSUL_HTTP_ADDR: address }), (e: Error) => {
        assert.ok(isProxylessError(e, 'ERR_INVALID_OPTION'));
        assert.match(e.message, message);
        return true;
      });
    }
    // etcd endpoints, from ETCDCTL_ENDPOINTS or the option.
    assert.throws(() => new EtcdClient({}, { ETCDCTL_ENDPOINTS: 'http//127.0.0.1:2379' }), (e: Error) =>
      /^Invalid option "ETCDCTL_ENDPOINTS\[0\]": "http\/\/127\.0\.0\.1:2379" lacks ":\/\/" after the scheme: did you mean "http:\/\/127\.0\.0\.1:2379"\?$/.test(e.message));
    assert.throws(() => new EtcdClient({ endpoints: ['127.0.0.1:2379/v3'] }, {}), (e: Error) => /^Invalid option "endpoints\[0\]": .*\(has "\/v3"\): use "http:\/\/127\.0\.0\.1:2379"$/.test(e.message));
    // An explicit option is named as the option.
    assert.throws(() => new ConsulHttpClient({ address: 'http//x:8500' }, {}), (e: Error) => /^Invalid option "address": .* did you mean "http:\/\/x:8500"\?$/.test(e.message));
  });

  it('an unknown REGISTRY (examples) or --registry (CLI) is an error, not Consul', async function () {
    const client = await run(['examples/client/client.ts', 'hello', '1'], { REGISTRY: 'etc', CONSUL_HTTP_ADDR: '127.0.0.1:1' });
    assert.equal(client.code, 2, client.stderr);
    assert.equal(client.stderr.trim(), 'REGISTRY must be "consul" or "etcd" (unset means consul), got "etc": did you mean "etcd"?');
    const cli = await run(['packages/registrar/src/cli.ts', '--name', 'web', '--port', '8080', '--registry', 'etc', '--', 'true'], {});
    assert.equal(cli.code, 2, cli.stderr);
    assert.match(cli.stderr, /--registry must be consul or etcd, got "etc": did you mean etcd\?/);
  });

  it('NODE_DEBUG=proxyless lists the CONSUL_*/ETCDCTL_* variables read and those ignored, never their values', async function () {
    const script = "import { ConsulHttpClient } from '@proxyless/core'; import { EtcdClient } from '@proxyless/etcd';" +
      'await new ConsulHttpClient().close(); await new EtcdClient().close();';
    const env = {
      NODE_DEBUG: 'proxyless', CONSUL_HTTP_ADRR: '10.0.0.1:8500', CONSUL_HTTP_TOKEN: 'tok-s3cret',
      ETCDCTL_ENDPOINTS: 'http://127.0.0.1:2379', ETCDCTL_PASWORD: 'pw-s3cret',
    };
    const result = await run(['--input-type=module', '-e', script], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /PROXYLESS \d+: Consul connection: read CONSUL_HTTP_TOKEN; not read: CONSUL_HTTP_ADRR \(did you mean CONSUL_HTTP_ADDR\?\)/);
    assert.match(result.stderr, /PROXYLESS \d+: etcd connection: read ETCDCTL_ENDPOINTS; not read: ETCDCTL_PASWORD \(did you mean ETCDCTL_PASSWORD\?\)/);
    assert.doesNotMatch(result.stderr, /s3cret|10\.0\.0\.1/);
    // Without NODE_DEBUG: silent.
    const quiet = await run(['--input-type=module', '-e', script], { ...env, NODE_DEBUG: '' });
    assert.equal(quiet.stderr, '');
  });
});
