import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import fc from 'fast-check';
import type { Balancer, BalancerEndpoint } from '../src/balancer.js';
import { roundRobin } from '../src/balancer-round-robin.js';
import { random } from '../src/balancer-random.js';
import { weightedRoundRobin } from '../src/balancer-weighted.js';
import { leastRequest } from '../src/balancer-least-request.js';
import { peakEwma } from '../src/balancer-peak-ewma.js';
import { consistentHash } from '../src/balancer-hash.js';
import { locality } from '../src/locality.js';
import { slowStart } from '../src/slow-start.js';
import { instance, seeded, tally, type MutableLoad } from './balancer-fixtures.js';

/** An endpoint whose availability the test flips, as a transport does on a breaker flip or an ejection. */
interface FlippableEndpoint extends BalancerEndpoint {
  readonly load: MutableLoad;
  available: boolean;
}

function flippable(key: string, fields: Parameters<typeof instance>[1] = {}): FlippableEndpoint {
  return { instance: instance(key, fields), load: { inFlight: 0, ewmaMs: 1, readySince: 0 }, available: true };
}

const strategies: [string, () => Balancer][] = [
  ['round-robin', () => roundRobin({ random: seeded(1) })],
  ['random', () => random({ random: seeded(2) })],
  ['weighted-round-robin', () => weightedRoundRobin()],
  ['least-request', () => leastRequest({ random: seeded(3) })],
  ['least-request, 3 choices', () => leastRequest({ choices: 3, random: seeded(4) })],
  ['peak-ewma', () => peakEwma({ random: seeded(5) })],
  ['ring-hash', () => consistentHash({ random: seeded(6) })],
  ['maglev', () => consistentHash({ algorithm: 'maglev', tableSize: 5003, random: seeded(7) })],
  ['locality', () => locality(peakEwma({ random: seeded(8) }), { zone: 'z0', minEndpoints: 2 })],
  ['slow-start', () => slowStart(roundRobin(), { now: () => 1_000_000, random: seeded(9) })],
];

describe('availability (breaker open, ejected) read at pick time, without a rebuild', () => {
  for (const [name, make] of strategies) {
    it(`${name}: never picks an unavailable endpoint, prefers non-excluded ones, returns undefined when none is available (property)`, () => {
      fc.assert(
        fc.property(
          fc.array(fc.record({ available: fc.boolean(), excluded: fc.boolean(), weight: fc.integer({ min: 0, max: 4 }) }), { minLength: 1, maxLength: 24 }),
          fc.array(fc.option(fc.string({ maxLength: 6 }), { nil: undefined }), { minLength: 1, maxLength: 8 }),
          (specs, keys) => {
            const set = specs.map((spec, i) => flippable(`e${i}`, { zone: `z${i % 2}`, passing: spec.weight }));
            const picker = make().createPicker(set);
            set.forEach((e, i) => (e.available = specs[i]!.available));
            picker.availabilityChanged?.();
            const exclude = new Set(set.filter((_e, i) => specs[i]!.excluded));
            const anyAvailable = set.some((e) => e.available);
            const anyAllowed = set.some((e) => e.available && !exclude.has(e));
            for (const hashKey of keys) {
              const chosen = picker.pick({ hashKey, exclude });
              if (!anyAvailable) {
                assert.equal(chosen, undefined);
                continue;
              }
              assert.ok(chosen !== undefined && (chosen).available, 'an available endpoint');
              if (anyAllowed) assert.ok(!exclude.has(chosen), 'not an excluded one while another is available');
            }
          },
        ),
        { numRuns: 150 },
      );
    });

    it(`${name}: an endpoint made available again is picked again by the same picker`, () => {
      const set = Array.from({ length: 6 }, (_, i) => flippable(`e${i}`, { zone: `z${i % 2}` }));
      const picker = make().createPicker(set);
      const target = set[0]!;
      target.available = false;
      picker.availabilityChanged?.();
      let k = 0;
      assert.equal(tally(() => picker.pick({ hashKey: `k${k++}` }), 600).get('e0'), undefined);
      target.available = true;
      picker.availabilityChanged?.();
      assert.ok((tally(() => picker.pick({ hashKey: `k${k++}` }), 600).get('e0') ?? 0) > 0);
    });
  }

  it('weighted round-robin: unavailable endpoints give up their turns, the others keep their weights exactly', () => {
    const set = [flippable('a', { passing: 5 }), flippable('b', { passing: 3 }), flippable('c', { passing: 1 }), flippable('d', { passing: 3 })];
    const picker = weightedRoundRobin().createPicker(set);
    set[0]!.available = false;
    set[3]!.available = false;
    const counts = tally(() => picker.pick(), 400);
    assert.deepEqual([counts.get('a'), counts.get('b'), counts.get('c'), counts.get('d')], [undefined, 300, 100, undefined]);
  });

  it('ring hash: keys of an unavailable endpoint go exactly where a ring without it sends them; no other key moves (property)', () => {
    const keys = Array.from({ length: 500 }, (_, i) => `user-${i}`);
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 10 }), { minLength: 2, maxLength: 12 }), fc.nat(), (names, which) => {
        const set = names.map((n) => flippable(n));
        const gone = set[which % set.length]!;
        const balancer = consistentHash({ replicas: 40 });
        const picker = balancer.createPicker(set);
        const before = keys.map((hashKey) => picker.pick({ hashKey })!);
        gone.available = false;
        const during = keys.map((hashKey) => picker.pick({ hashKey })!);
        const without = balancer.createPicker(set.filter((e) => e !== gone));
        keys.forEach((hashKey, i) => {
          assert.equal(during[i], without.pick({ hashKey }), 'same as a rebuild without it');
          if (before[i] !== gone) assert.equal(during[i], before[i], 'no other key moves');
        });
        gone.available = true;
        keys.forEach((hashKey, i) => assert.equal(picker.pick({ hashKey }), before[i], 'its keys come back'));
      }),
      { numRuns: 40 },
    );
  });

  it('maglev: an unavailable endpoint moves only its own keys, spread over the others', () => {
    const set = Array.from({ length: 20 }, (_, i) => flippable(`10.0.0.${i}:80`));
    const picker = consistentHash({ algorithm: 'maglev', tableSize: 5003 }).createPicker(set);
    const keys = Array.from({ length: 4000 }, (_, i) => `user-${i}`);
    const before = keys.map((hashKey) => picker.pick({ hashKey })!);
    const gone = set[3]!;
    gone.available = false;
    const heirs = new Set<BalancerEndpoint>();
    keys.forEach((hashKey, i) => {
      const now = picker.pick({ hashKey })!;
      if (before[i] === gone) heirs.add(now);
      else assert.equal(now, before[i]);
    });
    assert.ok(heirs.size >= 10, `its keys spread over ${heirs.size} endpoints`);
  });

  it('slow start: an endpoint that rejoins (readySince moves on) ramps again in the same picker', () => {
    let now = 100_000;
    const set = Array.from({ length: 4 }, (_, i) => flippable(`e${i}`));
    const picker = slowStart(roundRobin(), { windowMs: 10_000, minWeight: 0.05, now: () => now, random: seeded(11) }).createPicker(set);
    assert.equal(tally(() => picker.pick(), 400).get('e0'), 100, 'all past the window: plain round-robin');
    set[0]!.load.readySince = now; // rejoined just now
    now += 100;
    const share = tally(() => picker.pick(), 4000).get('e0') ?? 0;
    assert.ok(share < 200, `a rejoined endpoint is ramping: ${share} of 4000`);
  });

  it('locality: a tier with too few available endpoints spills over, and comes back when they return', () => {
    const set = [flippable('a1', { zone: 'a' }), flippable('a2', { zone: 'a' }), flippable('b1', { zone: 'b' }), flippable('b2', { zone: 'b' })];
    const picker = locality(roundRobin(), { zone: 'a', minEndpoints: 2 }).createPicker(set);
    assert.deepEqual([...tally(() => picker.pick(), 100).keys()].sort(), ['a1', 'a2']);
    set[0]!.available = false;
    picker.availabilityChanged?.();
    assert.deepEqual([...tally(() => picker.pick(), 100).keys()].sort(), ['a2', 'b1', 'b2']);
    set[0]!.available = true;
    picker.availabilityChanged?.();
    assert.deepEqual([...tally(() => picker.pick(), 100).keys()].sort(), ['a1', 'a2']);
  });

  it('ring hash at 10,000 endpoints: the ring is capped at maxRingSize and every endpoint keeps a fair share within bounds', () => {
    const set = Array.from({ length: 10_000 }, (_, i) => flippable(`node${i}/web-${i}`));
    const picker = consistentHash().createPicker(set);
    const counts = new Map<BalancerEndpoint, number>();
    const keys = 300_000;
    for (let i = 0; i < keys; i++) {
      const e = picker.pick({ hashKey: `k${i}` })!;
      counts.set(e, (counts.get(e) ?? 0) + 1);
    }
    // 6 points per endpoint (65 536 / 10 000): shares spread widely, but no endpoint is starved or swamped.
    const fair = keys / set.length;
    const max = Math.max(...counts.values());
    assert.ok(counts.size >= set.length * 0.97, `${counts.size} endpoints got keys`);
    assert.ok(max < fair * 5, `largest share ${max} vs fair ${fair}`);
  });
});
