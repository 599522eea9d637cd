import assert from 'node:assert/strict';
import { OutlierState, isPanic, mayEject } from '../src/endpoints/outlier-detection.js';

describe('http-client: outlier detection', () => {
  const o = { consecutiveFailures: 3, baseEjectionTimeMs: 100, maxEjectionTimeMs: 250, maxEjectionPercent: 50, panicThresholdPercent: 50 };
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
