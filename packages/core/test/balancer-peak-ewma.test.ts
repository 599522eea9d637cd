import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import fc from 'fast-check';
import { peakEwma } from '../src/balancer-peak-ewma.js';
import type { BalancerEndpoint, PickSignal, ReportedLoadView } from '../src/balancer.js';
import { InvalidOptionError } from '../src/errors.js';
import { endpoint, endpoints, seeded, tally } from './balancer-fixtures.js';

const cost = (e: { load: { ewmaMs: number; inFlight: number } }): number => e.load.ewmaMs * (e.load.inFlight + 1);

describe('peakEwma()', () => {
  it('returns undefined for an empty set', () => {
    assert.equal(peakEwma().createPicker([]).pick(), undefined);
  });

  it('asked to explain, records the scores exactly as it compared them (estimates that decay on read move afterwards)', () => {
    // Each estimate changes with every read, as a decaying one does as time passes: read again
    // after the pick, "a" (10 → 100) would look costlier than "b" (20 → 5) although "a" won.
    const moving = (...reads: number[]): { inFlight: number; readySince: number; readonly ewmaMs: number } => ({
      inFlight: 0,
      readySince: 0,
      get ewmaMs(): number {
        return reads.length > 1 ? reads.shift()! : reads[0]!;
      },
    });
    const a = { ...endpoint('a'), load: moving(10, 100) };
    const b = { ...endpoint('b'), load: moving(20, 5) };
    const candidates: BalancerEndpoint[] = [];
    const scores: number[] = [];
    const values = [0, 0.5];
    let k = 0;
    const picked = peakEwma({ random: () => values[k++ % 2]! }).createPicker([a, b]).pick({ candidates, scores });
    assert.equal(picked, a);
    assert.deepEqual(candidates.map((c) => c.instance.key), ['a', 'b']);
    assert.deepEqual(scores, [10, 20]);
  });

  it('never picks the costlier (ewma × (inFlight + 1)) of its two samples (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: 0.1, max: 1000, noNaN: true }), fc.nat(20)), { minLength: 2, maxLength: 40 }),
        fc.double({ min: 0, max: 0.9999999, noNaN: true }),
        fc.double({ min: 0, max: 0.9999999, noNaN: true }),
        (loads, r1, r2) => {
          const set = loads.map(([ewmaMs, inFlight], i) => endpoint(`e${i}`, {}, { ewmaMs, inFlight }));
          const values = [r1, r2];
          let k = 0;
          const picked = peakEwma({ random: () => values[k++ % 2]! }).createPicker(set).pick()!;
          const a = Math.floor(r1 * set.length);
          const b = (a + 1 + Math.floor(r2 * (set.length - 1))) % set.length;
          assert.ok(picked === set[a] || picked === set[b]);
          const other = picked === set[a] ? set[b]! : set[a]!;
          assert.ok(cost(picked) <= cost(other));
        },
      ),
    );
  });

  it('moves traffic away from a slow endpoint', () => {
    const set = endpoints(5);
    set.forEach((e) => (e.load.ewmaMs = 5));
    set[4]!.load.ewmaMs = 55;
    const picker = peakEwma({ random: seeded(11) }).createPicker(set);
    // Closed-loop-ish: each pick adds in-flight load that drains over time.
    const counts = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      const e = picker.pick()!;
      counts.set(e.instance.key, (counts.get(e.instance.key) ?? 0) + 1);
      e.load.inFlight++;
      if (i % 4 === 3) for (const x of set) x.load.inFlight = Math.max(0, x.load.inFlight - 1);
    }
    const slowShare = (counts.get('e4') ?? 0) / 20_000;
    assert.ok(slowShare < 0.05, `slow endpoint share ${slowShare}`);
  });

  it('probes a new endpoint without latency data (neutral default cost)', () => {
    const set = endpoints(4);
    set.forEach((e) => (e.load.ewmaMs = 20));
    set[3]!.load.ewmaMs = 0; // just joined
    const picker = peakEwma({ random: seeded(5) }).createPicker(set);
    const counts = tally(() => picker.pick(), 4000);
    const share = (counts.get('e3') ?? 0) / 4000;
    assert.ok(share > 0.15 && share < 0.6, `new endpoint share ${share}`);
    // An explicit default latency makes it look expensive.
    const cautiousPicker = peakEwma({ random: seeded(5), defaultLatencyMs: 1000 }).createPicker(set);
    const cautious = tally(() => cautiousPicker.pick(), 4000);
    assert.equal(cautious.get('e3'), undefined);
  });

  it('rejects a negative defaultLatencyMs', () => {
    assert.throws(() => peakEwma({ defaultLatencyMs: -1 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'defaultLatencyMs');
  });
});

describe('peakEwma({ reportedLoad: true })', () => {
  const view = (utilization: number | undefined, rif?: number, ageMs = 0): ReportedLoadView => ({ utilization, rif, rps: 100, eps: 0, latencyMs: undefined, ageMs, report: {} });
  type Reporting = ReturnType<typeof endpoint> & { load: { reported?: ReportedLoadView | undefined } };
  const reporting = (key: string, ewmaMs: number, inFlight: number, reported: ReportedLoadView | undefined): Reporting => {
    const e = endpoint(key, {}, { ewmaMs, inFlight }) as Reporting;
    e.load.reported = reported;
    return e;
  };
  const explained = (balancer: ReturnType<typeof peakEwma>, set: BalancerEndpoint[]): { key: string; signal: PickSignal | undefined; scores: number[] } => {
    const signals: PickSignal[] = [];
    const scores: number[] = [];
    const picked = balancer.createPicker(set).pick({ candidates: [], scores, signals })!;
    return { key: picked.instance.key, signal: signals[0], scores };
  };

  it('is named peak-ewma-reported and rejects a non-boolean', () => {
    assert.equal(peakEwma({ reportedLoad: true }).name, 'peak-ewma-reported');
    assert.equal(peakEwma().name, 'peak-ewma');
    assert.throws(() => peakEwma({ reportedLoad: 'yes' as never }), /reportedLoad/);
  });

  it('prefers the endpoint with more reported headroom when latency and in-flight are equal, and says so', () => {
    const set = [reporting('busy', 10, 0, view(0.9)), reporting('idle', 10, 0, view(0.1))];
    for (let i = 0; i < 20; i++) {
      const r = explained(peakEwma({ reportedLoad: true, random: seeded(i) }), set);
      assert.equal(r.key, 'idle');
      assert.equal(r.signal, 'reported-utilization');
    }
    const picker = peakEwma({ random: seeded(3) }).createPicker(set);
    const counts = tally(() => picker.pick(), 200);
    assert.ok((counts.get('busy') ?? 0) > 50, 'without the option, reports are not read: a tie, shared');
  });

  it("counts the server's requests in flight (all clients') when it reports more than this client has", () => {
    const set = [reporting('queued', 10, 1, view(0.5, 12)), reporting('free', 10, 2, view(0.5, 2))];
    const r = explained(peakEwma({ reportedLoad: true, random: seeded(5) }), set);
    assert.equal(r.key, 'free');
    assert.equal(r.signal, 'reported-rif');
    const p = explained(peakEwma({ random: seeded(5) }), set);
    assert.equal(p.key, 'queued', 'without the option: fewer in flight from this client wins');
    assert.equal(p.signal, 'in-flight');
  });

  it('still follows latency: a slow endpoint loses to a fast one that reports higher utilisation within reason', () => {
    const set = [reporting('slow', 200, 0, view(0.2)), reporting('fast', 10, 0, view(0.7))];
    const r = explained(peakEwma({ reportedLoad: true, random: seeded(2) }), set);
    assert.equal(r.key, 'fast');
    assert.equal(r.signal, 'latency');
  });

  it("lets an old report fade (e^(−age / 1 s)): a report left by an endpoint no longer picked does not keep it out", () => {
    // Equal latency; "left" last reported utilisation 0.9 and 8 in flight, 5 s ago (it has not been picked since).
    const set = [reporting('left', 10, 0, view(0.9, 8, 5_000)), reporting('current', 10, 0, view(0.3, 1, 0))];
    for (let i = 0; i < 20; i++) assert.equal(explained(peakEwma({ reportedLoad: true, random: seeded(i) }), set).key, 'left', 'its 5 s old report counts e^−5 ≈ 0.7 %');
    // The same report, fresh, keeps it out.
    const fresh = [reporting('left', 10, 0, view(0.9, 8, 0)), reporting('current', 10, 0, view(0.3, 1, 0))];
    for (let i = 0; i < 20; i++) assert.equal(explained(peakEwma({ reportedLoad: true, random: seeded(i) }), fresh).key, 'current');
    // score() (explanations of non-compared candidates) fades the same way.
    const balancer = peakEwma({ reportedLoad: true });
    assert.ok(balancer.score!(set[0]!) < balancer.score!(fresh[0]!) / 10);
  });

  it('lets a reported utilisation multiply a cost by at most 3 (1 + 2 × utilisation, capped): the live rif outweighs a full window', () => {
    // Same latency; "hot" last reported a full window (0.95) but nothing in flight now, "cool" 0.1 but 3 in flight.
    // Divided by the headroom (× 20 at 0.95, as until 5 Dec), "hot" lost; with many clients reading the same reports that herded.
    const set = [reporting('hot', 10, 0, view(0.95, 0)), reporting('cool', 10, 0, view(0.1, 3))];
    for (let i = 0; i < 20; i++) {
      const r = explained(peakEwma({ reportedLoad: true, random: seeded(i) }), set);
      assert.equal(r.key, 'hot');
      assert.equal(r.signal, 'reported-rif');
      assert.deepEqual(
        [...r.scores].sort((x, y) => x - y).map((x) => Math.round(x * 1e9) / 1e9),
        [29, 48],
      );
    }
  });

  it('an endpoint whose cost without utilisation is under a third of the other\'s wins whatever both report (property)', () => {
    fc.assert(
      fc.property(
        fc.tuple(fc.double({ min: 0.1, max: 1000, noNaN: true }), fc.nat(20), fc.option(fc.nat(50), { nil: undefined }), fc.double({ min: 0, max: 5, noNaN: true })),
        fc.tuple(fc.double({ min: 0.1, max: 1000, noNaN: true }), fc.nat(20), fc.option(fc.nat(50), { nil: undefined }), fc.double({ min: 0, max: 5, noNaN: true })),
        fc.integer(),
        ([ea, ia, ra, ua], [eb, ib, rb, ub], seed) => {
          const set = [reporting('a', ea, ia, view(ua, ra)), reporting('b', eb, ib, view(ub, rb))];
          const both = ra !== undefined && rb !== undefined;
          const base = (ewma: number, inFlight: number, rif: number | undefined): number => ewma * ((both ? Math.max(inFlight, rif!) : inFlight) + 1);
          const ca = base(ea, ia, ra);
          const cb = base(eb, ib, rb);
          fc.pre(ca * 3 < cb || cb * 3 < ca);
          const picked = peakEwma({ reportedLoad: true, random: seeded(seed) }).createPicker(set).pick()!.instance.key;
          assert.equal(picked, ca < cb ? 'a' : 'b');
        },
      ),
    );
  });

  it('compares an endpoint that does not report exactly as without the option (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.double({ min: 0.1, max: 1000, noNaN: true }), fc.nat(20), fc.option(fc.tuple(fc.double({ min: 0, max: 3, noNaN: true }), fc.nat(50)), { nil: undefined })),
          { minLength: 2, maxLength: 20 },
        ),
        fc.integer(),
        (loads, seed) => {
          // At most one endpoint reports: no comparison has two reporting endpoints.
          const set = loads.map(([ewmaMs, inFlight, r], i) => reporting(`e${i}`, ewmaMs, inFlight, i === 0 && r !== undefined ? view(r[0], r[1]) : undefined));
          const fused = peakEwma({ reportedLoad: true, random: seeded(seed) }).createPicker(set);
          const plain = peakEwma({ random: seeded(seed) }).createPicker(set);
          for (let k = 0; k < 10; k++) assert.equal(fused.pick()?.instance.key, plain.pick()?.instance.key);
        },
      ),
    );
  });

  it('explains plain peak EWMA picks by latency or in-flight, and a lone endpoint as the only choice', () => {
    assert.equal(explained(peakEwma({ random: seeded(1) }), [reporting('a', 5, 0, undefined), reporting('b', 50, 0, undefined)]).signal, 'latency');
    assert.equal(explained(peakEwma({ random: seeded(1) }), [reporting('a', 5, 3, undefined), reporting('b', 5, 0, undefined)]).signal, 'in-flight');
    assert.equal(explained(peakEwma({ random: seeded(1) }), [reporting('a', 5, 0, undefined)]).signal, 'only-choice');
  });
});
