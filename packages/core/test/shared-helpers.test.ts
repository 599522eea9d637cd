import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  InvalidOptionError,
  InvalidServiceNameError,
  TimeoutError,
  backoffDelay,
  validateServiceName,
} from '@proxyless/core';
import { checkBackoff, checkNumber, retryWithBackoff, sleep, withDeadline } from '@proxyless/core/internal';

describe('backoffDelay (the one backoff: capped exponential, full jitter)', () => {
  it('stays within [0, min(max, initial·2^attempt)) with full jitter', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 100_000 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (attempt, initial, extra, r) => {
        const max = initial + extra;
        const d = backoffDelay(attempt, { initialMs: initial, maxMs: max }, () => r);
        return Number.isInteger(d) && d >= 0 && d <= Math.min(max, initial * 2 ** attempt);
      }),
    );
    assert.equal(backoffDelay(3, { initialMs: 100, maxMs: 10_000 }, () => 0.999999), 799);
    assert.equal(backoffDelay(50, { initialMs: 100, maxMs: 10_000 }, () => 0.5), 5000);
    assert.equal(backoffDelay(0, { initialMs: 100, maxMs: 10_000 }, () => 0), 0, 'full jitter may retry at once');
  });

  it('checkBackoff fills defaults and names the bad field', () => {
    assert.deepEqual(checkBackoff('backoff', undefined), { initialMs: 250, maxMs: 30_000 });
    assert.deepEqual(checkBackoff('backoff', { initialMs: 50_000 }), { initialMs: 50_000, maxMs: 50_000 });
    assert.throws(() => checkBackoff('backoff', { initialMs: 0 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'backoff.initialMs');
    assert.throws(() => checkBackoff('retry', { initialMs: 10, maxMs: 5 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'retry.maxMs');
  });

  it('rejects the earlier spellings (minDelayMs, baseDelayMs, maxDelayMs) naming initialMs / maxMs', () => {
    for (const [old, spelling] of [['minDelayMs', 'backoff.initialMs'], ['baseDelayMs', 'backoff.initialMs'], ['maxDelayMs', 'backoff.maxMs']] as const) {
      assert.throws(() => checkBackoff('backoff', { [old]: 10 }), (e: unknown) => e instanceof InvalidOptionError && e.option === `backoff.${old}` && e.message.includes(`is spelt ${spelling} now`));
    }
  });

  it('applies a rule: whole milliseconds, 0 allowed where a loop is bounded otherwise, upper limits', () => {
    const rule = { integer: true, minInitialMs: 0, maxInitialMs: 100, maxMs: 1_000 };
    assert.deepEqual(checkBackoff('retry', { initialMs: 0 }, { initialMs: 25, maxMs: 500 }, rule), { initialMs: 0, maxMs: 500 });
    assert.throws(() => checkBackoff('retry', { initialMs: 1.5 }, { initialMs: 25, maxMs: 500 }, rule), (e: unknown) => e instanceof InvalidOptionError && e.option === 'retry.initialMs');
    assert.throws(() => checkBackoff('retry', { maxMs: 2_000 }, { initialMs: 25, maxMs: 500 }, rule), (e: unknown) => e instanceof InvalidOptionError && e.option === 'retry.maxMs');
  });
});

describe('retryWithBackoff', () => {
  it('retries until success, waiting at most the capped delay', async () => {
    const times: number[] = [];
    const failures: number[] = [];
    const result = await retryWithBackoff(
      async (attempt) => {
        times.push(performance.now());
        if (attempt < 5) throw new Error('down');
        return 'up';
      },
      { backoff: { initialMs: 5, maxMs: 20 }, signal: new AbortController().signal, onFailedAttempt: (_e, attempt) => failures.push(attempt) },
    );
    assert.equal(result, 'up');
    assert.deepEqual(failures, [0, 1, 2, 3, 4]);
    // Full jitter: each gap ≤ cap plus timer slack (generous: the machine is shared).
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! < 20 + 200, `gap ${times[i]! - times[i - 1]!}`);
  });

  it('throws the failure shouldRetry refuses, after one attempt', async () => {
    let attempts = 0;
    const refused = new Error('403');
    await assert.rejects(
      retryWithBackoff(
        async () => {
          attempts++;
          throw refused;
        },
        { backoff: { initialMs: 5, maxMs: 10 }, signal: new AbortController().signal, shouldRetry: (e) => e !== refused },
      ),
      (e: unknown) => e === refused,
    );
    assert.equal(attempts, 1);
  });

  it('stops with the signal reason as soon as the signal aborts, even mid-delay', async () => {
    const controller = new AbortController();
    const reason = new Error('stopped');
    const started = performance.now();
    const run = retryWithBackoff(
      async () => {
        setTimeout(() => controller.abort(reason), 20);
        throw new Error('down');
      },
      { backoff: { initialMs: 60_000, maxMs: 60_000 }, signal: controller.signal },
    );
    // A random delay could be near 0 and start a second attempt; either way the abort ends the loop.
    await assert.rejects(run, (e: unknown) => e === reason);
    assert.ok(performance.now() - started < 2000);
  });
});

describe('sleep (the one abortable sleep)', () => {
  it('resolves early when its signal aborts and leaves no timer behind', async () => {
    const controller = new AbortController();
    const started = performance.now();
    setTimeout(() => controller.abort(), 10);
    await sleep(60_000, controller.signal);
    assert.ok(performance.now() - started < 2000);
    await sleep(60_000, controller.signal); // already aborted: at once
    await sleep(-5); // negative: at once
  });
});

describe('withDeadline (the one bounded wait)', () => {
  it('aborts the work\'s signal at the deadline with a TimeoutError naming what timed out', async () => {
    let reason: unknown;
    const work = (signal: AbortSignal): Promise<string> => new Promise((_, reject) => signal.addEventListener('abort', () => reject((reason = signal.reason as Error)), { once: true }));
    await assert.rejects(withDeadline(undefined, 20, work, { what: 'the probe' }), (e: unknown) => e === reason && e instanceof TimeoutError && e.message === 'the probe timed out after 20 ms');
  });

  it('settleAtDeadline: settles at the deadline even when the work ignores its signal (a user\'s hook)', async () => {
    const started = Date.now();
    const ignoring = (): Promise<never> => new Promise(() => undefined);
    await assert.rejects(withDeadline(undefined, 50, ignoring, { settleAtDeadline: true, what: 'health function' }), (e: unknown) => e instanceof TimeoutError && e.timeoutMs === 50 && /^health function/.test(e.message));
    assert.ok(Date.now() - started < 5000);
    // The caller's abort settles it too, with the caller's reason; a late failure of the work is not unhandled.
    const stop = new AbortController();
    const late = (): Promise<never> => new Promise((_, reject) => setTimeout(() => reject(new Error('late')), 30));
    const waiting = withDeadline(stop.signal, 60_000, late, { settleAtDeadline: true });
    stop.abort(new Error('caller'));
    await assert.rejects(waiting, /caller/);
    await sleep(60);
  });

  it('without settleAtDeadline, waits for the work (which answers its signal with its own error)', async () => {
    const answering = (signal: AbortSignal): Promise<string> => new Promise((resolve) => signal.addEventListener('abort', () => setTimeout(() => resolve('cleaned up'), 20), { once: true }));
    assert.equal(await withDeadline(undefined, 10, answering), 'cleaned up');
  });
});

describe('checkNumber (the one number validator)', () => {
  it('defaults, requires and bounds, naming the option', () => {
    assert.equal(checkNumber('x', undefined, 7), 7);
    assert.equal(checkNumber('x', 3, 7, { integer: true, min: 1, max: 5 }), 3);
    const named = (option: string) => (e: unknown) => e instanceof InvalidOptionError && e.option === option && e.code === 'ERR_INVALID_OPTION';
    assert.throws(() => checkNumber('port', undefined, undefined), named('port'));
    assert.throws(() => checkNumber('a.b', Number.NaN, 1), named('a.b'));
    assert.throws(() => checkNumber('a', Infinity, 1), named('a'));
    assert.throws(() => checkNumber('a', '5', 1), named('a'));
    assert.throws(() => checkNumber('a', 1.5, 1, { integer: true }), named('a'));
    assert.throws(() => checkNumber('a', 0, 1, { min: 1 }), named('a'));
    assert.throws(() => checkNumber('a', 6, 1, { max: 5 }), named('a'));
    assert.throws(() => checkNumber('a', 0, 1, { above: 0 }), named('a'));
  });
});

describe('the one service-name rule', () => {
  it('accepts DNS-label-safe names of 1–63 characters and nothing else', () => {
    for (const ok of ['a', 'web', 'web-api_2', 'A'.repeat(63)]) assert.equal(validateServiceName(ok), ok);
    for (const bad of ['', '-web', 'web-', 'a.b', 'a/b', 'a b', 'a?x=1', 'A'.repeat(64), 42, undefined]) {
      assert.throws(() => validateServiceName(bad), InvalidServiceNameError, String(bad));
    }
  });
});
