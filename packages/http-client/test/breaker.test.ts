import assert from 'node:assert/strict';
import { EventEmitter as NodeEventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { EndpointBreaker } from '../src/breaker.js';

describe('http-client: circuit breaker (opossum)', () => {
  const opts = { errorThresholdPercentage: 50, volumeThreshold: 4, resetTimeoutMs: 50, rollingWindowMs: 1000, rollingBuckets: 10 };
  it('opens on error rate above the threshold once volume is reached, half-opens, closes on a good trial', async () => {
    const events: string[] = [];
    const rotate = new NodeEventEmitter();
    const b = new EndpointBreaker(opts, rotate, {
      onBreakerOpen: () => events.push('open'),
      onBreakerHalfOpen: () => events.push('halfOpen'),
      onBreakerClose: () => events.push('close'),
    }, 'x');
    b.success(1);
    b.failure(new Error('x'));
    b.failure(new Error('x'));
    assert.equal(b.state, 'closed', 'below volume threshold');
    b.failure(new Error('x'));
    assert.equal(b.state, 'open');
    assert.equal(b.tryAcquire(), false);
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(b.state, 'halfOpen');
    assert.equal(b.tryAcquire(), true, 'one trial');
    assert.equal(b.tryAcquire(), false, 'only one trial at a time');
    b.success(1);
    assert.equal(b.state, 'closed');
    assert.deepEqual(events, ['open', 'halfOpen', 'close']);
    b.shutdown();
  });
  it('re-opens when the half-open trial fails', async () => {
    const b = new EndpointBreaker(opts, new NodeEventEmitter(), { onBreakerOpen() {}, onBreakerHalfOpen() {}, onBreakerClose() {} }, 'y');
    for (let i = 0; i < 4; i++) b.failure(new Error('x'));
    assert.equal(b.state, 'open');
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(b.tryAcquire(), true);
    b.failure(new Error('x'));
    assert.equal(b.state, 'open');
    b.shutdown();
  });
});

describe('http-client: opossum behaviour the breaker relies on (pinned)', () => {
  it('counts a success fed as fire + success events exactly as a fired call, and opens on the failure rate', async () => {
    const options = { errorThresholdPercentage: 50, volumeThreshold: 4, resetTimeout: 1_000, rollingPercentilesEnabled: false, enableSnapshots: false };
    const action = async (error?: Error): Promise<string> => {
      if (error) throw error;
      return 'ok';
    };
    const fired = new CircuitBreaker(action, options);
    const fed = new CircuitBreaker(action, options);
    try {
      for (let i = 0; i < 3; i++) await fired.fire();
      for (let i = 0; i < 3; i++) {
        fed.emit('fire', []);
        fed.emit('success', undefined, 1);
      }
      assert.deepEqual([fed.stats.fires, fed.stats.successes, fed.stats.failures], [fired.stats.fires, fired.stats.successes, fired.stats.failures]);
      assert.deepEqual([fed.stats.fires, fed.stats.successes], [3, 3]);
      // 3 successes + 3 failures: 50 %, not above the threshold; the 4th failure (4/7 = 57 %) opens it.
      const failing = new Error('x');
      const failOnce = async (): Promise<void> => {
        await fed.fire(failing).catch(() => undefined);
      };
      for (let i = 0; i < 3; i++) await failOnce();
      assert.equal(fed.opened, false);
      await failOnce();
      assert.equal(fed.opened, true);
    } finally {
      fired.shutdown();
      fed.shutdown();
    }
  });
});
