import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import fc from 'fast-check';
import type { Picker, PickerProbing, PickSignal, ReportedLoadView } from '../src/balancer.js';
import { prequal, quantile, type PrequalOptions } from '../src/balancer-prequal.js';
import { InvalidOptionError } from '../src/errors.js';
import { locality } from '../src/locality.js';
import { slowStart } from '../src/slow-start.js';
import { decided, endpoint, endpoints, seeded, tally, type TestEndpoint } from './balancer-fixtures.js';

/** A picker with a clock the test moves. */
function setup(n: number, options: PrequalOptions = {}): { set: TestEndpoint[]; picker: Picker<TestEndpoint>; probing: PickerProbing<TestEndpoint>; clock: { now: number } } {
  const clock = { now: 0 };
  const set = endpoints(n);
  const picker = prequal({ random: seeded(7), clock: () => clock.now, ...options }).createPicker(set);
  assert.ok(picker.probing);
  return { set, picker, probing: picker.probing, clock };
}

describe('prequal()', () => {
  it('validates its options by name', () => {
    assert.throws(() => prequal({ poolSize: 0 }), (e: unknown) => e instanceof InvalidOptionError && /poolSize/.test(e.message));
    assert.throws(() => prequal({ hotQuantile: 1.5 }), (e: unknown) => e instanceof InvalidOptionError && /hotQuantile/.test(e.message));
    assert.throws(() => prequal({ probePath: 'nope' }), (e: unknown) => e instanceof InvalidOptionError && /probePath/.test(e.message));
    assert.throws(() => prequal({ probeRate: 17 }), InvalidOptionError);
    assert.throws(() => prequal({ coldChoice: 'fastest' as 'lowest' }), (e: unknown) => e instanceof InvalidOptionError && /coldChoice/.test(e.message));
    assert.throws(() => prequal({ bogus: 1 } as PrequalOptions), InvalidOptionError);
    assert.throws(() => prequal({ latencyExponent: 17 }), (e: unknown) => e instanceof InvalidOptionError && /latencyExponent/.test(e.message));
    assert.throws(() => prequal({ rifAging: 'yes' as unknown as boolean }), (e: unknown) => e instanceof InvalidOptionError && /rifAging/.test(e.message));
    assert.throws(() => prequal({ hotThresholdOf: 'all' as 'pool' }), (e: unknown) => e instanceof InvalidOptionError && /hotThresholdOf/.test(e.message));
  });

  it('latencyExponent sets how sharply the weighted cold choice favours the faster (odds latency^−x)', () => {
    const share = (latencyExponent: number): number => {
      const { set, picker, probing } = setup(2, { maxReuse: 1000, latencyExponent });
      let fast = 0;
      for (let i = 0; i < 4_000; i++) {
        probing.result(set[0]!, { rif: 0, latencyMs: 10 });
        probing.result(set[1]!, { rif: 0, latencyMs: 20 });
        if (picker.pick() === set[0]) fast++;
      }
      return fast / 4_000;
    };
    const linear = share(1); // odds 2 : 1
    const sharp = share(4); // odds 16 : 1
    const flat = share(0); // uniform
    assert.ok(linear > 0.62 && linear < 0.71, `x = 1: ${linear}`);
    assert.ok(sharp > 0.92 && sharp < 0.97, `x = 4: ${sharp}`);
    assert.ok(flat > 0.46 && flat < 0.54, `x = 0: ${flat}`);
  });

  it("rifAging: a probe's RIF ages toward its server's mean (reported rps × this client's latency), so an old 'idle' loses to a fresh count", () => {
    const pick = (rifAging: boolean): TestEndpoint | undefined => {
      const { set, picker, probing, clock } = setup(2, { maxReuse: 1000, coldChoice: 'lowest', hotThresholdOf: 'pool', hotQuantile: 0.5, rifAging });
      const reported = (rps: number): ReportedLoadView => ({ utilization: undefined, rps, eps: 0, rif: undefined, latencyMs: undefined, ageMs: 0, report: {} });
      Object.assign(set[0]!.load, { ewmaMs: 20, reported: reported(400) }); // a busy server: mean 400/s × 20 ms = 8 in flight
      Object.assign(set[1]!.load, { ewmaMs: 20, reported: reported(100) }); // mean 2
      probing.result(set[0]!, { rif: 0, latencyMs: 10 }); // idle when probed…
      clock.now += 100; // …five latencies ago
      probing.result(set[1]!, { rif: 3, latencyMs: 10 }); // three in flight, just now
      return picker.pick();
    };
    const asReported = pick(false);
    const aged = pick(true);
    assert.equal(asReported?.instance.key, 'e0', 'as reported: the old idle count wins');
    assert.equal(aged?.instance.key, 'e1', 'aged: e0 reads ≈ 8 in flight now, e1 3');
  });

  it("hotThresholdOf: 'pool' takes the threshold from the pool's counts, so a pool above the recent history still has cold endpoints, chosen by latency", () => {
    const decide = (hotThresholdOf: 'history' | 'pool'): { chosen: TestEndpoint | undefined; signal: PickSignal | undefined } => {
      const { set, picker, probing } = setup(3, { maxReuse: 1000, coldChoice: 'lowest', hotQuantile: 0.5, hotThresholdOf });
      for (let k = 0; k < 32; k++) probing.result(set[0]!, { rif: 0, latencyMs: 1 }); // a history of idle
      probing.result(set[0]!, { rif: 9, latencyMs: 1 });
      probing.result(set[1]!, { rif: 4, latencyMs: 50 });
      probing.result(set[2]!, { rif: 7, latencyMs: 2 });
      return decided(picker);
    };
    const history = decide('history');
    assert.equal(history.signal, 'probe-in-flight', 'against the idle history all three are hot');
    assert.equal(history.chosen?.instance.key, 'e1');
    const pool = decide('pool');
    assert.equal(pool.signal, 'probe-latency', 'against the pool (median 7), e1 and e2 are cold');
    assert.equal(pool.chosen?.instance.key, 'e2', 'the faster cold one');
  });

  it('falls back to least-request (P2C on in-flight counts) while the pool is empty', () => {
    const { set, picker } = setup(2);
    set[0]!.load.inFlight = 5;
    for (let i = 0; i < 20; i++) {
      const { chosen, signal } = decided(picker);
      assert.equal(signal, 'in-flight');
      assert.equal(chosen, set[1]);
    }
  });

  it("among cold endpoints picks the lowest latency (coldChoice: 'lowest', the paper's rule)", () => {
    const { set, picker, probing } = setup(4, { maxReuse: 1000, coldChoice: 'lowest' });
    probing.result(set[0]!, { rif: 1, latencyMs: 9 });
    probing.result(set[1]!, { rif: 1, latencyMs: 2 });
    probing.result(set[2]!, { rif: 0, latencyMs: 6 });
    probing.result(set[3]!, { rif: 1, latencyMs: 5 });
    const { chosen, signal } = decided(picker);
    assert.equal(signal, 'probe-latency');
    assert.equal(chosen, set[1]);
  });

  it('never picks a hot endpoint while a cold one is in the pool, however fast the hot one is', () => {
    const { set, picker, probing } = setup(5, { maxReuse: 1000 });
    for (let k = 0; k < 6; k++) for (let i = 1; i < 5; i++) probing.result(set[i]!, { rif: 1, latencyMs: 10 });
    probing.result(set[0]!, { rif: 40, latencyMs: 0.1 }); // far above the 0.84 quantile of recent RIFs
    const { chosen, signal } = decided(picker);
    assert.equal(signal, 'probe-latency');
    assert.notEqual(chosen, set[0]);
  });

  it('when every endpoint in the pool is hot, picks the fewest requests in flight', () => {
    const { set, picker, probing } = setup(3, { maxReuse: 1000 });
    // History of low RIFs sets the threshold; then the pool's probes are all above it.
    for (let k = 0; k < 32; k++) probing.result(set[0]!, { rif: 0, latencyMs: 1 });
    probing.result(set[0]!, { rif: 9, latencyMs: 1 });
    probing.result(set[1]!, { rif: 4, latencyMs: 50 });
    probing.result(set[2]!, { rif: 7, latencyMs: 2 });
    const { chosen, signal } = decided(picker);
    assert.equal(signal, 'probe-in-flight');
    assert.equal(chosen, set[1]);
  });

  it("counts this client's own requests in flight when they exceed the probe's count (a stale probe says idle)", () => {
    const { set, picker, probing } = setup(2, { maxReuse: 1000, coldChoice: 'lowest' });
    for (let k = 0; k < 32; k++) probing.result(set[1]!, { rif: 1, latencyMs: 5 });
    probing.result(set[0]!, { rif: 0, latencyMs: 1 }); // the faster one, idle when probed…
    set[0]!.load.inFlight = 6; // …but this client has sent it six requests since
    const { chosen } = decided(picker);
    assert.equal(chosen, set[1]);
  });

  it('does not probe a target whose pool entry is fresh (an in-band report just refreshed it); the owed probe counts as done', () => {
    const { set, picker, probing, clock } = setup(2, { probeRate: 2, maxReuse: 1000, maxProbeAgeMs: 1_000 });
    probing.result(set[0]!, { rif: 0, latencyMs: 1 });
    probing.result(set[1]!, { rif: 0, latencyMs: 1 });
    picker.pick();
    assert.deepEqual(probing.targets(8), [], 'both entries are fresh');
    clock.now += 80;
    picker.pick();
    assert.deepEqual(probing.targets(8), [], 'still younger than a tenth of maxProbeAgeMs, and the earlier owed probes were paid');
    clock.now += 40; // 120 ms old now
    picker.pick();
    assert.equal(probing.targets(8).length, 2);
  });

  it('ages probes out after maxProbeAgeMs, then falls back', () => {
    const { set, picker, probing, clock } = setup(2, { maxProbeAgeMs: 100, maxReuse: 1000 });
    probing.result(set[0]!, { rif: 0, latencyMs: 1 });
    assert.equal(decided(picker).signal, 'probe-latency');
    assert.equal(probing.poolSize, 1);
    clock.now = 101;
    assert.equal(decided(picker).signal, 'in-flight');
    assert.equal(probing.poolSize, 0);
  });

  it('drops a probe after maxReuse picks, and counts each pick in its RIF', () => {
    const { set, picker, probing } = setup(2, { maxReuse: 2 });
    probing.result(set[0]!, { rif: 0, latencyMs: 1 });
    assert.equal(decided(picker).chosen, set[0]);
    assert.equal(probing.poolSize, 1);
    decided(picker);
    assert.equal(probing.poolSize, 0);
  });

  it('drops an endpoint\'s probe when a later probe of it fails (a hung server stops being picked)', () => {
    const { set, picker, probing } = setup(2, { maxReuse: 1000 });
    probing.result(set[0]!, { rif: 0, latencyMs: 1 });
    probing.result(set[1]!, { rif: 0, latencyMs: 50 });
    assert.equal(decided(picker).chosen, set[0]);
    probing.failed(set[0]!);
    for (let i = 0; i < 10; i++) assert.equal(decided(picker).chosen, set[1]);
  });

  it('skips unavailable and excluded endpoints in the pool', () => {
    const { set, picker, probing } = setup(3, { maxReuse: 1000 });
    probing.result(set[0]!, { rif: 0, latencyMs: 1 });
    probing.result(set[1]!, { rif: 0, latencyMs: 2 });
    probing.result(set[2]!, { rif: 0, latencyMs: 3 });
    (set[0] as { available?: boolean }).available = false;
    assert.equal(picker.pick(), set[1]);
    assert.equal(picker.pick({ exclude: new Set([set[1]!]) }), set[2]);
  });

  it('among cold endpoints picks at random with odds in inverse proportion to latency (default)', () => {
    const { set, picker, probing } = setup(3, { maxReuse: 1000 });
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) {
      probing.result(set[0]!, { rif: 0, latencyMs: 1 });
      probing.result(set[1]!, { rif: 0, latencyMs: 2 });
      probing.result(set[2]!, { rif: 0, latencyMs: 30 });
      counts[set.indexOf(picker.pick()!)]!++;
    }
    // Odds 1 : 1/2 : 1/30 → 64.5 % : 32.3 % : 2.2 %.
    assert.ok(counts[0]! > 1750 && counts[0]! < 2150, counts.join('/'));
    assert.ok(counts[1]! > 800 && counts[1]! < 1150, counts.join('/'));
    assert.ok(counts[2]! < 150, counts.join('/'));
  });

  it('shares the picks of about equally fast endpoints at one request at a time', () => {
    const { set, picker, probing } = setup(2, { maxReuse: 1000 });
    const counts = [0, 0];
    for (let i = 0; i < 1000; i++) {
      // Each answer reports the server idle again (one request at a time); latencies differ by 10 % (coldChoice 'lowest' gives one all).
      probing.result(set[0]!, { rif: 0, latencyMs: 1.0 });
      probing.result(set[1]!, { rif: 0, latencyMs: 1.1 });
      counts[set.indexOf(picker.pick()!)]!++;
    }
    assert.ok(counts[0]! > 350 && counts[1]! > 350, counts.join('/'));
  });

  it('gives endpoints that answer probes without a report their share, by least-request among themselves', () => {
    const { set, picker, probing } = setup(4, { maxReuse: 1000 });
    probing.result(set[0]!, { rif: 0, latencyMs: 1 });
    probing.result(set[1]!, { rif: 0, latencyMs: 1 });
    probing.result(set[2]!, undefined);
    probing.result(set[3]!, undefined);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[set.indexOf(picker.pick()!)]!++;
    for (const c of counts) assert.ok(c > 500, counts.join('/'));
  });

  it('never hands out more probe targets than probeRate per pick, distinct within a call (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 0, max: 16, noNaN: true }),
        fc.array(fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 20 })), { maxLength: 200 }),
        fc.integer(),
        (n, probeRate, ops, seed) => {
          const set = endpoints(n);
          const picker = prequal({ probeRate, random: seeded(seed) }).createPicker(set);
          let picks = 0;
          let handed = 0;
          for (const op of ops) {
            if (op < 0) {
              picker.pick();
              picks++;
            } else {
              const t = picker.probing!.targets(op);
              assert.ok(t.length <= op);
              assert.equal(new Set(t).size, t.length);
              handed += t.length;
            }
            assert.ok(handed <= probeRate * picks + 1e-9, `${handed} targets after ${picks} picks at rate ${probeRate}`);
          }
        },
      ),
    );
  });

  it('never holds more probes than poolSize, one per endpoint, all younger than maxProbeAgeMs at a pick (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(
          fc.record({ kind: fc.constantFrom('result', 'fail', 'pick', 'tick', 'none'), i: fc.nat(29), rif: fc.nat(20), lat: fc.double({ min: 0, max: 100, noNaN: true }), dt: fc.nat(60) }),
          { maxLength: 300 },
        ),
        (n, poolSize, ops) => {
          let now = 0;
          const set = endpoints(n);
          const picker = prequal({ poolSize, maxProbeAgeMs: 100, maxReuse: 3, random: seeded(n), clock: () => now }).createPicker(set);
          const probing = picker.probing!;
          let lastResultAt = -Infinity;
          for (const op of ops) {
            const e = set[op.i % n]!;
            if (op.kind === 'result') {
              probing.result(e, { rif: op.rif, latencyMs: op.lat });
              lastResultAt = now;
            }
            else if (op.kind === 'none') probing.result(e, undefined);
            else if (op.kind === 'fail') probing.failed(e);
            else if (op.kind === 'tick') now += op.dt;
            else {
              const chosen = picker.pick();
              assert.ok(chosen !== undefined && set.includes(chosen));
              if (now - lastResultAt > 100) assert.equal(probing.poolSize, 0, 'a probe outlived maxProbeAgeMs');
            }
            assert.ok(probing.poolSize <= Math.min(poolSize, n), `pool ${probing.poolSize} > ${poolSize}`);
          }
        },
      ),
    );
  });

  it('keeps its probing side when wrapped in slowStart()', () => {
    const set = endpoints(3);
    const picker = slowStart(prequal({ random: seeded(3) })).createPicker(set);
    assert.ok(picker.probing !== undefined, 'the transport can still send probes');
    picker.pick();
    assert.equal(picker.probing.targets(8).length, 3);
  });

  it('quantile() interpolates between ranks', () => {
    const sorted = Float64Array.from([0, 1, 2, 10]);
    assert.equal(quantile(sorted, 4, 0), 0);
    assert.equal(quantile(sorted, 4, 1), 10);
    assert.equal(quantile(sorted, 4, 0.5), 1.5);
    assert.equal(quantile(sorted, 0, 0.5), Infinity);
  });
});

describe('prequal(): a change of the endpoint set', () => {
  /** A balancer value with a clock the test moves, and a probed picker over `set`. */
  function probed(set: TestEndpoint[], options: PrequalOptions = {}) {
    const clock = { now: 0 };
    const balancer = prequal({ random: seeded(3), clock: () => clock.now, maxReuse: 1000, ...options });
    const picker = balancer.createPicker(set);
    set.forEach((e, i) => picker.probing!.result(e, { rif: 0, latencyMs: 1 + i }));
    return { balancer, picker, clock };
  }

  it('keeps the probes of the endpoints still present and drops those of the removed ones', () => {
    const set = endpoints(3);
    const { balancer, picker } = probed(set);
    assert.equal(picker.probing!.poolSize, 3);
    const joined = endpoint('e9');
    const next = balancer.createPicker([set[0]!, set[1]!, joined]); // e2 left, e9 joined
    next.probing!.inherit?.(picker.probing!);
    assert.equal(next.probing!.poolSize, 2, 'e0 and e1 keep their probes; e2 is gone; e9 has none yet');
    // Picks right after the change still decide on probes (no fallback to blind least-request).
    for (let i = 0; i < 20; i++) {
      const { chosen, signal } = decided(next);
      assert.match(String(signal), /^probe-/);
      assert.notEqual(chosen, joined);
    }
  });

  it('matches endpoints wrapped anew by instance key and address, never an instance that moved', () => {
    const set = endpoints(2);
    const { balancer, picker } = probed(set);
    const same = { instance: set[0]!.instance, load: { inFlight: 0, ewmaMs: 0, readySince: 0 } };
    const moved = { instance: { ...set[1]!.instance, port: 9999 }, load: { inFlight: 0, ewmaMs: 0, readySince: 0 } };
    const next = balancer.createPicker([same, moved]);
    next.probing!.inherit?.(picker.probing!);
    assert.equal(next.probing!.poolSize, 1);
    assert.equal(next.pick(), same);
  });

  it('keeps the ages and uses of the inherited probes (they still age out on time)', () => {
    const set = endpoints(2);
    const { balancer, picker, clock } = probed(set, { maxProbeAgeMs: 100 });
    clock.now = 60;
    const next = balancer.createPicker(set);
    next.probing!.inherit?.(picker.probing!);
    assert.equal(decided(next).signal, 'probe-latency');
    clock.now = 101;
    assert.equal(decided(next).signal, 'in-flight');
  });

  it('inherits nothing from a picker of another prequal() value', () => {
    const set = endpoints(2);
    const { picker } = probed(set);
    const other = prequal().createPicker(set);
    other.probing!.inherit?.(picker.probing!);
    assert.equal(other.probing!.poolSize, 0);
  });
});

describe('prequal() inside wrappers', () => {
  const zoned = [
    endpoint('a1', { zone: 'a' }), endpoint('a2', { zone: 'a' }), endpoint('a3', { zone: 'a' }),
    endpoint('b1', { zone: 'b' }), endpoint('b2', { zone: 'b' }),
  ];

  it('locality(prequal()) asks for probes and hands every answer to the tier that picks', () => {
    const picker = locality(prequal({ random: seeded(5), maxReuse: 1000 }), { zone: 'a' }).createPicker(zoned);
    const probing = picker.probing;
    assert.ok(probing, 'the wrapper forwards the probing side');
    assert.equal(probing.settings.path, '/endpoint-load-metrics');
    picker.pick();
    const targets = probing.targets(8);
    assert.ok(targets.length > 0 && targets.every((e) => e.instance.zone === 'a'), 'the local tier owes the probes');
    const counts = tally(() => {
      // Each answer reports the servers idle again (one request at a time).
      for (const e of zoned) probing.result(e, { rif: 0, latencyMs: e.instance.key === 'a2' ? 1 : 50 });
      const signals: PickSignal[] = [];
      const e = picker.pick({ signals });
      assert.equal(signals[0], 'probe-latency');
      return e;
    }, 200);
    assert.deepEqual([...counts.keys()].filter((k) => !k.startsWith('a')), [], 'traffic stays local');
    assert.ok((counts.get('a2') ?? 0) > 150, `the fast local endpoint wins: ${JSON.stringify([...counts])}`);
  });

  it('locality(prequal()) inherits its probes across a change of the set', () => {
    const balancer = locality(prequal({ random: seeded(5), maxReuse: 1000 }), { zone: 'a' });
    const picker = balancer.createPicker(zoned);
    for (const e of zoned) picker.probing!.result(e, { rif: 0, latencyMs: 1 });
    const next = balancer.createPicker([...zoned.slice(1), endpoint('a9', { zone: 'a' })]);
    next.probing!.inherit?.(picker.probing!);
    assert.equal(next.probing!.poolSize, 4, 'every endpoint still present keeps its probe');
    assert.equal(decided(next).signal, 'probe-latency');
  });
});
