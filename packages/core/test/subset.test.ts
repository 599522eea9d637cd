import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  InvalidOptionError, InvalidServiceNameError, baseSubsetSize, coordinateOf, createServiceInstance, rankInstances, resolveSubset, subsetInstances,
  type ResolvedSubset, type ServiceInstance,
} from '@proxyless/core';

const instance = (i: number): ServiceInstance => createServiceInstance({ service: 'api', address: `10.0.${i >> 8}.${i & 255}`, port: 8080, id: `api-${i}` });
const fleet = (ids: readonly number[]): ServiceInstance[] => ids.map(instance);
const keys = (xs: readonly ServiceInstance[]): Set<string> => new Set(xs.map((x) => x.key));
const rendezvous = (size: number, clientId: string): ResolvedSubset => resolveSubset('subset', { size, clientId }, () => 'unused');
const aperture = (size: number, index: number, count: number): ResolvedSubset => resolveSubset('subset', { size, coordinate: { index, count } }, () => 'unused');
const noRandomId = (): string => assert.fail('a clientId was given');

/** Distinct instance numbers, and a spare one not among them (the joiner). */
const fleetArb = fc.uniqueArray(fc.integer({ min: 0, max: 5000 }), { minLength: 1, maxLength: 120 });
const swapped = (before: readonly ServiceInstance[], after: readonly ServiceInstance[]): { gained: number; lost: number } => {
  const b = keys(before);
  const a = keys(after);
  return { gained: [...a].filter((k) => !b.has(k)).length, lost: [...b].filter((k) => !a.has(k)).length };
};
const shuffled = <T>(xs: readonly T[], seed: number): T[] => {
  const out = [...xs];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
};

describe('core: subsetInstances (subsetting for large fleets)', () => {
  it('rendezvous: deterministic for a client id whatever the order of the instances; exactly min(size, N) members, no duplicates', () => {
    fc.assert(
      fc.property(fleetArb, fc.integer({ min: 1, max: 40 }), fc.string({ minLength: 1 }), fc.integer(), (ids, size, clientId, seed) => {
        const all = fleet(ids);
        const s = rendezvous(size, clientId);
        const a = subsetInstances(all, s);
        const b = subsetInstances(shuffled(all, seed), s);
        assert.deepEqual(a.map((x) => x.key), b.map((x) => x.key));
        assert.equal(a.length, Math.min(size, all.length));
        assert.equal(keys(a).size, a.length, 'no duplicates');
        for (const x of a) assert.ok(all.includes(x), 'members come from the instances');
      }),
    );
  });

  it('rendezvous: one instance joining or leaving changes at most one member per client, and a leave only the clients that held it', () => {
    fc.assert(
      fc.property(fleetArb, fc.integer({ min: 1, max: 40 }), fc.string({ minLength: 1 }), fc.nat(), (ids, size, clientId, pick) => {
        const all = fleet(ids);
        const s = rendezvous(size, clientId);
        const before = subsetInstances(all, s);
        const joiner = instance(5001 + (pick % 100));
        const joined = swapped(before, subsetInstances([...all, joiner], s));
        assert.ok(joined.gained <= 1 && joined.lost <= 1, `join: ${JSON.stringify(joined)}`);
        if (joined.gained === 1) assert.ok(keys(subsetInstances([...all, joiner], s)).has(joiner.key), 'the only newcomer is the joiner');
        const gone = all[pick % all.length]!;
        const after = subsetInstances(all.filter((x) => x !== gone), s);
        const left = swapped(before, after);
        if (!keys(before).has(gone.key)) assert.deepEqual(left, { gained: 0, lost: 0 }, 'a leaver it did not hold changes nothing');
        else assert.ok(left.lost === 1 && left.gained <= 1, `leave: ${JSON.stringify(left)}`);
      }),
    );
  });

  it('aperture: deterministic for a coordinate; min(N, max(size, ⌈N/count⌉)) consecutive members of the key ring, no duplicates', () => {
    fc.assert(
      fc.property(fleetArb, fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 2000 }), fc.nat(), fc.integer(), (ids, size, count, i, seed) => {
        const all = fleet(ids);
        const s = aperture(size, i % count, count);
        const a = subsetInstances(all, s);
        assert.deepEqual(a.map((x) => x.key), subsetInstances(shuffled(all, seed), s).map((x) => x.key));
        assert.equal(a.length, Math.min(all.length, Math.max(size, Math.ceil(all.length / count))));
        assert.equal(a.length, baseSubsetSize(all.length, s));
        assert.equal(keys(a).size, a.length);
        const ring = [...all].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
        const start = ring.indexOf(a[0]!);
        a.forEach((x, j) => assert.equal(x, ring[(start + j) % ring.length], 'consecutive on the ring'));
      }),
    );
  });

  it('aperture: a join or a leave swaps at most two members per client', () => {
    fc.assert(
      fc.property(fleetArb, fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 2000 }), fc.nat(), (ids, size, count, pick) => {
        fc.pre(count * size >= ids.length + 1); // the aperture is `size` wide, not widened by a small fleet
        const all = fleet(ids);
        const s = aperture(size, pick % count, count);
        const before = subsetInstances(all, s);
        const joined = swapped(before, subsetInstances([...all, instance(5001 + (pick % 100))], s));
        assert.ok(joined.gained <= 2 && joined.lost <= 2, `join: ${JSON.stringify(joined)}`);
        const left = swapped(before, subsetInstances(all.filter((_, j) => j !== pick % all.length), s));
        assert.ok(left.gained <= 2 && left.lost <= 2, `leave: ${JSON.stringify(left)}`);
      }),
    );
  });

  it('aperture: every instance is held by the same number of clients ±1 (max − min ≤ 2), and at 1,000 × 300 × 20 max/avg ≤ 1.1', () => {
    const spread = (count: number, n: number, size: number): { max: number; min: number; avg: number } => {
      const all = fleet(Array.from({ length: n }, (_, i) => i));
      const held = new Map(all.map((x) => [x.key, 0]));
      for (let i = 0; i < count; i++) for (const x of subsetInstances(all, aperture(size, i, count))) held.set(x.key, held.get(x.key)! + 1);
      const v = [...held.values()];
      return { max: Math.max(...v), min: Math.min(...v), avg: v.reduce((a, b) => a + b, 0) / v.length };
    };
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 120 }), fc.integer({ min: 1, max: 30 }), (count, n, size) => {
        const s = spread(count, n, size);
        assert.ok(s.max - s.min <= 2, JSON.stringify(s));
        assert.ok(s.min >= 1, 'every instance has a client');
      }),
      { numRuns: 60 },
    );
    const fleetScale = spread(1000, 300, 20);
    assert.ok(fleetScale.max / fleetScale.avg <= 1.1, JSON.stringify(fleetScale));
  });

  it('backs each unusable member with the next candidate of the ranking, at most size extra; the unusable members stay', () => {
    fc.assert(
      fc.property(fleetArb, fc.integer({ min: 1, max: 20 }), fc.string({ minLength: 1 }), fc.func(fc.boolean()), (ids, size, clientId, bad) => {
        const all = fleet(ids);
        const s = rendezvous(size, clientId);
        const usable = (x: ServiceInstance): boolean => !bad(x.key);
        const ranked = rankInstances(all, s);
        const base = subsetInstances(all, s);
        const out = subsetInstances(all, s, usable);
        assert.deepEqual(out.slice(0, base.length), base, 'the base subset stays, unusable members included');
        assert.deepEqual(out, ranked.slice(0, out.length), 'backups come in ranking order');
        assert.ok(out.length <= Math.min(all.length, 2 * base.length));
        const good = out.filter(usable).length;
        // Either `size` usable members, or the candidates (or the 2 × size bound) ran out.
        if (good < base.length) assert.equal(out.length, Math.min(all.length, 2 * base.length));
        else assert.equal(good, base.length, 'no more backups than needed');
      }),
    );
  });

  it('coordinateOf: peers that read the same list get distinct indexes 0 … count − 1; one not yet listed gets the place it will take', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 50 }), fc.string({ minLength: 1, maxLength: 6 }), (ids, newcomer) => {
        const list = ids.map((id, i) => createServiceInstance({ service: 'web', address: '10.1.0.1', port: 1 + i, id }));
        const indexes = ids.map((id) => coordinateOf(list, id));
        for (const c of indexes) assert.equal(c.count, ids.length);
        assert.deepEqual(indexes.map((c) => c.index).sort((a, b) => a - b), ids.map((_, i) => i), 'a permutation');
        const early = coordinateOf(list, newcomer);
        const listed = coordinateOf([...list, createServiceInstance({ service: 'web', address: '10.1.0.2', port: 1, id: newcomer })], newcomer);
        assert.deepEqual(early, listed, 'the same place before and after its registration appears');
      }),
    );
  });

  it('rejects bad options with InvalidOptionError naming the option and the fix', () => {
    const bad: [unknown, RegExp][] = [
      [{}, /subset\.size.*is required/],
      [{ size: 0 }, /subset\.size.*must be ≥ 1/],
      [{ size: 2.5 }, /subset\.size.*must be an integer/],
      [{ size: 3, sise: 3 }, /sise.*did you mean "size"/],
      [{ size: 3, clientId: '' }, /subset\.clientId.*non-empty string/],
      [{ size: 3, coordinate: { index: 3, count: 3 } }, /subset\.coordinate\.index.*must be < coordinate\.count \(3\)/],
      [{ size: 3, coordinate: { index: 0, count: 0 } }, /subset\.coordinate\.count.*must be ≥ 1/],
      [{ size: 3, coordinate: 5 }, /subset\.coordinate.*\{ index, count \}/],
      [20, /subset.*must be an object such as \{ size: 20 \}/],
      [{ size: 3, peers: { service: 'web' } }, /subset\.peers\.id.*instance id/],
      [{ size: 3, peers: 'web' }, /subset\.peers.*\{ service, id \}/],
      [{ size: 3, peers: { service: 'web', id: 'a', reslover: {} } }, /did you mean "resolver"/],
      [{ size: 3, peers: { service: 'web', id: 'a' }, coordinate: { index: 0, count: 2 } }, /alternatives/],
    ];
    for (const [value, message] of bad) {
      assert.throws(() => resolveSubset('subset', value, noRandomId), (e: unknown) => e instanceof InvalidOptionError && message.test(e.message), JSON.stringify(value));
    }
    assert.throws(() => resolveSubset('subset', { size: 3, peers: { service: 'no such', id: 'a' } }, noRandomId), (e: unknown) => e instanceof InvalidServiceNameError && /subset\.peers\.service/.test(e.message));
    assert.equal(resolveSubset('subset', { size: 3, peers: { service: 'web', id: 'a' } }, () => 'x').mode, 'aperture');
    assert.equal(resolveSubset('subset', { size: 3 }, () => 'random-id').clientId, 'random-id');
    assert.equal(resolveSubset('subset', { size: 3, coordinate: { index: 2, count: 3 } }, () => 'x').mode, 'aperture');
  });
});
