import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import fc from 'fast-check';
import { consistentHash, hashKey32 } from '../src/balancer-hash.js';
import { InvalidOptionError } from '../src/errors.js';
import { endpoint, seeded, tally, type TestEndpoint } from './balancer-fixtures.js';

const keys = Array.from({ length: 2000 }, (_, i) => `user-${i}`);
const uniqueKeys = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 2, maxLength: 16 });

function mapping(set: readonly TestEndpoint[], algorithm: 'ring' | 'maglev'): Map<string, string> {
  // Maglev at its default table size (65,537), as users get it: with a small table two endpoints
  // share a skip now and then (at 5,003: a few per thousand sets), their preference lists are then
  // translates of each other, and removing a third endpoint remapped up to 45% of their keys.
  const picker = consistentHash({ algorithm, replicas: 50 }).createPicker(set);
  return new Map(keys.map((k) => [k, picker.pick({ hashKey: k })!.instance.key]));
}

/** Whether two endpoints get the same Maglev skip at the default table size (the build's seed). */
function sharesSkip(set: readonly TestEndpoint[], m = 65_537): boolean {
  const skips = set.map((e) => (hashKey32(e.instance.key, 0x27d4eb2f) % (m - 1)) + 1);
  return new Set(skips).size !== skips.length;
}

describe('consistentHash()', () => {
  it('returns undefined for an empty set', () => {
    assert.equal(consistentHash().createPicker([]).pick({ hashKey: 'a' }), undefined);
    assert.equal(consistentHash({ algorithm: 'maglev' }).createPicker([]).pick(), undefined);
  });

  for (const algorithm of ['ring', 'maglev'] as const) {
    describe(algorithm, () => {
      it('sends a key to the same endpoint every time, whatever the snapshot order', () => {
        const set = Array.from({ length: 8 }, (_, i) => endpoint(`10.0.0.${i}:80`));
        const a = mapping(set, algorithm);
        const b = mapping([...set].reverse(), algorithm);
        assert.deepEqual(a, b);
        assert.deepEqual(mapping(set, algorithm), a);
      });

      it('spreads keys over every endpoint', () => {
        const set = Array.from({ length: 5 }, (_, i) => endpoint(`10.0.0.${i}:80`));
        const picker = consistentHash({ algorithm }).createPicker(set);
        let i = 0;
        const counts = tally(() => picker.pick({ hashKey: `k${i++}` }), 20_000);
        for (const c of counts.values()) assert.ok(c > 4000 * 0.75 && c < 4000 * 1.25, `count ${c}`);
      });

      it('falls back to random without a hash key', () => {
        const set = Array.from({ length: 4 }, (_, i) => endpoint(`e${i}`));
        const picker = consistentHash({ algorithm, random: seeded(2) }).createPicker(set);
        assert.equal(tally(() => picker.pick(), 400).size, 4);
      });

      it('walks on to the next endpoint when the hashed one is excluded', () => {
        const set = Array.from({ length: 6 }, (_, i) => endpoint(`e${i}`));
        const picker = consistentHash({ algorithm }).createPicker(set);
        for (const k of keys.slice(0, 200)) {
          const first = picker.pick({ hashKey: k })!;
          const exclude = new Set([first]);
          const second = picker.pick({ hashKey: k, exclude })!;
          assert.notEqual(second, first);
          assert.equal(picker.pick({ hashKey: k, exclude }), second, 'retries of one key agree');
          exclude.add(second);
          assert.ok(!exclude.has(picker.pick({ hashKey: k, exclude })!));
        }
        assert.ok(picker.pick({ hashKey: 'x', exclude: new Set(set) }) !== undefined);
        const noKey = new Set(set.slice(1));
        assert.equal(picker.pick({ exclude: noKey }), set[0]);
      });
    });
  }

  it('ring: removing or adding an endpoint moves only its own keys; no key moves between two others (property)', () => {
    fc.assert(
      fc.property(uniqueKeys, fc.nat(), (names, which) => {
        const set = names.map((n) => endpoint(n));
        const removed = set[which % set.length]!;
        const before = mapping(set, 'ring');
        const after = mapping(set.filter((e) => e !== removed), 'ring');
        for (const [k, owner] of before) {
          if (owner !== removed.instance.key) assert.equal(after.get(k), owner, `key ${k} moved between unaffected endpoints`);
          else assert.notEqual(after.get(k), owner);
        }
        // Adding it back is the same change reversed: keys move only onto the new endpoint.
        for (const [k, owner] of after) {
          const now = before.get(k);
          assert.ok(now === owner || now === removed.instance.key);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('maglev: removing an endpoint remaps at most a small fraction of the other keys (property)', () => {
    fc.assert(
      fc.property(uniqueKeys, fc.nat(), (names, which) => {
        const set = names.map((n) => endpoint(n));
        // Two endpoints with the same skip (about one pair in 65,536) have preference lists that are
        // translates of each other: Maglev's known weak spot (the paper's and Envoy's build alike),
        // shown by the test below. Changing the build to avoid it would remap keys across versions.
        fc.pre(!sharesSkip(set));
        const removed = set[which % set.length]!;
        const before = mapping(set, 'maglev');
        const after = mapping(set.filter((e) => e !== removed), 'maglev');
        let others = 0;
        let moved = 0;
        for (const [k, owner] of before) {
          if (owner === removed.instance.key) continue;
          others++;
          if (after.get(k) !== owner) moved++;
        }
        // Maglev trades perfect stability for even spread: a removal reshuffles a
        // little of the others' table slots (1,500 random sets: at most 1.2 %).
        assert.ok(moved <= others * 0.12, `moved ${moved} of ${others}`);
      }),
      { numRuns: Number(process.env['FC_NUM_RUNS'] ?? 60) },
    );
  });

  it('maglev: two endpoints sharing a skip remap more keys when a third leaves (measured, as in the paper)', () => {
    // Found by the property above (seed -405258813): "S$" and "'}YC" share skip 26528 at m = 65,537.
    const set = ['S$', "'}YC", ' '].map((n) => endpoint(n));
    assert.ok(sharesSkip(set));
    const before = mapping(set, 'maglev');
    const after = mapping(set.filter((e) => e !== set[2]), 'maglev');
    let others = 0;
    let moved = 0;
    for (const [k, owner] of before) {
      if (owner === set[2]!.instance.key) continue;
      others++;
      if (after.get(k) !== owner) moved++;
    }
    // 623 of 1,356 (46 %) with the build of 4 Dec 2026; under 1.2 % for sets without a shared skip
    // (1,500 random sets of 2–16 endpoints: median 0.1–0.3 %, the worst 1.2 %).
    // Left as it is on purpose: any fix re-derives a colliding endpoint's skip, so it changes the
    // table of every set with a collision, and at m = 65,537 that is most large sets (the rolling-
    // upgrade digests below: 7 pairs share a skip among 1,000 endpoints, 787 among 10,000; measured
    // 5 Dec 2026). Clients of two versions would then disagree on those keys during an upgrade.
    assert.ok(moved > others * 0.12, `moved ${moved} of ${others}`);
  });

  it('maglev: fills its table exactly as the paper\'s populate loop does (reference implementation, property)', () => {
    // Every slot's owner, read through picks of one key per slot, against a plain transcription of
    // Maglev's populate: endpoints in order of (hash, key), each in turn taking the first free slot
    // of offset + j·skip (mod m). The build finds the same slots by other means (a bitmap, and for
    // the last slots a search through skip's inverse), so any difference is a bug.
    const keysPerSlot = new Map<number, string[]>();
    const slotKeys = (m: number): string[] => {
      let found = keysPerSlot.get(m);
      if (found === undefined) {
        const bySlot = new Array<string | undefined>(m);
        for (let i = 0, missing = m; missing > 0; i++) {
          const slot = hashKey32(`k${i}`) % m;
          if (bySlot[slot] === undefined) {
            bySlot[slot] = `k${i}`;
            missing--;
          }
        }
        found = bySlot as string[];
        keysPerSlot.set(m, found);
      }
      return found;
    };
    const names = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 300 });
    fc.assert(
      fc.property(names, fc.constantFrom(2, 3, 5, 101, 1009, 5003), (list, m) => {
        const table = referenceMaglev(list, m);
        const picker = consistentHash({ algorithm: 'maglev', tableSize: m }).createPicker(list.map((n) => endpoint(n)));
        slotKeys(m).forEach((key, slot) => assert.equal(picker.pick({ hashKey: key })!.instance.key, table[slot], `slot ${slot}`));
      }),
      { numRuns: Number(process.env['FC_NUM_RUNS'] ?? 60) },
    );
    // And once at the default size, with more endpoints than the property's sets.
    const set = Array.from({ length: 1500 }, (_, i) => endpoint(`node${i % 7}/web-${i}`));
    const table = referenceMaglev(set.map((e) => e.instance.key), 65_537);
    const picker = consistentHash({ algorithm: 'maglev' }).createPicker(set);
    for (let i = 0; i < 30_000; i++) {
      const key = `user-${i}`;
      assert.equal(picker.pick({ hashKey: key })!.instance.key, table[hashKey32(key) % 65_537], key);
    }
  });

  it('maglev: builds the same tables as earlier versions (a rolling upgrade must not remap keys)', () => {
    // Digests of 20,000 keys' endpoints, taken with the build of 24 Nov 2026 (f5a387d). A change
    // here remaps keys between clients of two versions: say so in the changelog if it is meant.
    const digest = (n: number, tableSize: number): string => {
      const set = Array.from({ length: n }, (_, i) => endpoint(`node${i % 7}/web-${i}`));
      const picker = consistentHash({ algorithm: 'maglev', tableSize }).createPicker(set);
      const owners = Array.from({ length: 20_000 }, (_, i) => picker.pick({ hashKey: `user-${i}` })!.instance.key);
      return hashKey32(owners.join(',')).toString(16);
    };
    assert.equal(digest(3, 65_537), '105c3e68');
    assert.equal(digest(100, 5003), 'ff3dd2f6');
    assert.equal(digest(1000, 65_537), '8db60833');
    assert.equal(digest(10_000, 65_537), 'c441362d');
  });

  it('hashKey32 is stable and well spread', () => {
    assert.equal(hashKey32('user-42'), hashKey32('user-42'));
    assert.notEqual(hashKey32('user-42'), hashKey32('user-43'));
    const buckets = new Array<number>(16).fill(0);
    for (const k of keys) buckets[hashKey32(k) % 16]!++;
    for (const b of buckets) assert.ok(b > 80 && b < 170, `bucket ${b}`);
  });

  it('validates its options, naming them', () => {
    const cases: [string, object][] = [
      ['algorithm', { algorithm: 'rendezvous' }],
      ['replicas', { replicas: 0 }],
      ['tableSize', { tableSize: 65536 }],
      ['random', { random: 1 }],
    ];
    for (const [option, value] of cases) {
      assert.throws(() => consistentHash(value), (e: unknown) => e instanceof InvalidOptionError && e.option === option);
    }
  });
});

/** Maglev's populate as the paper writes it (no shortcuts): slot → instance key. */
function referenceMaglev(keys: readonly string[], m: number): string[] {
  const orderHash = (k: string): number => hashKey32(k, 0x3c6ef372);
  const sorted = [...keys].sort((a, b) => orderHash(a) - orderHash(b) || (a < b ? -1 : a > b ? 1 : 0));
  const offset = sorted.map((k) => hashKey32(k, 0x5bd1e995) % m);
  const skip = sorted.map((k) => (hashKey32(k, 0x27d4eb2f) % (m - 1)) + 1);
  const next = sorted.map(() => 0);
  const table = new Array<string | undefined>(m);
  let filled = 0;
  for (;;) {
    for (let i = 0; i < sorted.length; i++) {
      let c = (offset[i]! + next[i]! * skip[i]!) % m;
      while (table[c] !== undefined) {
        next[i]!++;
        c = (offset[i]! + next[i]! * skip[i]!) % m;
      }
      table[c] = sorted[i];
      next[i]!++;
      if (++filled === m) return table as string[];
    }
  }
}
