/**
 * Bench helper: the one place pickers.bench.ts reaches into the client's
 * internals — its endpoint set, to time one attempt's bookkeeping and one
 * availability change at 10 000 endpoints without sockets. The client's
 * public surface cannot do that: an availability change there takes real
 * failures over real connections, whose cost drowns the change itself.
 *
 * One adapter per internal layout of `@proxyless/http-client`'s build; the
 * first whose `matches()` holds for a build's `dist/` is used, and a build no
 * adapter matches is reported "n/a (no adapter)" instead of failing. When the
 * endpoint set's internals change, add an adapter for the new layout here
 * (keep the old ones: BEFORE builds still use them); nothing else in the
 * bench changes. Each adapter must:
 * - `attempt()`: pick through the set as a request's attempt does and report
 *   the attempt ended (success) — the per-attempt bookkeeping;
 * - `prepare(i)` (untimed) then `open(i)` (timed): endpoint i becomes
 *   unavailable as when its breaker opens — the decision, the set's counts
 *   and events, the picker told;
 * - `restore(i)` (untimed, may wait): endpoint i back in service.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Balancer, ServiceInstance } from '@proxyless/core';
import type { Build } from './builds.js';

export interface EndpointSetProbe {
  attempt(): void;
  prepare(i: number): void;
  open(i: number): void;
  available(i: number): boolean;
  restore(i: number): Promise<void>;
  close(): Promise<void>;
}

interface Adapter {
  /** The layout, as the report names it. */
  name: string;
  matches(dist: string): boolean;
  open(build: Build, dist: string, balancer: Balancer, instances: readonly ServiceInstance[]): Promise<EndpointSetProbe>;
}

/**
 * Would one more failure trip a window holding `calls` calls and `failures` failures (opossum's rule,
 * which both layouts apply)? The attempts `attempt()` timed leave successes in the windows, so
 * `prepare` adds failures until the next one trips, rather than a fixed count.
 */
const nextFailureTrips = (calls: number, failures: number, volume: number, thresholdPercent: number): boolean =>
  calls + 1 >= volume && ((failures + 1) * 100) / (calls + 1) > thresholdPercent;

const importFrom = async <T>(file: string): Promise<T> => (await import(pathToFileURL(file).href)) as T;

/**
 * `EndpointSet` (`apply`, `pick(context, nowMs)` → a handle with
 * `done(outcome)`), each endpoint's `breaker` (`EndpointBreaker`:
 * `failure()`, `success()`, `counts`, `state`) opening on opossum's rule and
 * reporting to the set, and `resolveOptions`; `files` says where each lives.
 */
const endpointSetWithBreakers = (name: string, files: { set: string; options: string }): Adapter => ({
  name,
  matches: (dist) => existsSync(join(dist, files.set)) && existsSync(join(dist, files.options)),
  async open(build, dist, balancer, instances) {
    interface Ep {
      available: boolean;
      breaker: { failure(): void; success(): void; counts: { fires: number; failures: number }; state: string } | undefined;
    }
    interface EpSet {
      /** Older builds: the whole list; from one diff per discovery change on: the watch's diff (`InstanceDiff`). */
      apply(change: readonly ServiceInstance[] | { added: readonly ServiceInstance[]; removed: readonly ServiceInstance[]; updated: readonly ServiceInstance[] }): void;
      pick(context: undefined, nowMs: number): { endpoint: Ep; done(outcome: 'success'): void } | undefined;
      endpoints: IterableIterator<Ep>;
      close(graceMs: number): Promise<void>;
    }
    const { EndpointSet } = await importFrom<{ EndpointSet: new (o: unknown, b: Balancer, e: unknown) => EpSet }>(join(dist, files.set));
    const { resolveOptions } = await importFrom<{ resolveOptions: (o: unknown) => { breaker: { volumeThreshold: number; errorThresholdPercentage: number } | false } }>(join(dist, files.options));
    const resolver = new build.core.StaticResolver({ services: { svc: [] } });
    // Defaults, but a 1 ms breaker reset so that restore() (open → half-open → closed) is quick.
    const options = resolveOptions({ service: 'svc', resolver, breaker: { resetTimeoutMs: 1 } });
    if (options.breaker === false) throw new Error('breakers are off');
    const volume = options.breaker.volumeThreshold;
    const threshold = options.breaker.errorThresholdPercentage;
    // No listeners: the client's events cost what their subscribers do. Builds from 922299c on take an emit
    // function, older ones an emitter (the client): this one value is both.
    const emit = Object.assign(() => undefined, { emit: () => false });
    const set = new EndpointSet(options, balancer, emit);
    try {
      set.apply({ added: instances, removed: [], updated: [] });
    } catch (error) {
      // An older build's apply() takes the whole list (and throws "not iterable" on a diff, before any change).
      if (!(error instanceof TypeError)) throw error;
      set.apply(instances);
    }
    const eps = [...set.endpoints];
    const breaker = (i: number): NonNullable<Ep['breaker']> => eps[i % eps.length]!.breaker!;
    return {
      attempt() {
        set.pick(undefined, performance.now())?.done('success');
      },
      prepare(i) {
        const b = breaker(i);
        while (!nextFailureTrips(b.counts.fires, b.counts.failures, volume, threshold)) b.failure();
      },
      open(i) {
        breaker(i).failure();
      },
      available: (i) => eps[i % eps.length]!.available,
      async restore(i) {
        const b = breaker(i);
        const deadline = performance.now() + 1_000;
        while (b.state === 'open' && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
        b.success();
        if (b.state !== 'closed') throw new Error(`endpoint ${i}'s breaker did not close (${b.state})`);
      },
      async close() {
        await set.close(0);
        await resolver.close();
      },
    };
  },
});

/**
 * `EndpointSet` with one health state per endpoint (`endpoints/health.js`):
 * `pick()` returns a handle or a typed empty result; outcomes reach an
 * endpoint's health through `set.attemptEnded(ep, outcome, startedIn, now)`
 * (what a handle's `done` calls); due states end on `set.runDue(now)`.
 * Outlier detection off, so the failures that fill the window only trip the breaker.
 */
const endpointSetWithHealth: Adapter = {
  name: 'src/endpoints/ (EndpointSet + EndpointHealth)',
  matches: (dist) => existsSync(join(dist, 'endpoints/health.js')),
  async open(build, dist, balancer, instances) {
    interface Ep {
      available: boolean;
      health: { state: { kind: string }; window: { counts(nowMs: number): { calls: number; failures: number } } | undefined };
    }
    interface EpSet {
      apply(change: { added: readonly ServiceInstance[]; removed: readonly ServiceInstance[]; updated: readonly ServiceInstance[] }): void;
      pick(context: undefined, nowMs: number): { kind: 'handle'; done(outcome: 'success'): void } | { kind: 'empty' };
      attemptEnded(ep: Ep, outcome: 'success' | 'connect', startedIn: unknown, nowMs: number): unknown;
      runDue(nowMs: number): void;
      endpoints: IterableIterator<Ep>;
      close(graceMs: number): Promise<void>;
    }
    const { EndpointSet } = await importFrom<{ EndpointSet: new (o: unknown, b: Balancer, e: unknown) => EpSet }>(join(dist, 'endpoints/endpoint-set.js'));
    const { resolveOptions } = await importFrom<{ resolveOptions: (o: unknown) => { breaker: { volumeThreshold: number; errorThresholdPercentage: number } | false } }>(join(dist, 'config/options.js'));
    const resolver = new build.core.StaticResolver({ services: { svc: [] } });
    const options = resolveOptions({ service: 'svc', resolver, breaker: { resetTimeoutMs: 1 }, outlierDetection: false });
    if (options.breaker === false) throw new Error('breakers are off');
    const volume = options.breaker.volumeThreshold;
    const threshold = options.breaker.errorThresholdPercentage;
    const set = new EndpointSet(options, balancer, () => undefined);
    set.apply({ added: instances, removed: [], updated: [] }); // the watch's diff (this layout came after it)
    const eps = [...set.endpoints];
    const ep = (i: number): Ep => eps[i % eps.length]!;
    const end = (e: Ep, outcome: 'success' | 'connect'): unknown => set.attemptEnded(e, outcome, e.health.state, performance.now());
    return {
      attempt() {
        const r = set.pick(undefined, performance.now());
        if (r.kind === 'handle') r.done('success');
      },
      prepare(i) {
        const e = ep(i);
        const window = e.health.window;
        if (window === undefined) return;
        for (let c = window.counts(performance.now()); !nextFailureTrips(c.calls, c.failures, volume, threshold); c = window.counts(performance.now())) end(e, 'connect');
      },
      open(i) {
        end(ep(i), 'connect');
      },
      available: (i) => ep(i).available,
      async restore(i) {
        const e = ep(i);
        await new Promise((r) => setTimeout(r, 2));
        set.runDue(performance.now()); // open → probing (the set's timer may not have run yet)
        end(e, 'success'); // the trial: probing → ready
        if (e.health.state.kind !== 'ready') throw new Error(`endpoint ${i} is not ready again (${e.health.state.kind})`);
      },
      async close() {
        await set.close(0);
        await resolver.close();
      },
    };
  },
};

const adapters: Adapter[] = [
  // From the health-state change on (endpoints/health.js).
  endpointSetWithHealth,
  // 1472cf1 on: the same classes in folders by role.
  endpointSetWithBreakers('src/endpoints/ (EndpointSet + EndpointBreaker)', { set: 'endpoints/endpoint-set.js', options: 'config/options.js' }),
  // Up to 23a33ce: one flat src/ folder.
  endpointSetWithBreakers('flat src/ (EndpointSet + EndpointBreaker)', { set: 'endpoint-set.js', options: 'options.js' }),
];

/** A probe of `build`'s endpoint set over `instances`, or why there is none. */
export async function openEndpointSet(build: Build, balancer: Balancer, instances: readonly ServiceInstance[]): Promise<{ probe: EndpointSetProbe; layout: string } | { none: string }> {
  const dist = join(build.dir, 'packages', 'http-client', 'dist');
  const adapter = adapters.find((a) => a.matches(dist));
  if (adapter === undefined) return { none: `n/a: no adapter for the layout of ${dist}: add one in bench/support/endpoint-set-adapter.ts` };
  let probe: EndpointSetProbe | undefined;
  try {
    probe = await adapter.open(build, dist, balancer, instances);
    // Self-check: the layout matched by its files, but do its classes still behave as the adapter expects?
    probe.prepare(0);
    probe.open(0);
    probe.attempt();
    if (probe.available(0)) throw new Error('an endpoint whose breaker opened is still available');
    await probe.restore(0);
    if (!probe.available(0)) throw new Error('an endpoint whose breaker closed again is not available');
    return { probe, layout: adapter.name };
  } catch (e) {
    await probe?.close().catch(() => undefined);
    return { none: `n/a: the adapter '${adapter.name}' does not fit ${dist} (${e instanceof Error ? e.message : String(e)}): update bench/support/endpoint-set-adapter.ts` };
  }
}
