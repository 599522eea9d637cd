import assert from 'node:assert/strict';
import fc from 'fast-check';
import { diffInstances, roundRobin, type ServiceInstance } from '@proxyless/core';
import { EndpointSet } from '../src/endpoints/endpoint-set.js';
import type { Endpoint } from '../src/endpoints/endpoint.js';
import { isPanic, type EndpointHealthState } from '../src/endpoints/health.js';
import type { PickHandle } from '../src/endpoints/pick-handle.js';
import { resolveOptions } from '../src/config/options.js';
import { FakeResolver } from './helpers.js';

/** An instance that is never connected to (its pool is created and closed unused). */
function inst(id: number, address = '127.0.0.1'): ServiceInstance {
  return Object.freeze({ key: `node/web-${id}`, id: `web-${id}`, service: 'svc', address, port: 40_000 + id, tags: [], meta: {}, weights: { passing: 1, warning: 1 }, health: 'passing' as const });
}

type Step =
  | { kind: 'pick' }
  | { kind: 'end'; which: number; outcome: 'success' | 'connect' | 'cancelled' }
  | { kind: 'time'; dtMs: number }
  | { kind: 'add' }
  | { kind: 'remove'; which: number }
  | { kind: 'readdress'; which: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'pick' as const }) },
  {
    weight: 8,
    arbitrary: fc.record({ kind: fc.constant('end' as const), which: fc.nat(), outcome: fc.constantFrom('success' as const, 'connect' as const, 'connect' as const, 'cancelled' as const) }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('time' as const), dtMs: fc.integer({ min: 0, max: 40 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'add' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), which: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('readdress' as const), which: fc.nat() }) },
);

const LIVE: readonly EndpointHealthState[] = ['ready', 'open', 'probing', 'ejected'];

/** The definitions, computed from scratch from the endpoints' states, against the set's counts and derived values. */
function checkAgainstDefinition(set: EndpointSet, panicThresholdPercent: number, tally: Record<string, number>, what: string): void {
  const eps = [...set.endpoints];
  const count = { ready: 0, open: 0, probing: 0, ejected: 0 };
  for (const ep of eps) {
    const k = ep.health.state.kind;
    assert.notEqual(k, 'removed', `${what}: a removed endpoint is still in the set`);
    if (k !== 'removed') count[k]++;
  }
  assert.deepEqual({ ...set.counts }, count, `${what}: per-state counts`);
  for (const k of LIVE) assert.equal(tally[k] ?? 0, count[k], `${what}: the transition reports add up to the ${k} count (each reported once)`);
  const panic = isPanic(count.ready + count.probing, eps.length, panicThresholdPercent);
  assert.equal(set.panic, panic, `${what}: panic`);
  for (const ep of eps) {
    const k = ep.health.state.kind;
    assert.equal(ep.available, k === 'ready' || k === 'probing' || (panic && k === 'ejected'), `${what}: ${ep.info.label} (${k}) available`);
  }
  assert.equal(set.availableCount, eps.filter((ep) => ep.available).length, `${what}: available count`);
  const reason = eps.some((ep) => ep.health.state.kind === 'open' || ep.health.state.kind === 'probing') ? 'circuitOpen' : eps.some((ep) => ep.health.state.kind === 'ejected') ? 'ejected' : 'noEndpoints';
  assert.equal(set.emptyReason(), reason, `${what}: empty-pick reason`);
}

/** Could a pick take this endpoint now (available, and for a probing one, its one trial free)? */
function pickable(ep: Endpoint): boolean {
  const s = ep.health.state;
  if (!ep.available) return false;
  return s.kind !== 'probing' || !s.trialInFlight;
}

describe('http-client: endpoint health and availability (property: seeded random walks over a real EndpointSet)', () => {
  it('keeps per-state counts, availability, panic and the empty-pick reason equal to their definitions after every outcome, time step, membership change and panic flip; picks never choose an unavailable endpoint and give at most one trial per probing endpoint', async () => {
    const panicThresholdPercent = 50;
    let sawPanic = 0;
    let sawStates = new Set<string>();
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 50, maxLength: 300 }), fc.constantFrom(100, 50), fc.boolean(), async (steps, maxEjectionPercent, breakerOn) => {
        let now = 1_000;
        const options = resolveOptions({
          service: 'svc',
          resolver: new FakeResolver(),
          logger: false,
          breaker: breakerOn ? { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeoutMs: 15, rollingWindowMs: 100, rollingBuckets: 10 } : false,
          outlierDetection: { consecutiveFailures: 2, baseEjectionTimeMs: 10, maxEjectionTimeMs: 30, maxEjectionPercent, panicThresholdPercent },
        });
        // An independent tally of the states, from the reports alone: endpointAdded and the transition listener.
        const tally: Record<string, number> = {};
        const set = new EndpointSet(options, roundRobin(), (event, ..._args) => {
          if (event === 'endpointAdded') tally.ready = (tally.ready ?? 0) + 1;
        }, () => now);
        set.onTransition((_ep, from, to) => {
          tally[from.kind] = (tally[from.kind] ?? 0) - 1;
          tally[to.kind] = (tally[to.kind] ?? 0) + 1;
          sawStates.add(to.kind);
        });
        let nextId = 0;
        let members = [inst(nextId++), inst(nextId++), inst(nextId++), inst(nextId++)];
        const open: { h: PickHandle; ep: Endpoint }[] = [];
        // The set takes the watch's diff of each change.
        let applied: ServiceInstance[] = [];
        const apply = (next: ServiceInstance[]): void => {
          set.apply(diffInstances(applied, next));
          applied = next;
        };
        try {
          apply(members);
          checkAgainstDefinition(set, panicThresholdPercent, tally, 'start');
          for (const [i, s] of steps.entries()) {
            const what = `step ${i} (${JSON.stringify(s)})`;
            switch (s.kind) {
              case 'pick': {
                const could = [...set.endpoints].filter((ep) => pickable(ep));
                const r = set.pick(undefined, now);
                if (r.kind === 'empty') {
                  assert.deepEqual(could, [], `${what}: empty although ${could.map((e) => e.info.label).join(', ')} could be picked`);
                  assert.equal(r.reason, set.emptyReason());
                } else {
                  assert.ok(could.includes(r.endpoint), `${what}: picked ${r.endpoint.info.label} (${r.endpoint.health.state.kind}), not pickable`);
                  open.push({ h: r, ep: r.endpoint });
                }
                break;
              }
              case 'end': {
                if (open.length === 0) break;
                const [o] = open.splice(s.which % open.length, 1);
                o!.h.done(s.outcome);
                break;
              }
              case 'time':
                now += s.dtMs;
                set.runDue(now);
                break;
              case 'add':
                members = [...members, inst(nextId++)];
                apply(members);
                break;
              case 'remove':
                if (members.length === 0) break;
                members = members.filter((_m, j) => j !== s.which % members.length);
                apply(members);
                break;
              case 'readdress': {
                if (members.length === 0) break;
                const j = s.which % members.length;
                const m = members[j]!;
                members = members.map((x, k) => (k === j ? Object.freeze({ ...m, address: m.address === '127.0.0.1' ? '127.0.0.2' : '127.0.0.1' }) : x));
                apply(members);
                break;
              }
            }
            checkAgainstDefinition(set, panicThresholdPercent, tally, what);
            // At most one trial in flight per probing endpoint: the open handles picked since it began probing (no pick reaches it before: it was open).
            for (const ep of set.endpoints) {
              const st = ep.health.state;
              if (st.kind !== 'probing') continue;
              const trials = open.filter((o) => o.ep === ep && o.h.startedAt >= st.since).length;
              assert.ok(trials <= 1, `${what}: ${trials} trials in flight on ${ep.info.label}`);
              assert.equal(st.trialInFlight, trials === 1, `${what}: trial flag of ${ep.info.label}`);
            }
            if (set.panic) sawPanic++;
          }
        } finally {
          for (const o of open) o.h.done('cancelled');
          await set.close(0);
        }
      }),
      { seed: 20_261_205, numRuns: 60 },
    );
    assert.ok(sawPanic > 0, 'the walks reached panic');
    for (const k of ['open', 'probing', 'ejected', 'ready', 'removed']) assert.ok(sawStates.has(k), `the walks reached ${k}`);
    sawStates = new Set();
  });
});

describe('http-client: due times (one timer per endpoint set)', () => {
  it('arms one Node timer for any number of open breakers and ejections, at the earliest due time, and ends each when due', async () => {
    let now = 1_000;
    const options = resolveOptions({
      service: 'svc',
      resolver: new FakeResolver(),
      logger: false,
      breaker: { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeoutMs: 50, rollingWindowMs: 1000, rollingBuckets: 10 },
      outlierDetection: { consecutiveFailures: 1, baseEjectionTimeMs: 80, maxEjectionPercent: 100, panicThresholdPercent: 0 },
    });
    const set = new EndpointSet(options, roundRobin(), () => undefined, () => now);
    set.apply(diffInstances([], Array.from({ length: 100 }, (_, i) => inst(i))));
    const realSetTimeout = globalThis.setTimeout;
    let armed = 0;
    globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
      armed++;
      return realSetTimeout(...args);
    }) as typeof setTimeout;
    try {
      for (const ep of set.endpoints) {
        now++;
        set.attemptEnded(ep, 'connect', ep.health.state, now); // the breaker wins the tie: open for 50 ms
      }
    } finally {
      globalThis.setTimeout = realSetTimeout;
    }
    assert.equal(set.counts.open, 100);
    assert.equal(armed, 1, 'one timer for 100 open breakers (each later than the first)');
    now = 1_100; // opened at 1 001…1 100, due at 1 051…1 150
    set.runDue(now);
    assert.deepEqual({ ...set.counts }, { ready: 0, open: 50, probing: 50, ejected: 0 }, 'the ones due by now, and only those');
    await set.close(0);
  });
});
