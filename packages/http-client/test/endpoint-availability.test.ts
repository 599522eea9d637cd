import assert from 'node:assert/strict';
import { diffInstances, roundRobin } from '@proxyless/core';
import { EndpointSet } from '../src/endpoints/endpoint-set.js';
import type { Endpoint } from '../src/endpoints/endpoint.js';
import { isPanic } from '../src/endpoints/outlier-detection.js';
import { resolveOptions } from '../src/config/options.js';
import { FakeResolver, instance } from './helpers.js';

/** A small seeded PRNG (mulberry32): the sequence is the same on every run. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every endpoint's flag and the set's counts, recomputed from the endpoints' own state (the definition). */
function checkAgainstDefinition(set: EndpointSet, panicThresholdPercent: number, step: string): void {
  const eps = [...set.endpoints];
  const ready = eps.filter((ep) => ep.breakerState !== 'open' && !ep.outlier.ejected).length;
  const panic = isPanic(ready, eps.length, panicThresholdPercent);
  assert.equal(set.panic, panic, `${step}: panic`);
  for (const ep of eps) {
    assert.equal(ep.available, ep.breakerState !== 'open' && (panic || !ep.outlier.ejected), `${step}: ${ep.info.label} available`);
  }
  assert.equal(set.availableCount, eps.filter((ep) => ep.available).length, `${step}: available count`);
}

describe('http-client: endpoint availability (kept per endpoint, recounted only on panic changes)', () => {
  it('matches the definition after every breaker flip, ejection, restore and half-open, in and out of panic (seeded random walk)', async () => {
    const panicThresholdPercent = 50;
    const options = resolveOptions({
      service: 'svc',
      resolver: new FakeResolver(),
      logger: false,
      breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeoutMs: 15, rollingWindowMs: 1000, rollingBuckets: 10 },
      outlierDetection: { consecutiveFailures: 2, baseEjectionTimeMs: 10, maxEjectionTimeMs: 30, maxEjectionPercent: 100, panicThresholdPercent },
    });
    const set = new EndpointSet(options, roundRobin(), () => undefined);
    const random = prng(20_261_124);
    let panics = 0;
    set.apply(diffInstances([], [1, 2, 3, 4, 5, 6].map((i) => instance(40_000 + i))));
    try {
      checkAgainstDefinition(set, panicThresholdPercent, 'start');
      let wasPanic = set.panic;
      for (let step = 0; step < 600; step++) {
        const eps: Endpoint[] = [...set.endpoints];
        const ep = eps[Math.floor(random() * eps.length)]!;
        const now = performance.now();
        const outcome = random() < 0.55 ? 'connect' : 'success';
        // What a pick handle's done() tells an endpoint's observers.
        ep.load.started(now);
        for (const o of ep.observers) o.ended(outcome, 1, now, now);
        checkAgainstDefinition(set, panicThresholdPercent, `step ${step} (${outcome} on ${ep.info.label})`);
        if (set.panic !== wasPanic) panics++;
        wasPanic = set.panic;
        // Let restore and half-open timers run now and then.
        if (step % 20 === 19) {
          await new Promise((r) => setTimeout(r, 12));
          checkAgainstDefinition(set, panicThresholdPercent, `after timers at step ${step}`);
        }
        if (step === 300) {
          // A membership change in the middle: one leaves, one joins.
          set.apply(diffInstances([...set.endpoints].map((ep) => ep.instance), [2, 3, 4, 5, 6, 7].map((i) => instance(40_000 + i))));
          checkAgainstDefinition(set, panicThresholdPercent, 'after a membership change');
        }
      }
      assert.ok(panics >= 2, `the walk entered and left panic (${panics} changes)`);
    } finally {
      await set.close(0);
    }
  });
});
