/**
 * Why opossum left the client (December 2026): what one opossum 9 breaker per
 * endpoint costs beside the endpoint's health state, at 10,000 endpoints —
 * heap per endpoint, timers per open breaker, listeners on the shared
 * rotation clock, and a transition's cost. opossum is no longer a
 * dependency, so install it for the run only:
 *
 *   npm i --no-save opossum@9 && node --expose-gc --conditions=proxyless-source --import tsx bench/support/opossum-cost.ts
 *
 * Configured as the client had it (breaker.ts before the change): no action
 * timeout, a shared rotation emitter (no interval of its own), no snapshots.
 */
import { EventEmitter } from 'node:events';
import { EndpointHealth } from '../../packages/http-client/src/endpoints/health.js';

interface Opossum {
  open(): void;
  close(): void;
  shutdown(): void;
}
type OpossumClass = new (action: () => Promise<never>, options: Record<string, unknown>) => Opossum;

const N = 10_000;
const breaker = { errorThresholdPercentage: 50, volumeThreshold: 20, resetTimeoutMs: 10_000, rollingWindowMs: 10_000, rollingBuckets: 10 };
const outlier = { consecutiveFailures: 5, baseEjectionTimeMs: 10_000, maxEjectionTimeMs: 300_000, maxEjectionPercent: 50, panicThresholdPercent: 50 };

async function main(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with node --expose-gc');
  let CircuitBreaker: OpossumClass;
  const opossum: string = 'opossum'; // not a dependency: resolved at run time only
  try {
    CircuitBreaker = ((await import(opossum)) as { default: OpossumClass }).default;
  } catch {
    throw new Error('opossum is not installed: npm i --no-save opossum@9 first');
  }
  const heap = (): number => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const neverCalled = (): Promise<never> => Promise.reject(new Error('unused'));
  const rotate = new EventEmitter();
  rotate.setMaxListeners(0);
  const gate = { mayEject: () => false };

  const h0 = heap();
  const healths = Array.from({ length: N }, () => new EndpointHealth({ breaker: { ...breaker, volumeThreshold: 1 }, outlier }, 0));
  for (const h of healths) h.outcome('success', h.state, 1, gate);
  const h1 = heap();
  const cbs = Array.from({ length: N }, (_, i) => new CircuitBreaker(neverCalled, {
    name: `e${i}`, timeout: false, resetTimeout: breaker.resetTimeoutMs, rollingCountTimeout: breaker.rollingWindowMs,
    rollingCountBuckets: breaker.rollingBuckets, rollingPercentilesEnabled: false, enableSnapshots: false, rotateBucketController: rotate,
  }));
  const h2 = heap();
  console.log(`heap per endpoint: its health state (state, window, detector) ${((h1 - h0) / N).toFixed(0)} B; an opossum breaker beside it +${((h2 - h1) / N).toFixed(0)} B`);
  console.log(`listeners on the shared rotation clock (each tick reaches every endpoint): ${rotate.listenerCount('rotate')}`);
  for (let i = 0; i < 1000; i++) cbs[i]!.open();
  const armed = cbs.slice(0, 1000).filter((c) => Object.getOwnPropertySymbols(c).some((k) => k.description === 'reset-timeout' && (c as unknown as Record<symbol, unknown>)[k] !== undefined)).length;
  console.log(`timers: 1,000 open opossum breakers hold ${armed} reset timers; an endpoint set holds one for any number`);
  const M = 200_000;
  let t = performance.now();
  for (let i = 0; i < M; i++) {
    const c = cbs[i % N]!;
    c.open();
    c.close();
  }
  const opossumUs = ((performance.now() - t) * 1000) / M;
  t = performance.now();
  let now = 10;
  for (let i = 0; i < M; i++) {
    const h = healths[i % N]!;
    now += 1;
    h.outcome('connect', h.state, now, gate); // ready → open
    h.due(now + 1e6); // → probing
    h.tryAcquire();
    h.outcome('success', h.state, now, gate); // → ready
  }
  const unionUs = ((performance.now() - t) * 1000) / M;
  console.log(`transitions: opossum open()+close() ${opossumUs.toFixed(2)} µs; the union's ready → open → probing → ready ${unionUs.toFixed(2)} µs`);
  for (const c of cbs) c.shutdown();
}

await main();
