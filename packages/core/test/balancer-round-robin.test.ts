import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import fc from 'fast-check';
import { roundRobin } from '../src/balancer-round-robin.js';
import { random } from '../src/balancer-random.js';
import { InvalidOptionError } from '../src/errors.js';
import { endpoints, seeded, tally } from './balancer-fixtures.js';

describe('roundRobin()', () => {
  it('returns undefined for an empty set', () => {
    assert.equal(roundRobin().createPicker([]).pick(), undefined);
  });

  it('gives every endpoint exactly the same number of picks over whole rounds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 20 }), fc.double({ min: 0, max: 0.9999, noNaN: true }), (n, rounds, r) => {
        const picker = roundRobin({ random: () => r }).createPicker(endpoints(n));
        const counts = tally(() => picker.pick(), n * rounds);
        assert.equal(counts.size, n);
        for (const c of counts.values()) assert.equal(c, rounds);
      }),
    );
  });

  it('starts at a random offset', () => {
    const set = endpoints(4);
    assert.equal(roundRobin({ random: () => 0 }).createPicker(set).pick(), set[0]);
    assert.equal(roundRobin({ random: () => 0.5 }).createPicker(set).pick(), set[2]);
    assert.equal(roundRobin({ random: () => 0.99 }).createPicker(set).pick(), set[3]);
    const firsts = new Set<string>();
    for (let i = 0; i < 200; i++) firsts.add(roundRobin().createPicker(set).pick()!.instance.key);
    assert.equal(firsts.size, 4);
  });

  it('skips excluded endpoints, and picks anyway when all are excluded', () => {
    const set = endpoints(3);
    const picker = roundRobin({ random: () => 0 }).createPicker(set);
    const exclude = new Set([set[0]!, set[1]!]);
    for (let i = 0; i < 6; i++) assert.equal(picker.pick({ exclude }), set[2]);
    const all = new Set(set);
    assert.notEqual(picker.pick({ exclude: all }), undefined);
  });

  it('rejects a non-function random source, naming the option', () => {
    assert.throws(() => roundRobin({ random: 3 as unknown as () => number }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'random');
  });
});

describe('random()', () => {
  it('returns undefined for an empty set', () => {
    assert.equal(random().createPicker([]).pick(), undefined);
  });

  it('spreads picks uniformly within tolerance', () => {
    const set = endpoints(5);
    const picker = random({ random: seeded(7) }).createPicker(set);
    const counts = tally(() => picker.pick(), 50_000);
    for (const c of counts.values()) assert.ok(Math.abs(c - 10_000) < 500, `count ${c}`);
  });

  it('never picks an excluded endpoint while another exists', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 30 }), fc.integer(), (n, seed) => {
        const set = endpoints(n);
        const rnd = seeded(seed);
        const exclude = new Set(set.filter(() => rnd() < 0.7));
        if (exclude.size === n) exclude.delete(set[0]!);
        const picker = random({ random: rnd }).createPicker(set);
        for (let i = 0; i < 20; i++) assert.ok(!exclude.has(picker.pick({ exclude })!));
      }),
    );
  });
});
