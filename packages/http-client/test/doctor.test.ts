import assert from 'node:assert/strict';
import { DnsSrvResolver, StaticResolver, type ConfigWarning } from '@proxyless/core';
import { checkDnsTtl, checkHeartbeat } from '@proxyless/core/internal';
import { createClient, type ClientOptions, type ProxylessClient } from '@proxyless/http-client';
import { instance, FakeResolver } from './helpers.js';

/** Builds a client with a logger that records, waits a tick, and returns what the doctor said. */
async function warningsFor(options: Omit<ClientOptions, 'service' | 'resolver'>, endpoints = 3): Promise<{ events: ConfigWarning[]; lines: string[]; client: ProxylessClient }> {
  const resolver = new FakeResolver();
  resolver.set(Array.from({ length: endpoints }, (_, i) => instance(10_000 + i)));
  const lines: string[] = [];
  const client = createClient({ ...options, service: 'svc', resolver, logger: { warn: (line) => lines.push(line) } });
  const events: ConfigWarning[] = [];
  client.on('configWarning', (w) => events.push(w));
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  return { events, lines, client };
}

describe('configuration doctor', () => {
  const clients: ProxylessClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  async function check(options: Omit<ClientOptions, 'service' | 'resolver'>, endpoints = 3): Promise<{ events: ConfigWarning[]; lines: string[] }> {
    const r = await warningsFor(options, endpoints);
    clients.push(r.client);
    // The event and the logger say the same thing, once per warning.
    assert.equal(r.lines.length, r.events.length);
    r.events.forEach((w, i) => {
      assert.match(r.lines[i]!, new RegExp(`Fix: .*\\(${w.code}\\)$`));
      assert.ok(w.fix.length > 10 && w.option.length > 0);
    });
    return r;
  }

  it('is silent for the defaults and for sound settings', async () => {
    assert.deepEqual((await check({})).events, []);
    assert.deepEqual((await check({}, 1)).events, []);
    assert.deepEqual((await check({}, 2)).events, []);
    assert.deepEqual((await check({ timeoutMs: 3_000, perTryTimeoutMs: 1_000, retryLayers: [{ name: 'sdk', attempts: 1 }] })).events, []);
    assert.deepEqual((await check({ retry: false, perTryTimeoutMs: 10_000, retryLayers: [{ name: 'gateway', attempts: 3 }] })).events, []);
    assert.deepEqual((await check({ outlierDetection: { maxEjectionPercent: 34 } }, 3)).events, []);
    assert.deepEqual(checkHeartbeat({ ttlMs: 15_000, heartbeatIntervalMs: 5_000, requestTimeoutMs: 5_000 }), []);
    assert.deepEqual(checkDnsTtl({ minTtlMs: 1_000, expectedPropagationMs: 10_000 }), []);
  });

  it('warns about retry amplification across the layers the user declares', async () => {
    const { events } = await check({ retry: { maxRetries: 2 }, retryLayers: [{ name: 'gateway', attempts: 3 }, { name: 'sdk', attempts: 2 }] });
    assert.deepEqual(events.map((w) => w.code), ['RETRY_AMPLIFICATION']);
    assert.match(events[0]!.message, /gateway 3 × sdk 2 × this client 3 = up to 18 attempts/);
    assert.match(events[0]!.fix, /retry: false/);
  });

  it('warns about a per-try timeout that leaves no room for a retry inside the deadline', async () => {
    const { events } = await check({ timeoutMs: 2_000, perTryTimeoutMs: 1_800 });
    assert.deepEqual(events.map((w) => w.code), ['PER_TRY_TIMEOUT_LEAVES_NO_RETRY']);
    assert.match(events[0]!.fix, /perTryTimeoutMs ≤ 800 ms/);
  });

  it('warns about a max-ejection percentage that does not fit the number of endpoints', async () => {
    const below = await check({ outlierDetection: { maxEjectionPercent: 10 } }, 3);
    assert.deepEqual(below.events.map((w) => w.code), ['EJECTION_CAP_BELOW_ONE_ENDPOINT']);
    assert.match(below.events[0]!.message, /10% of 3 endpoint/);
    const all = await check({ outlierDetection: { maxEjectionPercent: 100, panicThresholdPercent: 0 } }, 4);
    assert.deepEqual(all.events.map((w) => w.code), ['EJECTION_CAN_EMPTY_THE_SET']);
    assert.match(all.events[0]!.fix, /maxEjectionPercent ≤ 75/);
  });

  it('warns about a DNS TTL floor above the expected propagation time', async () => {
    const lines: string[] = [];
    const slow = new DnsSrvResolver({ minTtlMs: 30_000, negativeTtlMs: 30_000, expectedPropagationMs: 5_000, logger: { warn: (l) => lines.push(l) } });
    await slow.close();
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /DNS_TTL_FLOOR_ABOVE_PROPAGATION/);
    assert.match(lines[0]!, /minTtlMs ≤ 5000 ms/);
    const fine = new DnsSrvResolver({ logger: { warn: (l) => lines.push(l) } });
    await fine.close();
    assert.equal(lines.length, 1);
  });

  it('explainConfig() spells out every default and leaves secrets out', async () => {
    const resolver = new StaticResolver();
    const client = createClient({ service: 'svc', resolver, timeoutMs: 5_000, tls: { key: 'SECRET-KEY', cert: 'CERT', rejectUnauthorized: false }, logger: false });
    clients.push(client);
    const c = client.explainConfig();
    assert.equal(c.timeoutMs, 5_000);
    assert.equal(c.perTryTimeoutMs, 2_000);
    assert.equal(c.perTryTimeoutFrom, 'default: 2/5 of timeoutMs');
    assert.deepEqual(c.retry, { maxRetries: 2, initialMs: 25, maxMs: 1_000, retryOnStatuses: [502, 503, 504] });
    assert.deepEqual(c.retryBudget, { ratio: 0.2, windowMs: 10_000, minRetriesPerSecond: 10 });
    assert.equal(c.worstCaseAttempts, 3);
    assert.equal(c.balancer, 'prequal-when-reported');
    assert.equal(c.resolver, 'StaticResolver');
    assert.equal(c.scheme, 'auto');
    assert.equal(c.connectTimeoutMs, 1_000);
    assert.equal(c.connectionsPerEndpoint, 256);
    assert.equal(c.drainTimeoutMs, 30_000);
    assert.deepEqual(c.tls, { ca: 'Node roots', clientCertificate: true, servername: undefined, rejectUnauthorized: false });
    assert.equal(c.logger, false);
    assert.ok(c.breaker && c.breaker.resetTimeoutMs === 10_000);
    assert.ok(c.outlierDetection && c.outlierDetection.maxEjectionPercent === 50);
    const json = JSON.stringify(c);
    assert.doesNotMatch(json, /SECRET|CERT/);
    await resolver.close();
  });

  it('rejects a logger or retry layers it cannot use, naming the option', () => {
    const resolver = new FakeResolver();
    assert.throws(() => createClient({ service: 'svc', resolver, logger: 'console' as never }), { code: 'ERR_INVALID_OPTION', message: /logger/ });
    assert.throws(() => createClient({ service: 'svc', resolver, retryLayers: [{ name: 'gw', attempts: 0 }] }), /retryLayers\[0\]\.attempts/);
  });
});
