import assert from 'node:assert/strict';
import type { ConfigWarning } from '@proxyless/core';
import { createClient } from '@proxyless/http-client';
import { clientDefaults, type ClientDefaults } from '../src/config/defaults.js';
import { ClientDoctor, explainConfig } from '../src/config/doctor.js';
import { resolveOptions, type ClientOptions } from '../src/config/options.js';
import { FakeResolver } from './helpers.js';

/** Resolves `options` against `table`, then asks explainConfig() and the doctor (3 endpoints) what they say. */
async function readBack(table: ClientDefaults, options: Omit<ClientOptions, 'service' | 'resolver'> = {}): Promise<{ explained: ReturnType<typeof explainConfig>; warnings: ConfigWarning[] }> {
  const resolved = resolveOptions({ service: 'svc', resolver: new FakeResolver(), logger: false, ...options }, table);
  const warnings: ConfigWarning[] = [];
  const doctor = new ClientDoctor(resolved, false, undefined, (w) => warnings.push(w));
  doctor.endpoints(3);
  await new Promise((r) => setImmediate(r));
  return { explained: explainConfig(resolved, 'auto', doctor, 'FakeResolver', 'peak-ewma'), warnings };
}

describe('http-client: one defaults table feeds validation, explainConfig() and the doctor', () => {
  it('a client built with no options reports exactly the table', () => {
    const client = createClient({ service: 'svc', resolver: new FakeResolver(), logger: false });
    const c = client.explainConfig();
    const d = clientDefaults;
    assert.equal(c.timeoutMs, d.timeoutMs);
    assert.equal(c.perTryTimeoutMs, Math.floor(d.timeoutMs * d.perTryTimeoutShare));
    assert.equal(c.perTryTimeoutFrom, 'default: 2/5 of timeoutMs');
    assert.deepEqual(c.retry, { maxRetries: d.retry.maxRetries, initialMs: d.retry.initialMs, maxMs: d.retry.maxMs, retryOnStatuses: d.retry.retryOnStatuses });
    assert.deepEqual(c.retryBudget, d.retry.budget);
    assert.deepEqual(c.breaker, d.breaker);
    assert.deepEqual(c.outlierDetection, d.outlierDetection);
    assert.deepEqual(c.failureStatuses, d.failureStatuses);
    for (const key of ['connectTimeoutMs', 'connectionsPerEndpoint', 'keepAliveTimeoutMs', 'maxResponseBytes', 'drainTimeoutMs', 'scheme'] as const) assert.equal(c[key], d[key], key);
    return client.close();
  });

  it('a default changed in the table shows up in explainConfig() and in the doctor\'s fixes', async () => {
    const table: ClientDefaults = {
      ...clientDefaults,
      timeoutMs: 8_000,
      perTryTimeoutShare: 1 / 4,
      outlierDetection: { ...clientDefaults.outlierDetection, panicThresholdPercent: 40 },
      retry: { ...clientDefaults.retry, initialMs: 30, budget: { ...clientDefaults.retry.budget, ratio: 0.3 } },
    };
    const { explained } = await readBack(table);
    assert.equal(explained.timeoutMs, 8_000);
    assert.equal(explained.perTryTimeoutMs, 2_000);
    assert.equal(explained.perTryTimeoutFrom, 'default: 1/4 of timeoutMs');
    assert.equal(explained.outlierDetection !== false && explained.outlierDetection.panicThresholdPercent, 40);
    assert.equal(explained.retry !== false && explained.retry.initialMs, 30);
    assert.equal(explained.retryBudget.ratio, 0.3);

    // The doctor's fixes quote the table's defaults, not numbers of their own.
    const { warnings } = await readBack(table, { perTryTimeoutMs: 7_000, outlierDetection: { maxEjectionPercent: 100, panicThresholdPercent: 0 } });
    const fix = (code: string): string => warnings.find((w) => w.code === code)?.fix ?? `no ${code} in ${warnings.map((w) => w.code).join(', ')}`;
    assert.match(fix('PER_TRY_TIMEOUT_LEAVES_NO_RETRY'), /≤ 2000 ms \(1\/4 of timeoutMs, the default/);
    assert.match(fix('EJECTION_CAN_EMPTY_THE_SET'), /panicThresholdPercent > 0 \(default 40\)/);
  });
});
