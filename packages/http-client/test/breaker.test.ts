import assert from 'node:assert/strict';
import { EventEmitter as NodeEventEmitter } from 'node:events';
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
