import assert from 'node:assert/strict';
import { EndpointHealth, type EjectionGate, type HealthState } from '../src/endpoints/health.js';

const allow: EjectionGate = { mayEject: () => true };

/** An endpoint's health with the breaker only, driven the way the set drives it: each attempt is picked in the state it starts in. */
function breakerOnly(opts = { errorThresholdPercentage: 50, volumeThreshold: 4, resetTimeoutMs: 50, rollingWindowMs: 1000, rollingBuckets: 10 }): {
  h: EndpointHealth;
  run: (outcome: 'success' | 'connect' | 'cancelled', at: number) => void;
  kinds: string[];
} {
  const h = new EndpointHealth({ breaker: opts, outlier: false }, 0);
  const kinds: string[] = [];
  return {
    h,
    kinds,
    run: (outcome, at) => {
      const t = h.outcome(outcome, h.state, at, allow);
      if (t) kinds.push(t.to.kind);
    },
  };
}

describe('http-client: circuit breaker (the health state machine)', () => {
  it('opens on error rate above the threshold once volume is reached, half-opens when due, closes on a good trial', () => {
    const { h, run, kinds } = breakerOnly();
    run('success', 1);
    run('connect', 2);
    run('connect', 3);
    assert.equal(h.state.kind, 'ready', 'below volume threshold');
    run('connect', 4);
    assert.deepEqual(h.state, { kind: 'open', since: 4, until: 54 });
    assert.equal(h.tryAcquire(), false);
    assert.equal(h.due(53), undefined, 'not due before resetTimeoutMs');
    const t = h.due(54);
    assert.equal(t?.to.kind, 'probing');
    assert.equal(h.tryAcquire(), true, 'one trial');
    assert.equal(h.tryAcquire(), false, 'only one trial at a time');
    run('success', 60);
    assert.equal(h.state.kind, 'ready');
    assert.deepEqual(kinds, ['open', 'ready']);
  });

  it('re-opens when the probing trial fails; a cancelled trial frees the slot without a transition', () => {
    const { h, run } = breakerOnly();
    for (let i = 0; i < 4; i++) run('connect', i);
    h.due(100);
    assert.equal(h.tryAcquire(), true);
    run('cancelled', 101);
    assert.equal(h.state.kind, 'probing');
    assert.equal(h.tryAcquire(), true, 'the cancelled trial freed the slot');
    run('connect', 102);
    assert.deepEqual(h.state, { kind: 'open', since: 102, until: 152 });
  });

  it('ignores outcomes of attempts picked in an earlier state (a hung attempt does not re-open a closed breaker)', () => {
    const { h } = breakerOnly();
    const before: HealthState = h.state;
    for (let i = 0; i < 4; i++) h.outcome('connect', h.state, i, allow);
    h.due(60);
    h.tryAcquire();
    h.outcome('success', h.state, 61, allow);
    assert.equal(h.state.kind, 'ready');
    for (let i = 0; i < 10; i++) assert.equal(h.outcome('connect', before, 62 + i, allow), undefined);
    assert.equal(h.state.kind, 'ready');
    assert.deepEqual(h.window?.counts(72), { calls: 5, failures: 4 }, 'not counted either');
  });
});

describe('http-client: circuit breaker rolling window (lazily advanced buckets)', () => {
  it('counts only the rolling window: outcomes older than its buckets no longer dilute the failure rate', () => {
    const { h, run } = breakerOnly();
    for (let i = 0; i < 10; i++) run('success', 0);
    for (let i = 0; i < 4; i++) run('connect', 0);
    assert.equal(h.state.kind, 'ready', '4 failures of 14 calls: 29 %');
    assert.deepEqual(h.window?.counts(0), { calls: 14, failures: 4 });
    assert.deepEqual(h.window?.counts(999), { calls: 14, failures: 4 }, 'nine bucket-lengths later: still in a ten-bucket window');
    assert.deepEqual(h.window?.counts(1000), { calls: 0, failures: 0 }, 'the tenth drops the bucket they were counted in');
    run('success', 1000);
    run('connect', 1100);
    run('connect', 1100);
    assert.equal(h.state.kind, 'ready', 'below the volume threshold (3 calls)');
    run('connect', 1100);
    assert.equal(h.state.kind, 'open', '3 failures of 4 calls in the window: 75 %');
    assert.deepEqual(h.window?.counts(1100), { calls: 4, failures: 3 });
    run('connect', 1101);
    assert.deepEqual(h.window?.counts(1101), { calls: 4, failures: 3 }, 'a failure while open is not counted');
  });

  it('opens at exactly the threshold rule: a rate equal to the threshold stays closed, above it opens', () => {
    const { h, run } = breakerOnly();
    run('success', 0);
    run('success', 0);
    run('connect', 0);
    run('connect', 0);
    assert.equal(h.state.kind, 'ready', '2 of 4: 50 %, not above 50 %');
    run('connect', 0);
    assert.equal(h.state.kind, 'open', '3 of 5: 60 %');
  });
});
