import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import fc from 'fast-check';
import type { BalancerEndpoint } from '../src/balancer.js';
import { leastRequest } from '../src/balancer-least-request.js';
import { peakEwma } from '../src/balancer-peak-ewma.js';
import { InvalidOptionError } from '../src/errors.js';
import { endpoint, endpoints, seeded, tally } from './balancer-fixtures.js';

/** The two indices a P2C picker samples for random values r1, r2 (documented in LeastRequestOptions.random). */
function sampled(n: number, r1: number, r2: number): [number, number] {
  const first = Math.floor(r1 * n);
  return [first, (first + 1 + Math.floor(r2 * (n - 1))) % n];
}

const randomPair = fc.tuple(fc.double({ min: 0, max: 0.9999999, noNaN: true }), fc.double({ min: 0, max: 0.9999999, noNaN: true }));

describe('leastRequest()', () => {
  it('returns undefined for an empty set', () => {
    assert.equal(leastRequest().createPicker([]).pick(), undefined);
  });

  it('never picks the worse of its two samples, and always picks one of them (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(50), { minLength: 1, maxLength: 40 }), randomPair, (loads, [r1, r2]) => {
        const set = loads.map((inFlight, i) => endpoint(`e${i}`, {}, { inFlight }));
        const values = [r1, r2];
        let k = 0;
        const picked = leastRequest({ random: () => values[k++ % 2]! }).createPicker(set).pick()!;
        if (set.length === 1) return assert.equal(picked, set[0]);
        const [a, b] = sampled(set.length, r1, r2);
        assert.notEqual(a, b);
        assert.ok(picked === set[a] || picked === set[b], 'picked a sampled endpoint');
        const other = picked === set[a] ? set[b]! : set[a]!;
        assert.ok(picked.load.inFlight <= other.load.inFlight, 'picked the less loaded sample');
      }),
    );
  });

  it('reads in-flight counts live, so traffic evens out as loads change', () => {
    const set = endpoints(4);
    set[0]!.load.inFlight = 100;
    const picker = leastRequest({ random: seeded(1) }).createPicker(set);
    const counts = tally(() => picker.pick(), 3000);
    // e0 only wins when it is not sampled against anyone else: never.
    assert.equal(counts.get('e0'), undefined);
    set[0]!.load.inFlight = 0;
    set[1]!.load.inFlight = 100;
    assert.equal(tally(() => picker.pick(), 3000).get('e1'), undefined);
  });

  it('avoids excluded endpoints while another exists (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(10), { minLength: 2, maxLength: 20 }), fc.integer(), (loads, seed) => {
        const set = loads.map((inFlight, i) => endpoint(`e${i}`, {}, { inFlight }));
        const rnd = seeded(seed);
        const exclude = new Set<BalancerEndpoint>(set.filter(() => rnd() < 0.6));
        if (exclude.size === set.length) exclude.delete(set[1]!);
        for (const balancer of [leastRequest({ random: rnd }), peakEwma({ random: rnd })]) {
          const picker = balancer.createPicker(set);
          for (let i = 0; i < 10; i++) assert.ok(!exclude.has(picker.pick({ exclude })!));
        }
      }),
    );
    const set = endpoints(3);
    assert.ok(leastRequest().createPicker(set).pick({ exclude: new Set(set) }) !== undefined);
  });

  it('with more choices, picks the least loaded among them', () => {
    const set = endpoints(10);
    set.forEach((e, i) => (e.load.inFlight = i));
    const picker = leastRequest({ choices: 5, random: seeded(3) }).createPicker(set);
    const counts = tally(() => picker.pick(), 5000);
    assert.ok((counts.get('e0') ?? 0) > (counts.get('e5') ?? 0) * 3);
  });

  it('rejects invalid choices, naming the option', () => {
    for (const choices of [1, 2.5, 17, Number.NaN]) {
      assert.throws(() => leastRequest({ choices }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'choices');
    }
  });
});
