import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import type { Picker, ReportedLoadView } from '../src/balancer.js';
import { prequalWhenReported, type PrequalWhenReportedOptions } from '../src/balancer-prequal-when-reported.js';
import { InvalidOptionError } from '../src/errors.js';
import { locality } from '../src/locality.js';
import { decided, endpoints, seeded, type TestEndpoint } from './balancer-fixtures.js';

type Reporting = TestEndpoint & { load: { reported?: ReportedLoadView | undefined }; available?: boolean };

const view = (rif: number): ReportedLoadView => ({ utilization: 0.5, rif, rps: 100, eps: 0, latencyMs: 10, ageMs: 0, report: {} });

/** A default picker over `n` endpoints with a clock the test moves; `reports` sets each endpoint's usable report. */
function setup(n: number, options: PrequalWhenReportedOptions = {}): { set: Reporting[]; picker: Picker<Reporting>; clock: { now: number } } {
  const clock = { now: 1_000 };
  const set = endpoints(n) as Reporting[];
  const picker = prequalWhenReported({ clock: () => clock.now, peakEwma: { random: seeded(3) }, prequal: { random: seeded(5), clock: () => clock.now }, ...options }).createPicker(set);
  return { set, picker, clock };
}

describe('prequalWhenReported()', () => {
  it('validates its options by name, and prequal: false is plain peak EWMA', () => {
    assert.throws(() => prequalWhenReported({ bogus: 1 } as PrequalWhenReportedOptions), InvalidOptionError);
    assert.throws(() => prequalWhenReported({ prequal: 'yes' as unknown as false }), (e: unknown) => e instanceof InvalidOptionError && /prequal/.test(e.message));
    assert.throws(() => prequalWhenReported({ prequal: { hotQuantile: 2 } }), (e: unknown) => e instanceof InvalidOptionError && /hotQuantile/.test(e.message));
    assert.throws(() => prequalWhenReported({ peakEwma: { defaultLatencyMs: -1 } }), (e: unknown) => e instanceof InvalidOptionError && /defaultLatencyMs/.test(e.message));
    assert.equal(prequalWhenReported({ prequal: false }).name, 'peak-ewma');
    assert.equal(prequalWhenReported().name, 'prequal-when-reported');
    const [e] = endpoints(1);
    e!.load.ewmaMs = 4;
    e!.load.inFlight = 2;
    assert.equal(prequalWhenReported().score?.(e!), 12, "peak EWMA's cost, ewmaMs × (inFlight + 1), explains its picks");
  });

  it('picks by peak EWMA and asks for no probe while the endpoints do not report', () => {
    const { set, picker } = setup(3);
    set[0]!.load.ewmaMs = 50;
    set[1]!.load.ewmaMs = 5;
    set[2]!.load.ewmaMs = 50;
    const probing = picker.probing!;
    for (let i = 0; i < 50; i++) {
      const { signal } = decided(picker);
      assert.notEqual(signal, 'probe-latency');
      assert.notEqual(signal, 'probe-in-flight');
      assert.deepEqual(probing.targets(8), []);
    }
  });

  it('stays on peak EWMA while one available endpoint does not report, and probes once every one does', () => {
    const { set, picker, clock } = setup(4);
    for (const e of set.slice(0, 3)) e.load.reported = view(1);
    const probing = picker.probing!;
    for (const e of set) probing.result(e, { rif: 1, latencyMs: 10 }); // the in-band reports fill the pool all along
    decided(picker);
    assert.deepEqual(probing.targets(8), [], 'one endpoint does not report: no probes');
    set[3]!.load.reported = view(1);
    clock.now += 100;
    decided(picker);
    assert.deepEqual(probing.targets(8), [], 'checked again only after 250 ms');
    clock.now += 200;
    const { signal } = decided(picker);
    assert.equal(signal, 'probe-latency');
    // Two probes per pick (prequalWhenReportedDefaults), of targets whose pool entry is older than a tenth of maxProbeAgeMs.
    assert.equal(probing.targets(8).length, 2, 'now it asks for probes');
  });

  it('ignores an unavailable endpoint that does not report, and goes back to peak EWMA when a reporting one stops', () => {
    const { set, picker, clock } = setup(3);
    set[0]!.load.reported = view(0);
    set[1]!.load.reported = view(0);
    set[2]!.available = false; // ejected, no report
    const probing = picker.probing!;
    for (const e of set) probing.result(e, { rif: 0, latencyMs: 10 });
    assert.equal(decided(picker).signal, 'probe-latency');
    set[1]!.load.reported = undefined; // its report expired (or it was replaced by a build without the reporter)
    clock.now += 250;
    assert.notEqual(decided(picker).signal, 'probe-latency');
    set[2]!.available = true;
    set[1]!.load.reported = view(0);
    picker.availabilityChanged?.(); // checked at the next pick, without waiting
    assert.notEqual(decided(picker).signal, 'probe-latency', 'the endpoint back in rotation does not report');
  });

  it('a new picker inherits the probe pool of the previous one, also through locality()', () => {
    const balancer = prequalWhenReported({ prequal: { random: seeded(9), maxReuse: 1000 } });
    const set = endpoints(3) as Reporting[];
    for (const e of set) e.load.reported = view(0);
    const first = balancer.createPicker(set);
    first.probing!.result(set[0]!, { rif: 0, latencyMs: 1 });
    assert.equal(first.probing!.poolSize, 1);
    const second = balancer.createPicker(set);
    second.probing!.inherit!(first.probing!);
    assert.equal(second.probing!.poolSize, 1);
    const local = locality(balancer, { zone: 'a' }).createPicker(set);
    local.probing!.inherit!(second.probing!);
    assert.equal(local.probing!.poolSize, 1);
    const again = balancer.createPicker(set);
    again.probing!.inherit!(local.probing!);
    assert.equal(again.probing!.poolSize, 1);
  });
});
