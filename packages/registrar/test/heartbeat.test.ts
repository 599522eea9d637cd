import assert from 'node:assert/strict';
import { ConsulApiError, ConsulUnreachableError, TimeoutError } from '@proxyless/core';
import { retryWithBackoff } from '@proxyless/core/internal';
import { nextBeat, retryOptions } from '../src/heartbeat.js';
import { isRetryable, isUnknownCheck, isUnreachable } from '../src/registry-consul.js';

describe('heartbeat scheduling', function () {
  it('runs on a fixed-rate grid from the anchor', function () {
    const noJitter = () => 0.5; // offset (0.5 * 2 - 1) = 0
    assert.deepEqual(nextBeat(1000, 500, 0, 1000, 0.1, noJitter), { index: 1, delayMs: 500 });
    // A beat that took 300 ms does not push the next one back.
    assert.deepEqual(nextBeat(1000, 500, 1, 1800, 0.1, noJitter), { index: 2, delayMs: 200 });
  });

  it('skips slots already in the past instead of bursting', function () {
    const next = nextBeat(0, 1000, 1, 4500, 0, () => 0.5);
    assert.equal(next.index, 5);
    assert.equal(next.delayMs, 500);
  });

  it('keeps jitter within ±jitter × interval', function () {
    for (const r of [0, 0.25, 0.75, 0.999]) {
      const { delayMs } = nextBeat(0, 1000, 0, 0, 0.1, () => r);
      assert.ok(delayMs >= 900 && delayMs <= 1100, String(delayMs));
    }
    const early = nextBeat(0, 1000, 0, 0, 0.1, () => 0).delayMs;
    const late = nextBeat(0, 1000, 0, 0, 0.1, () => 0.9999).delayMs;
    assert.equal(early, 900);
    assert.equal(late, 1100);
  });

  it('never leaves a gap as long as the TTL, even at the widest interval and jitter validation allows', function () {
    const ttl = 2000;
    const interval = ttl / 2; // the largest interval accepted for this TTL
    let now = 0;
    let index = 0;
    let last = 0;
    let worst = 0;
    for (let i = 0; i < 2000; i++) {
      const next = nextBeat(0, interval, index, now, 0.25);
      index = next.index;
      now += next.delayMs;
      worst = Math.max(worst, now - last);
      last = now;
      now += Math.random() * 50; // the beat itself takes time
    }
    assert.ok(worst < ttl, `worst gap ${worst} ms`);
  });
});

describe('agent error classification', function () {
  const api = (status: number, message = '') => new ConsulApiError('PUT', '/v1/agent/check/update/x', status, message);

  it('treats 404 and the old 500 "does not have associated TTL" as an unknown check', function () {
    assert.equal(isUnknownCheck(api(404, 'Unknown check ID "x"')), true);
    assert.equal(isUnknownCheck(api(500, 'CheckID "x" does not have associated TTL')), true);
    assert.equal(isUnknownCheck(api(500, 'rpc error')), false);
    assert.equal(isUnknownCheck(api(403, 'Permission denied')), false);
  });

  it('retries unreachable, timed-out, 429 and 5xx; not 400 or 403', function () {
    const unreachable = new ConsulUnreachableError('http://127.0.0.1:1', { cause: new Error('ECONNREFUSED') });
    const timeout = new TimeoutError('Consul PUT', 100);
    assert.equal(isUnreachable(unreachable), true);
    assert.equal(isUnreachable(timeout), true);
    assert.equal(isRetryable(unreachable), true);
    assert.equal(isRetryable(api(429)), true);
    assert.equal(isRetryable(api(503)), true);
    assert.equal(isRetryable(api(400)), false);
    assert.equal(isRetryable(api(403)), false);
    assert.equal(isRetryable(new Error('x')), false);
  });
});

describe('backoff', function () {
  it('uses core\'s full-jitter backoff between initialMs and the cap', function () {
    const options = retryOptions(20, 80, new AbortController().signal, () => undefined);
    assert.deepEqual(options.backoff, { initialMs: 20, maxMs: 80 });
  });

  it('retries until success, every delay within the cap', async function () {
    const times: number[] = [];
    let attempts = 0;
    const reported: unknown[] = [];
    await retryWithBackoff(async () => {
      times.push(performance.now());
      if (++attempts < 7) throw new Error('down');
    }, retryOptions(20, 80, new AbortController().signal, (e) => reported.push(e)));
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    assert.equal(gaps.length, 6);
    assert.equal(reported.length, 6, 'every failure reported');
    for (const g of gaps) assert.ok(g <= 80 + 150, `gap ${g}`);
  });

  it('stops retrying when its signal aborts', async function () {
    const controller = new AbortController();
    let attempts = 0;
    const run = retryWithBackoff(async () => {
      attempts++;
      if (attempts === 2) controller.abort(new Error('stopped'));
      throw new Error('down');
    }, retryOptions(5, 10, controller.signal, () => undefined));
    await assert.rejects(run);
    assert.ok(attempts <= 3);
  });

  it('does not retry what shouldRetry refuses', async function () {
    let attempts = 0;
    await assert.rejects(
      retryWithBackoff(async () => {
        attempts++;
        throw new ConsulApiError('PUT', '/x', 403, 'denied');
      }, retryOptions(5, 10, new AbortController().signal, () => undefined, isRetryable)),
      ConsulApiError,
    );
    assert.equal(attempts, 1);
  });
});
