import assert from 'node:assert/strict';
import { EventEmitter as NodeEventEmitter } from 'node:events';
import fc from 'fast-check';
import { createClient, InvalidOptionError, RetryBudget } from '@proxyless/http-client';
import { isReplayableBody, isSafeToRetry, parseRetryAfter } from '../src/retry.js';
import { EndpointBreaker } from '../src/breaker.js';
import { OutlierState, isPanic, mayEject } from '../src/outlier-detection.js';
import { classifyError } from '../src/client.js';
import { FakeResolver } from './helpers.js';

describe('http-client units', () => {
  describe('retry safety rules', () => {
    it('always retries a request that never reached the server, if its body is replayable', () => {
      assert.equal(isSafeToRetry('connect', 'POST', undefined, true), true);
      assert.equal(isSafeToRetry('connect', 'POST', false, true), true);
      assert.equal(isSafeToRetry('connect', 'GET', undefined, false), false);
    });
    it('retries resets, timeouts and failure statuses only for idempotent methods or when marked', () => {
      for (const m of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']) assert.equal(isSafeToRetry('reset', m, undefined, true), true, m);
      for (const m of ['POST', 'PATCH']) assert.equal(isSafeToRetry('timeout', m, undefined, true), false, m);
      assert.equal(isSafeToRetry('status', 'POST', true, true), true);
      assert.equal(isSafeToRetry('reset', 'GET', false, true), false);
    });
    it('never retries protocol errors or non-replayable bodies', () => {
      assert.equal(isSafeToRetry('protocol', 'GET', undefined, true), false);
      assert.equal(isReplayableBody('x'), true);
      assert.equal(isReplayableBody(Buffer.from('x')), true);
      assert.equal(isReplayableBody(undefined), true);
      assert.equal(isReplayableBody(new NodeEventEmitter()), false);
    });
    it('classifies transport errors by code', () => {
      const e = (code: string): Error => Object.assign(new Error(code), { code });
      assert.equal(classifyError(e('ECONNREFUSED')), 'connect');
      assert.equal(classifyError(e('UND_ERR_CONNECT_TIMEOUT')), 'connect');
      assert.equal(classifyError(e('ECONNRESET')), 'reset');
      assert.equal(classifyError(e('UND_ERR_SOCKET')), 'reset');
      assert.equal(classifyError(e('UND_ERR_HEADERS_TIMEOUT')), 'timeout');
      assert.equal(classifyError(e('HPE_INVALID_CONSTANT')), 'protocol');
      assert.equal(classifyError(new Error('x')), 'other');
    });
  });

  describe('Retry-After', () => {
    it('parses Retry-After seconds and dates', () => {
      assert.equal(parseRetryAfter('3'), 3000);
      assert.equal(parseRetryAfter(undefined), undefined);
      assert.equal(parseRetryAfter('soon'), undefined);
      const now = Date.parse('2030-01-01T00:00:00Z');
      assert.equal(parseRetryAfter('Tue, 01 Jan 2030 00:00:02 GMT', now), 2000);
      assert.equal(parseRetryAfter('Mon, 31 Dec 2029 00:00:00 GMT', now), 0);
    });
  });

  describe('retry budget', () => {
    it('allows the floor with no traffic, then ratio × requests', () => {
      const b = new RetryBudget({ ratio: 0.2, windowMs: 10_000, minRetriesPerSecond: 1 });
      let t = 100_000;
      let allowed = 0;
      while (b.tryWithdraw(t)) allowed++;
      assert.equal(allowed, 10); // 1/s × 10 s
      for (let i = 0; i < 100; i++) b.deposit(t);
      allowed = 0;
      while (b.tryWithdraw(t)) allowed++;
      assert.equal(allowed, 20); // 0.2 × 100
      t += 11_000; // the window slid past everything
      allowed = 0;
      while (b.tryWithdraw(t)) allowed++;
      assert.equal(allowed, 10);
    });
    it('never lets retries exceed ratio × requests + floor over any window (property)', () => {
      fc.assert(
        fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 300 })), { maxLength: 400 }), (ops) => {
          const b = new RetryBudget({ ratio: 0.1, windowMs: 1000, minRetriesPerSecond: 0 });
          let t = 0;
          const log: { t: number; retry: boolean }[] = [];
          for (const [isRetry, dt] of ops) {
            t += dt;
            if (isRetry) {
              if (b.tryWithdraw(t)) log.push({ t, retry: true });
            } else {
              b.deposit(t);
              log.push({ t, retry: false });
            }
          }
          // Bucketed window (10 × 100 ms): count in the same bucket-aligned window.
          for (const e of log) {
            if (!e.retry) continue;
            const from = (Math.floor(e.t / 100) - 9) * 100;
            const inWin = log.filter((x) => x.t >= from && x.t <= e.t);
            const retries = inWin.filter((x) => x.retry).length;
            const reqs = inWin.filter((x) => !x.retry).length;
            if (retries > 0.1 * reqs + 1e-9) return false;
          }
          return true;
        }),
      );
    });
  });

  describe('circuit breaker', () => {
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

  describe('outlier detection', () => {
    const o = { consecutiveFailures: 3, baseEjectionTimeMs: 100, maxEjectionTimeMs: 250, maxEjectionPercent: 50, panicThresholdPercent: 50, failureStatuses: [500] };
    it('ejects after N consecutive failures; a success resets the count', () => {
      const s = new OutlierState();
      assert.equal(s.failure(o), false);
      assert.equal(s.failure(o), false);
      s.success();
      assert.equal(s.failure(o), false);
      assert.equal(s.failure(o), false);
      assert.equal(s.failure(o), true);
    });
    it('grows the ejection time with repeated ejections, capped, and decays when healthy', () => {
      const s = new OutlierState();
      assert.equal(s.eject(o, 0), 100);
      s.restore(100);
      assert.equal(s.eject(o, 110), 200);
      s.restore(310);
      assert.equal(s.eject(o, 320), 250); // 300 capped at 250
      s.restore(570);
      assert.equal(s.eject(o, 570 + 3 * 250), 100); // healthy 3 × max: multiplier back to 1
    });
    it('respects the max ejection percent (one may always go) and the panic threshold', () => {
      assert.equal(mayEject(0, 2, 10), true);
      assert.equal(mayEject(1, 2, 50), false);
      assert.equal(mayEject(1, 4, 50), true);
      assert.equal(mayEject(2, 4, 50), false);
      assert.equal(mayEject(0, 3, 0), false);
      assert.equal(isPanic(1, 4, 50), true);
      assert.equal(isPanic(2, 4, 50), false);
      assert.equal(isPanic(0, 4, 0), false);
    });
  });

  describe('option validation', () => {
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
      ['outlierDetection.failureStatuses', { outlierDetection: { failureStatuses: [700] } }],
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
      assert.equal(c.stats().retryBudget, -1);
      await c.close();
    });
  });
});
