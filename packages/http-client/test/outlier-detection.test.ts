import assert from 'node:assert/strict';
import { ConsecutiveFailures, EndpointHealth, isPanic, mayEject } from '../src/endpoints/health.js';

describe('http-client: outlier detection', () => {
  const o = { consecutiveFailures: 3, baseEjectionTimeMs: 100, maxEjectionTimeMs: 250, maxEjectionPercent: 50, panicThresholdPercent: 50 };
  it('ejects after N consecutive failures; a success resets the count', () => {
    const s = new ConsecutiveFailures(o);
    assert.equal(s.failure(), false);
    assert.equal(s.failure(), false);
    s.reset();
    assert.equal(s.failure(), false);
    assert.equal(s.failure(), false);
    assert.equal(s.failure(), true);
  });
  it('grows the ejection time with repeated ejections, capped, and decays when healthy', () => {
    const s = new ConsecutiveFailures(o);
    assert.equal(s.eject(0).durationMs, 100);
    s.ended(100);
    assert.equal(s.eject(110).durationMs, 200);
    s.ended(310);
    assert.equal(s.eject(320).durationMs, 250); // 300 capped at 250
    s.ended(570);
    assert.deepEqual(s.eject(570 + 3 * 250), { durationMs: 100, streak: 1 }); // healthy 3 × max: multiplier back to 1
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
  it('ejects through the health state, within the cap, and restores when due', () => {
    let allowed = false;
    const h = new EndpointHealth({ breaker: false, outlier: o }, 0);
    for (let i = 0; i < 4; i++) assert.equal(h.outcome('connect', h.state, i, { mayEject: () => allowed }), undefined, 'the cap refuses');
    allowed = true;
    const t = h.outcome('connect', h.state, 10, { mayEject: () => allowed });
    assert.deepEqual(t?.to, { kind: 'ejected', since: 10, until: 110, durationMs: 100, streak: 1 });
    assert.equal(h.due(109), undefined);
    assert.equal(h.due(110)?.to.kind, 'ready');
  });
  it('when the breaker trips and consecutive failures reach the threshold on the same failure, the breaker wins', () => {
    const breaker = { errorThresholdPercentage: 50, volumeThreshold: 3, resetTimeoutMs: 50, rollingWindowMs: 1000, rollingBuckets: 10 };
    const h = new EndpointHealth({ breaker, outlier: o }, 0);
    let asked = 0;
    const gate = { mayEject: () => (asked++, true) };
    h.outcome('connect', h.state, 1, gate);
    h.outcome('connect', h.state, 2, gate);
    const t = h.outcome('connect', h.state, 3, gate);
    assert.deepEqual(t?.to, { kind: 'open', since: 3, until: 53 });
    assert.equal(asked, 0, 'no ejection was attempted');
    assert.equal(h.detector?.streak, 0, 'the ejection streak did not advance');
    assert.equal(h.detector?.count, 0, 'consecutive failures start over');
  });
});
