import assert from 'node:assert/strict';
import { EventEmitter as NodeEventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { EndpointBreaker } from '../src/endpoints/breaker.js';

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
    b.success();
    b.failure();
    b.failure();
    assert.equal(b.state, 'closed', 'below volume threshold');
    b.failure();
    assert.equal(b.state, 'open');
    assert.equal(b.tryAcquire(), false);
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(b.state, 'halfOpen');
    assert.equal(b.tryAcquire(), true, 'one trial');
    assert.equal(b.tryAcquire(), false, 'only one trial at a time');
    b.success();
    assert.equal(b.state, 'closed');
    assert.deepEqual(events, ['open', 'halfOpen', 'close']);
    b.shutdown();
  });
  it('re-opens when the half-open trial fails', async () => {
    const b = new EndpointBreaker(opts, new NodeEventEmitter(), { onBreakerOpen() {}, onBreakerHalfOpen() {}, onBreakerClose() {} }, 'y');
    for (let i = 0; i < 4; i++) b.failure();
    assert.equal(b.state, 'open');
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(b.tryAcquire(), true);
    b.failure();
    assert.equal(b.state, 'open');
    b.shutdown();
  });
});

describe('http-client: circuit breaker rolling window', () => {
  const opts = { errorThresholdPercentage: 50, volumeThreshold: 4, resetTimeoutMs: 50, rollingWindowMs: 1000, rollingBuckets: 10 };
  it('counts only the rolling window: outcomes older than its buckets no longer dilute the failure rate', () => {
    const rotate = new NodeEventEmitter();
    const b = new EndpointBreaker(opts, rotate, { onBreakerOpen() {}, onBreakerHalfOpen() {}, onBreakerClose() {} }, 'w');
    try {
      for (let i = 0; i < 10; i++) b.success();
      for (let i = 0; i < 4; i++) b.failure();
      assert.equal(b.state, 'closed', '4 failures of 14 calls: 29 %');
      assert.deepEqual(b.counts, { fires: 14, failures: 4 });
      for (let i = 0; i < 9; i++) rotate.emit('rotate');
      assert.deepEqual(b.counts, { fires: 14, failures: 4 }, 'nine rotations: every bucket still in a ten-bucket window');
      rotate.emit('rotate');
      assert.deepEqual(b.counts, { fires: 0, failures: 0 }, 'the tenth rotation drops the bucket they were counted in');
      b.success();
      rotate.emit('rotate');
      b.failure();
      b.failure();
      assert.equal(b.state, 'closed', 'below the volume threshold (3 calls)');
      b.failure();
      assert.equal(b.state, 'open', '3 failures of 4 calls in the window: 75 %');
      assert.deepEqual(b.counts, { fires: 4, failures: 3 });
      b.failure();
      assert.deepEqual(b.counts, { fires: 4, failures: 3 }, 'a failure while open is not counted');
    } finally {
      b.shutdown();
    }
    assert.equal(rotate.listenerCount('rotate'), 0, 'shutdown leaves no listener on the shared clock');
  });

  it('opens at exactly the threshold rule: a rate equal to the threshold stays closed, above it opens', () => {
    const b = new EndpointBreaker(opts, new NodeEventEmitter(), { onBreakerOpen() {}, onBreakerHalfOpen() {}, onBreakerClose() {} }, 'v');
    try {
      b.success();
      b.success();
      b.failure();
      b.failure();
      assert.equal(b.state, 'closed', '2 of 4: 50 %, not above 50 %');
      b.failure();
      assert.equal(b.state, 'open', '3 of 5: 60 %');
    } finally {
      b.shutdown();
    }
  });
});

describe('http-client: opossum behaviour the breaker relies on (pinned)', () => {
  it('open() opens at once and starts the reset timer: half-open after resetTimeout; close() closes; open() from half-open re-arms it', async () => {
    const cb = new CircuitBreaker(async () => 'unused', { resetTimeout: 40, rollingPercentilesEnabled: false, enableSnapshots: false });
    const events: string[] = [];
    cb.on('open', () => events.push('open'));
    cb.on('halfOpen', () => events.push('halfOpen'));
    cb.on('close', () => events.push('close'));
    try {
      assert.equal(cb.closed, true);
      cb.open();
      assert.deepEqual([cb.opened, cb.halfOpen, cb.closed, events], [true, false, false, ['open']], 'open() is synchronous');
      await new Promise((r) => setTimeout(r, 80));
      assert.deepEqual([cb.opened, cb.halfOpen, cb.closed], [false, true, false]);
      cb.open();
      assert.equal(cb.opened, true, 'open() from half-open');
      await new Promise((r) => setTimeout(r, 80));
      assert.equal(cb.halfOpen, true, 'the reset timer ran again');
      cb.close();
      assert.deepEqual([cb.opened, cb.halfOpen, cb.closed], [false, false, true]);
      assert.deepEqual(events, ['open', 'halfOpen', 'open', 'halfOpen', 'close']);
    } finally {
      cb.shutdown();
    }
  });


  it('opens on a failure rate above the threshold once volume is reached (the rule the breaker mirrors), counting a success fed as fire + success events as a fired call', async () => {
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
