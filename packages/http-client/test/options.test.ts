import assert from 'node:assert/strict';
import { createClient, InvalidOptionError } from '@proxyless/http-client';
import { FakeResolver } from './helpers.js';

describe('http-client: option validation', () => {
  const resolver = new FakeResolver();
  const bad: [string, Record<string, unknown>][] = [
    ['service', { service: '' }],
    ['resolver', { resolver: {} }],
    ['balancer', { balancer: 3 }],
    ['timeoutMs', { timeoutMs: 0 }],
    ['perTryTimeoutMs', { perTryTimeoutMs: -1 }],
    ['connectionsPerEndpoint', { connectionsPerEndpoint: 1.5 }],
    ['breaker.volumeThreshold', { breaker: { volumeThreshold: 0 } }],
    ['breaker.rollingBuckets', { breaker: { rollingWindowMs: 1000, rollingBuckets: 3 } }],
    ['outlierDetection.maxEjectionPercent', { outlierDetection: { maxEjectionPercent: 101 } }],
    ['failureStatuses', { failureStatuses: [700] }],
    ['retry.maxRetries', { retry: { maxRetries: 'x' } }],
    ['retry.budget.ratio', { retry: { budget: { ratio: -1 } } }],
    ['retry', { retry: 'yes' }],
    ['maxResponseBytes', { maxResponseBytes: 0 }],
  ];
  for (const [option, override] of bad) {
    it(`rejects a bad ${option} at construction, naming it`, () => {
      assert.throws(
        () => createClient({ service: 'svc', resolver, ...override }),
        (e: unknown) =>
          e instanceof InvalidOptionError && e.code === (option === 'service' ? 'ERR_INVALID_SERVICE_NAME' : 'ERR_INVALID_OPTION') && e.option === option,
      );
    });
  }
  it('accepts defaults and disabled features', async () => {
    const c = createClient({ service: 'svc', resolver, breaker: false, outlierDetection: false, retry: false });
    assert.ok(c.stats().retryBudget > 0, 'the retry budget exists with retry: false (per-request policies draw on it)');
    await c.close();
  });
});
