import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { slowStart } from '../src/slow-start.js';
import { random } from '../src/balancer-random.js';
import { roundRobin } from '../src/balancer-round-robin.js';
import { InvalidOptionError } from '../src/errors.js';
import { endpoints, seeded, tally } from './balancer-fixtures.js';

const windowMs = 30_000;

/** Share of picks going to the one young endpoint (of 10) at a given age. */
function youngShare(ageMs: number, aggression = 1): number {
  const set = endpoints(10);
  const now = 1_000_000;
  set[9]!.load.readySince = now - ageMs;
  const picker = slowStart(random({ random: seeded(9) }), { windowMs, aggression, now: () => now, random: seeded(4) }).createPicker(set);
  return (tally(() => picker.pick(), 40_000).get('e9') ?? 0) / 40_000;
}

describe('slowStart()', () => {
  it('returns undefined for an empty set', () => {
    assert.equal(slowStart(roundRobin()).createPicker([]).pick(), undefined);
  });

  it('ramps a new endpoint from a small share to its full share over the window', () => {
    const shares = [0, 0.25, 0.5, 0.75, 1, 2].map((f) => youngShare(f * windowMs));
    for (let i = 1; i < shares.length; i++) assert.ok(shares[i]! >= shares[i - 1]! - 0.005, `not monotonic: ${shares.join(', ')}`);
    assert.ok(shares[0]! < 0.03, `share at age 0: ${shares[0]}`); // ≈ minWeight 0.1 of a fair 0.1
    assert.ok(Math.abs(shares[2]! - 0.05) < 0.015, `share at half window: ${shares[2]}`);
    assert.ok(Math.abs(shares[4]! - 0.1) < 0.01, `share after the window: ${shares[4]}`);
  });

  it('starts slower with a higher aggression', () => {
    assert.ok(youngShare(windowMs / 2, 3) < youngShare(windowMs / 2, 1) - 0.015);
  });

  it('throttles nothing when every endpoint is equally young', () => {
    const set = endpoints(4);
    set.forEach((e) => (e.load.readySince = 1000));
    const picker = slowStart(random({ random: seeded(1) }), { now: () => 2000, random: seeded(2) }).createPicker(set);
    for (const c of tally(() => picker.pick(), 8000).values()) assert.ok(Math.abs(c - 2000) < 200, `count ${c}`);
  });

  it('passes exclude through to the inner picker', () => {
    const set = endpoints(3);
    set[2]!.load.readySince = 1_000_000;
    const exclude = new Set([set[0]!]);
    const picker = slowStart(roundRobin(), { now: () => 1_000_001 }).createPicker(set);
    for (let i = 0; i < 30; i++) assert.notEqual(picker.pick({ exclude }), set[0]);
  });

  it('validates its options, naming them', () => {
    const cases: [string, object][] = [
      ['windowMs', { windowMs: 0 }],
      ['aggression', { aggression: -1 }],
      ['minWeight', { minWeight: 1.5 }],
      ['maxRepicks', { maxRepicks: 0 }],
      ['now', { now: 5 }],
    ];
    for (const [option, value] of cases) {
      assert.throws(() => slowStart(roundRobin(), value), (e: unknown) => e instanceof InvalidOptionError && e.option === option);
    }
  });
});
