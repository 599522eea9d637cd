import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { locality } from '../src/locality.js';
import { roundRobin } from '../src/balancer-round-robin.js';
import { InvalidOptionError } from '../src/errors.js';
import { endpoint, tally } from './balancer-fixtures.js';

const set = [
  endpoint('a1', { zone: 'a', datacenter: 'dc1' }),
  endpoint('a2', { zone: 'a', datacenter: 'dc1' }),
  endpoint('b1', { zone: 'b', datacenter: 'dc1' }),
  endpoint('c1', { zone: 'c', datacenter: 'dc2' }),
  endpoint('c2', { zone: 'c', datacenter: 'dc2' }),
];

describe('locality()', () => {
  it('returns undefined for an empty set', () => {
    assert.equal(locality(roundRobin(), { zone: 'a' }).createPicker([]).pick(), undefined);
  });

  it('keeps traffic in the local zone while it has enough endpoints', () => {
    const picker = locality(roundRobin(), { zone: 'a', minEndpoints: 2 }).createPicker(set);
    const counts = tally(() => picker.pick(), 100);
    assert.deepEqual([...counts.keys()].sort(), ['a1', 'a2']);
    assert.equal(counts.get('a1'), 50);
  });

  it('spills over to the local datacenter, then to everything, when the zone is too small', () => {
    const toDc = locality(roundRobin(), { zone: 'b', datacenter: 'dc1', minEndpoints: 2 }).createPicker(set);
    assert.deepEqual([...tally(() => toDc.pick(), 90).keys()].sort(), ['a1', 'a2', 'b1']);
    const toAll = locality(roundRobin(), { zone: 'b', minEndpoints: 2 }).createPicker(set);
    assert.equal(tally(() => toAll.pick(), 100).size, 5);
    const unknownZone = locality(roundRobin(), { zone: 'z' }).createPicker(set);
    assert.equal(tally(() => unknownZone.pick(), 100).size, 5);
  });

  it('spills over when the local zone holds less than minFraction of the set', () => {
    const picker = locality(roundRobin(), { zone: 'a', minFraction: 0.5 }).createPicker(set);
    assert.equal(tally(() => picker.pick(), 100).size, 5);
    const enough = locality(roundRobin(), { zone: 'a', minFraction: 0.4 }).createPicker(set);
    assert.equal(tally(() => enough.pick(), 100).size, 2);
  });

  it('spills over when a retry has excluded every local endpoint', () => {
    const picker = locality(roundRobin(), { zone: 'a' }).createPicker(set);
    const exclude = new Set([set[0]!, set[1]!]);
    for (let i = 0; i < 20; i++) assert.ok(!exclude.has(picker.pick({ exclude })!));
    assert.ok(picker.pick({ exclude: new Set(set) }) !== undefined);
  });

  it('validates its options, naming them', () => {
    const cases: [string, object][] = [
      ['zone', {}],
      ['zone', { zone: '' }],
      ['minEndpoints', { zone: 'a', minEndpoints: 0 }],
      ['minFraction', { zone: 'a', minFraction: 2 }],
    ];
    for (const [option, value] of cases) {
      assert.throws(() => locality(roundRobin(), value), (e: unknown) => e instanceof InvalidOptionError && e.option === option);
    }
    assert.throws(() => locality({} as never, { zone: 'a' }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'inner');
  });
});
