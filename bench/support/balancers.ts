/**
 * Bench helper: the balancers the testbed, fairness and failure-scenario benches compare, one
 * line each, keyed by the name the report shows. An entry returns the
 * balancer to pass to `createClient` (`undefined`: the client's default), or
 * a string saying why it is skipped (a balancer not exported by this build),
 * which the bench prints: never a silent skip.
 */
import type { Balancer } from '@proxyless/core';
import type { Build } from './builds.js';
import { EXPERIMENTS } from './experimental-balancers.js';

type Entry = (build: Build) => Balancer | undefined | string;

/** A balancer factory exported by core under `name`, or the reason it cannot be used. */
function exported(build: Build, name: string, options: Record<string, unknown> = {}): Balancer | string {
  const factory = (build.core as unknown as Record<string, unknown>)[name];
  if (typeof factory !== 'function') return `skipped: @proxyless/core of this build exports no ${name}() (not landed yet)`;
  return (factory as (o: Record<string, unknown>) => Balancer)(options);
}

/** `make()`, or the reason this build refuses it (e.g. an option it does not know yet). */
function refused(make: () => Balancer): Balancer | string {
  try {
    return make();
  } catch (e) {
    return `skipped: this build refuses it (${(e as Error).message})`;
  }
}

export const BALANCERS: Record<string, Entry> = {
  'round robin': (b) => b.core.roundRobin(),
  'P2C least-request': (b) => b.core.leastRequest(),
  'peak EWMA': (b) => b.core.peakEwma(),
  'peak EWMA + reported load': (b) => refused(() => b.core.peakEwma({ reportedLoad: true })),
  'load-weighted WRR': (b) => exported(b, 'loadWeightedRoundRobin'),
  'Prequal probing': (b) => exported(b, 'prequal'),
  'Prequal when reported': (b) => exported(b, 'prequalWhenReported'),
  'client default': () => undefined,
};

/** A balancer to run: `make()` builds a fresh one per client (`undefined`: the client's default). */
export interface BalancerChoice {
  name: string;
  make: () => Balancer | undefined;
}

/** The names to run: every entry, or `names` (a comma-separated subset, e.g. `BENCH_BALANCERS`), each checked. */
export function balancerNames(names?: string): string[] {
  const wanted = names === undefined || names === '' ? Object.keys(BALANCERS) : names.split(',').map((n) => n.trim());
  for (const name of wanted) {
    if (BALANCERS[name] === undefined && EXPERIMENTS[name] === undefined) {
      throw new Error(`unknown balancer ${JSON.stringify(name)}: one of ${[...Object.keys(BALANCERS), ...Object.keys(EXPERIMENTS)].join(', ')}`);
    }
  }
  return wanted;
}

/** The balancer `name` in `build` (`undefined`: the client's default), or why it is skipped. */
export function balancerFor(build: Build, name: string): Balancer | undefined | string {
  const experiment = EXPERIMENTS[name];
  if (experiment !== undefined) return experiment(build);
  const entry = BALANCERS[name];
  if (entry === undefined) throw new Error(`unknown balancer ${JSON.stringify(name)}: one of ${Object.keys(BALANCERS).join(', ')}`);
  return entry(build);
}

/** The balancers to run (`names`: a comma-separated subset, e.g. from an env var), with the skipped ones' reasons printed. */
export function selectBalancers(build: Build, names?: string): BalancerChoice[] {
  const chosen: BalancerChoice[] = [];
  for (const name of balancerNames(names)) {
    const experiment = EXPERIMENTS[name];
    if (experiment !== undefined) {
      chosen.push({ name, make: () => experiment(build) });
      continue;
    }
    const entry = BALANCERS[name]!;
    const balancer = entry(build);
    if (typeof balancer === 'string') {
      console.log(`- ${name}: ${balancer}`);
      continue;
    }
    chosen.push({ name, make: () => entry(build) as Balancer | undefined });
  }
  return chosen;
}
