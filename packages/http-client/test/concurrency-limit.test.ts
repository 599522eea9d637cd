import assert from 'node:assert/strict';
import fc from 'fast-check';
import { diffInstances, leastRequest, peakEwma, roundRobin, type Balancer, type ServiceInstance } from '@proxyless/core';
import { ConcurrencyLimit } from '../src/endpoints/concurrency-limit.js';
import { EndpointSet } from '../src/endpoints/endpoint-set.js';
import type { PickHandle } from '../src/endpoints/pick-handle.js';
import { AdmissionControl } from '../src/request/admission.js';
import { resolveOptions, type ConcurrencyLimitAlgorithm } from '../src/config/options.js';
import { FakeResolver } from './helpers.js';

const ALGORITHMS: readonly ConcurrencyLimitAlgorithm[] = ['vegas', 'gradient2'];

function limit(algorithm: ConcurrencyLimitAlgorithm, initialLimit = 20, minLimit = 1, maxLimit = 200): ConcurrencyLimit {
  // A fixed "random" keeps Vegas's probe schedule deterministic (every 30 × limit × 0.75 samples).
  return new ConcurrencyLimit({ algorithm, initialLimit, minLimit, maxLimit }, () => 0.5);
}

/** A clock for the samples: 5 ms per sample, so a window closes every 10 samples at these RTTs. */
let clock = 0;

/** Feeds `n` windows (10 samples each) of `rttMs` with the endpoint fully used (in flight = limit); returns the limit after each. */
function feed(l: ConcurrencyLimit, rttMs: number, n: number, dropped = false): number[] {
  const seen: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 10; j++) l.sample(rttMs, l.limit, dropped, (clock += 5));
    seen.push(l.limit);
  }
  return seen;
}

describe('http-client: adaptive concurrency limit (algorithm)', () => {
  for (const algorithm of ALGORITHMS) {
    it(`${algorithm}: stays a whole number within [minLimit, maxLimit] whatever the samples`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 50 }),
          fc.integer({ min: 0, max: 100 }),
          fc.integer({ min: 1, max: 100 }),
          fc.array(fc.tuple(fc.double({ min: 0, max: 10_000, noNaN: true }), fc.integer({ min: 0, max: 500 }), fc.boolean()), { maxLength: 300 }),
          (min, extra, initial, samples) => {
            const max = min + extra;
            const l = limit(algorithm, initial, min, max);
            assert.ok(l.limit >= min && l.limit <= max);
            for (const [rtt, inFlight, dropped] of samples) {
              l.sample(rtt, inFlight, dropped, (clock += rtt / 4));
              assert.ok(Number.isInteger(l.limit), `limit ${l.limit}`);
              assert.ok(l.limit >= min && l.limit <= max, `limit ${l.limit} outside [${min}, ${max}]`);
            }
          },
        ),
      );
    });

    it(`${algorithm}: rises while the RTT stays at its no-load value, falls (never below min) once it rises, and rises again when it falls back`, () => {
      const l = limit(algorithm, 10, 2, 1000);
      feed(l, 10, 20); // learn the no-load RTT
      const before = l.limit;
      const rising = feed(l, 10, 40);
      assert.ok(l.limit > before, `no queue: ${before} → ${l.limit}`);
      for (let i = 1; i < rising.length; i++) assert.ok(rising[i]! >= rising[i - 1]!, `never falls at a steady no-load RTT: ${rising.join(',')}`);
      const top = l.limit;
      // The RTT triples (a queue builds at the endpoint): the limit only falls. (Over a longer run both
      // take a lasting RTT as the new normal by design: Vegas's probe, Gradient2's long-term average.)
      const falling = feed(l, 30, 20);
      for (let i = 1; i < falling.length; i++) assert.ok(falling[i]! <= falling[i - 1]!, `never rises while the RTT is high: ${falling.join(',')}`);
      assert.ok(l.limit < top, `queue: ${top} → ${l.limit}`);
      // Far worse, for long: down to the floor, never below.
      for (let i = 0; i < 3000; i++) {
        l.sample(30 + i, l.limit, false, (clock += 2 * (30 + i)));
        assert.ok(l.limit >= 2);
      }
      // The RTT falls back: the limit rises again.
      const low = l.limit;
      feed(l, 10, 200);
      assert.ok(l.limit > low, `recovered: ${low} → ${l.limit}`);
    });

    it(`${algorithm}: the limit moves once per window of samples (10 samples, at least twice the no-load RTT)`, () => {
      const l = limit(algorithm, 10, 1, 1000);
      feed(l, 10, 3);
      const before = l.limit;
      for (let i = 0; i < 9; i++) assert.equal(l.sample(10, l.limit, false, (clock += 5)), false);
      assert.equal(l.limit, before, 'nine samples: the window is still open');
      l.sample(10, l.limit, false, (clock += 5));
      assert.ok(l.limit > before, 'the tenth closes it');
    });

    it(`${algorithm}: an idle client (fewer than half the limit in flight) does not grow the limit`, () => {
      const l = limit(algorithm, 20);
      for (let i = 0; i < 500; i++) l.sample(10, 1, false, (clock += 5));
      assert.equal(l.limit, 20);
    });
  }

  it('vegas: drops (timeouts, overload answers) cut the limit step by step to minLimit', () => {
    const l = limit('vegas', 20, 3, 100);
    feed(l, 10, 5);
    const seen = feed(l, 12, 60, true);
    assert.equal(l.drops, 600);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! <= seen[i - 1]!);
    assert.equal(l.limit, 3);
  });

  it('vegas: the no-load RTT is a windowed minimum, so a backend that got slower for good is followed', () => {
    const l = limit('vegas', 10, 1, 100);
    feed(l, 10, 5);
    assert.equal(l.rttNoLoadMs, 10);
    feed(l, 50, 700); // two spans of 30 × limit × 0.75 windows
    assert.equal(l.rttNoLoadMs, 50);
    assert.ok(l.limit > 1, 'the slower RTT is the new no-load RTT: the limit is not pinned at its floor');
  });
});

describe('http-client: admission control (SRE adaptive throttling)', () => {
  it('rejects with probability max(0, (requests − K·accepts) / (requests + 1)), capped', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 500 }), fc.integer({ min: 0, max: 500 }), fc.double({ min: 1, max: 5, noNaN: true }), (requests, acceptsRaw, k) => {
        const accepts = Math.min(requests, acceptsRaw);
        // random() = 1: never rejects, so the counts are exactly what was fed.
        const a = new AdmissionControl({ k, windowMs: 10_000, minRequests: 0, maxRejectProbability: 1 }, () => 1);
        for (let i = 0; i < requests; i++) {
          assert.equal(a.admit(5), true);
          a.completed(5, i < accepts);
        }
        const expected = Math.max(0, (requests - k * accepts) / (requests + 1));
        assert.ok(Math.abs(a.probability(5) - expected) < 1e-12, `${a.probability(5)} vs ${expected}`);
        const capped = new AdmissionControl({ k, windowMs: 10_000, minRequests: 0, maxRejectProbability: 0.8 }, () => 1);
        for (let i = 0; i < requests; i++) {
          capped.admit(5);
          capped.completed(5, i < accepts);
        }
        assert.ok(Math.abs(capped.probability(5) - Math.min(0.8, expected)) < 1e-12);
      }),
    );
  });

  it('does not count attempts in flight: a burst of concurrent first requests to a healthy service is admitted', () => {
    // random() = 0: any probability above 0 rejects.
    const a = new AdmissionControl({ k: 2, windowMs: 10_000, minRequests: 20, maxRejectProbability: 0.8 }, () => 0);
    for (let i = 0; i < 200; i++) assert.equal(a.admit(1), true, `attempt ${i} of a burst, none completed yet`);
    for (let i = 0; i < 200; i++) a.completed(2, true);
    assert.equal(a.probability(2), 0);
    assert.deepEqual(a.stats(2), { requests: 200, accepts: 200, rejectProbability: 0, rejected: 0 });
  });

  it('rejects locally at that probability, counts the rejected attempts as requests, and forgets them after the window', () => {
    let r = 0;
    const draws = [0.1, 0.9];
    const a = new AdmissionControl({ k: 2, windowMs: 1_000, minRequests: 10, maxRejectProbability: 0.8 }, () => draws[r++ % 2]!);
    for (let i = 0; i < 9; i++) {
      assert.equal(a.admit(0), true, 'below minRequests nothing is rejected');
      a.completed(0, false);
    }
    assert.equal(a.probability(0), 0);
    a.admit(0);
    a.completed(0, false); // 10 requests, 0 accepts: p = 10/11, capped at 0.8
    assert.equal(a.probability(0), 0.8);
    assert.equal(a.admit(1), false, 'draw 0.1 < 0.8: rejected');
    assert.equal(a.admit(1), true, 'draw 0.9 ≥ 0.8: admitted');
    assert.equal(a.rejected, 1);
    assert.equal(a.stats(1).requests, 11, 'the rejection is counted at once, the admitted attempt when it completes');
    a.completed(1, false);
    assert.equal(a.stats(1).requests, 12);
    // The window (1 s) passes: nothing counted, nothing rejected.
    assert.equal(a.probability(1_101), 0);
    assert.equal(a.stats(1_101).requests, 0);
  });
});

function inst(id: number): ServiceInstance {
  return Object.freeze({ key: `i${id}`, id: `i${id}`, service: 'svc', address: '127.0.0.1', port: 1 + id, tags: [], meta: {}, weights: { passing: 1, warning: 1 }, health: 'passing' as const });
}

describe('http-client: concurrency limit at pick time', () => {
  const balancers: [string, () => Balancer][] = [
    ['roundRobin', () => roundRobin()],
    ['leastRequest', () => leastRequest()],
    ['peakEwma', () => peakEwma()],
  ];
  for (const [name, balancer] of balancers) {
    it(`${name}: a pick never takes an endpoint at its limit, over random arrivals and completions; all at limit is a typed empty pick`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 5 }),
          fc.constantFrom<ConcurrencyLimitAlgorithm>('vegas', 'gradient2'),
          fc.array(fc.tuple(fc.boolean(), fc.nat(), fc.integer({ min: 1, max: 200 }), fc.constantFrom('success', 'timeout', 'status', 'cancelled' as const)), { maxLength: 400 }),
          async (n, algorithm, ops) => {
            let now = 1;
            const options = resolveOptions({ service: 'svc', resolver: new FakeResolver(), logger: false, breaker: false, outlierDetection: false, concurrencyLimit: { algorithm, initialLimit: 3, minLimit: 1, maxLimit: 6 } });
            const set = new EndpointSet(options, balancer(), () => undefined, () => now);
            set.apply(diffInstances([], Array.from({ length: n }, (_, i) => inst(i))));
            const open: PickHandle[] = [];
            try {
              for (const [arrive, which, elapsed, outcome] of ops) {
                now += 1;
                if (arrive || open.length === 0) {
                  const before = new Map([...set.endpoints].map((ep) => [ep, ep.load.inFlight]));
                  const h = set.pick(undefined, now);
                  if (h.kind === 'empty') {
                    assert.equal(h.reason, 'concurrencyLimit');
                    for (const ep of set.endpoints) assert.ok(ep.load.inFlight >= ep.limit!.limit, 'an empty pick only when every endpoint is at its limit');
                  } else {
                    assert.ok(before.get(h.endpoint)! < h.endpoint.limit!.limit, `picked at ${before.get(h.endpoint)} in flight with limit ${h.endpoint.limit!.limit}`);
                    open.push(h);
                  }
                } else {
                  const [h] = open.splice(which % open.length, 1);
                  now += elapsed;
                  h!.done(outcome);
                }
              }
              for (const h of open) h.done('cancelled');
            } finally {
              await set.close(0);
            }
          },
        ),
        { numRuns: 60 },
      );
    });
  }

  it('with limits off, endpoints carry no limit and picks never fail for it', async () => {
    const set = new EndpointSet(resolveOptions({ service: 'svc', resolver: new FakeResolver(), logger: false }), roundRobin(), () => undefined);
    set.apply(diffInstances([], [inst(0)]));
    try {
      const handles = Array.from({ length: 500 }, () => set.pick(undefined, 1));
      assert.ok(handles.every((h) => h.kind === 'handle'));
      assert.equal([...set.endpoints][0]!.limit, undefined);
      for (const h of handles) if (h.kind === 'handle') h.done('success');
    } finally {
      await set.close(0);
    }
  });
});
