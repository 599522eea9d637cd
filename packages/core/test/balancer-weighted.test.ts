import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import fc from 'fast-check';
import { consulWeight, weightedRoundRobin } from '../src/balancer-weighted.js';
import { InvalidOptionError } from '../src/errors.js';
import { endpoint, instance, tally } from './balancer-fixtures.js';

describe('weightedRoundRobin()', () => {
  it('returns undefined for an empty set', () => {
    assert.equal(weightedRoundRobin().createPicker([]).pick(), undefined);
  });

  it('interleaves picks by earliest deadline over weight classes ({5, 1, 1} → a b a a a c a, then again)', () => {
    const set = [endpoint('a', { passing: 5 }), endpoint('b', { passing: 1 }), endpoint('c', { passing: 1 })];
    const picker = weightedRoundRobin().createPicker(set);
    const sequence = Array.from({ length: 14 }, () => picker.pick()!.instance.key).join(' ');
    assert.equal(sequence, 'a b a a a c a a b a a a c a');
  });

  it('gives each endpoint its weight in picks over every Σweights window (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 5 }), (weights, rounds) => {
        const set = weights.map((w, i) => endpoint(`e${i}`, { passing: w }));
        const total = weights.reduce((a, b) => a + b, 0);
        const effective = total === 0 ? weights.map(() => 1) : weights;
        const sum = effective.reduce((a, b) => a + b, 0);
        const picker = weightedRoundRobin().createPicker(set);
        const counts = tally(() => picker.pick(), sum * rounds);
        effective.forEach((w, i) => assert.equal(counts.get(`e${i}`) ?? 0, w * rounds));
      }),
    );
  });

  it('uses Weights.Warning for warning instances and never picks a weight-0 one', () => {
    const set = [
      endpoint('ok', { passing: 3, warning: 1 }),
      endpoint('warn', { health: 'warning', passing: 3, warning: 1 }),
      endpoint('zero', { health: 'warning', passing: 3, warning: 0 }),
    ];
    const counts = tally(() => weightedRoundRobin().createPicker(set).pick(), 1);
    assert.ok(counts.size === 1);
    const picker = weightedRoundRobin().createPicker(set);
    const many = tally(() => picker.pick(), 400);
    assert.equal(many.get('ok'), 300);
    assert.equal(many.get('warn'), 100);
    assert.equal(many.get('zero'), undefined);
  });

  it('consulWeight maps health to Consul Weights', () => {
    assert.equal(consulWeight(instance('a', { passing: 7, warning: 2 })), 7);
    assert.equal(consulWeight(instance('a', { health: 'warning', passing: 7, warning: 2 })), 2);
    assert.equal(consulWeight(instance('a', { health: 'critical', passing: 7, warning: 2 })), 0);
  });

  it('honours exclude, keeping the weights among the rest', () => {
    const set = [endpoint('a', { passing: 5 }), endpoint('b', { passing: 3 }), endpoint('c', { passing: 1 })];
    const picker = weightedRoundRobin().createPicker(set);
    const exclude = new Set([set[0]!]);
    const counts = tally(() => picker.pick({ exclude }), 400);
    assert.equal(counts.get('a'), undefined);
    assert.equal(counts.get('b'), 300);
    assert.equal(counts.get('c'), 100);
    assert.equal(picker.pick({ exclude: new Set(set) }) !== undefined, true);
  });

  it('picks in O(log n): 10,000 endpoints, exact shares over a window, exclude honoured', () => {
    const set = Array.from({ length: 10_000 }, (_, i) => endpoint(`e${i}`, { passing: 1 + (i % 3) }));
    const picker = weightedRoundRobin().createPicker(set);
    const sum = set.reduce((a, _e, i) => a + 1 + (i % 3), 0);
    const counts = tally(() => picker.pick(), sum);
    set.forEach((_e, i) => assert.equal(counts.get(`e${i}`), 1 + (i % 3)));
    const exclude = new Set(set.slice(0, 5_000));
    for (let k = 0; k < 1_000; k++) assert.ok(!exclude.has(picker.pick({ exclude })!));
  });

  it('accepts a custom weight function and rejects a non-function', () => {
    const set = [endpoint('a'), endpoint('b')];
    const picker = weightedRoundRobin({ weight: (i) => (i.key === 'a' ? 1 : 0) }).createPicker(set);
    assert.equal(tally(() => picker.pick(), 10).get('a'), 10);
    assert.throws(() => weightedRoundRobin({ weight: 'x' as never }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'weight');
  });
});
