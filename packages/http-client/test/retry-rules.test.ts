import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EventEmitter as NodeEventEmitter } from 'node:events';
import { RetryBudget } from '@proxyless/http-client';
import { isReplayableBody, isSafeToRetry, parseRetryAfter } from '../src/request/retry.js';
import { classifyError } from '../src/request/request-loop.js';

describe('http-client: retry safety rules', () => {
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

describe('http-client: Retry-After', () => {
  it('parses Retry-After seconds and dates', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    assert.equal(parseRetryAfter(undefined), undefined);
    assert.equal(parseRetryAfter('soon'), undefined);
    const now = Date.parse('2030-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('Tue, 01 Jan 2030 00:00:02 GMT', now), 2000);
    assert.equal(parseRetryAfter('Mon, 31 Dec 2029 00:00:00 GMT', now), 0);
  });
});

describe('http-client: retry budget', () => {
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
