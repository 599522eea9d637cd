/**
 * Helpers shared by the balancer implementations: option validation and
 * allocation-free candidate selection honouring `PickContext.exclude`.
 * @internal
 * @module
 */
import type { BalancerEndpoint, Picker, PickerProbing, ProbeResult, ProbeSettings } from './balancer.js';
import { InvalidOptionError } from './errors.js';

/** A source of uniform numbers in [0, 1), like `Math.random`. */
export type RandomSource = () => number;

/** Validates an optional random source; returns `Math.random` when absent. @internal */
export function checkRandom(option: string, value: unknown): RandomSource {
  if (value === undefined) return Math.random;
  if (typeof value !== 'function') throw new InvalidOptionError(option, value, 'must be a function returning a number in [0, 1)');
  return value as RandomSource;
}

/** Validates an optional clock; returns `Date.now` when absent. @internal */
export function checkClock(option: string, value: unknown): () => number {
  if (value === undefined) return Date.now;
  if (typeof value !== 'function') throw new InvalidOptionError(option, value, 'must be a function returning epoch milliseconds');
  return value as () => number;
}

/** The balancer factories of this package, and the names people give their strategies. */
const factories = ['roundRobin', 'random', 'leastRequest', 'peakEwma', 'weightedRoundRobin', 'loadWeightedRoundRobin', 'consistentHash', 'prequal'] as const;
const wrappers = new Set(['locality', 'slowStart']);
const aliases: Readonly<Record<string, (typeof factories)[number]>> = {
  rr: 'roundRobin', roundrobin: 'roundRobin', p2c: 'leastRequest', leastrequest: 'leastRequest', leastconn: 'leastRequest',
  leastconnections: 'leastRequest', ewma: 'peakEwma', peakewma: 'peakEwma', wrr: 'weightedRoundRobin', weighted: 'weightedRoundRobin',
  weightedroundrobin: 'weightedRoundRobin', hash: 'consistentHash', ringhash: 'consistentHash', maglev: 'consistentHash',
  consistenthash: 'consistentHash', consistenthashing: 'consistentHash', random: 'random',
  loadweightedroundrobin: 'loadWeightedRoundRobin', loadweighted: 'loadWeightedRoundRobin', orca: 'loadWeightedRoundRobin',
  clientsideweightedroundrobin: 'loadWeightedRoundRobin', weightedroundrobinorca: 'loadWeightedRoundRobin',
  prequal: 'prequal', probing: 'prequal',
};

/**
 * Validates a balancer option. A strategy named as a string (`'round-robin'`)
 * or a factory passed uncalled (`roundRobin`) is the usual first mistake: the
 * error names the call to write instead.
 * @throws {@link InvalidOptionError} naming the option and the fix.
 * @internal
 */
export function checkBalancer(option: string, value: unknown): void {
  if (typeof value === 'object' && value !== null && typeof (value as { createPicker?: unknown }).createPicker === 'function') return;
  if (typeof value === 'function') {
    const name = value.name;
    const call = wrappers.has(name) ? `${name}(inner, …)` : `${name || 'the factory'}()`;
    throw new InvalidOptionError(option, `[function ${name || 'anonymous'}]`, `is a balancer factory, not a balancer: call it, e.g. ${option}: ${call}`);
  }
  if (typeof value === 'string') {
    const key = value.toLowerCase().replace(/[^a-z0-9]/g, '');
    const factory = aliases[key];
    const hint = factory !== undefined
      ? `use ${option}: ${factory}() (import { ${factory} } from '@proxyless/core')`
      : `strategies are values, not names: use one of ${factories.map((f) => `${f}()`).join(', ')} from '@proxyless/core'`;
    throw new InvalidOptionError(option, value, `is a name, not a balancer: ${hint}`);
  }
  throw new InvalidOptionError(option, value, `must be a Balancer (an object with createPicker()), e.g. ${option}: roundRobin() from '@proxyless/core'`);
}

/** Uniform index in [0, n), clamped so a misbehaving random source cannot go out of range. @internal */
export function randomIndex(random: RandomSource, n: number): number {
  const i = Math.floor(random() * n);
  return i >= n ? n - 1 : i < 0 ? 0 : i;
}

/**
 * The first endpoint at or after `start` (cyclically) that is available
 * (`available !== false`), not in `exclude` and not `avoid`, or -1 when there
 * is none. O(n) worst case, no allocation.
 * @internal
 */
export function nextAllowed(
  endpoints: readonly BalancerEndpoint[],
  start: number,
  exclude: ReadonlySet<BalancerEndpoint> | undefined,
  avoid = -1,
): number {
  const n = endpoints.length;
  for (let k = 0, i = start; k < n; k++, i++) {
    if (i === n) i = 0;
    const e = endpoints[i] as BalancerEndpoint;
    if (i !== avoid && e.available !== false && (exclude === undefined || !exclude.has(e))) return i;
  }
  return -1;
}

/** True when a context carries a non-empty exclude set. @internal */
export function hasExclude(exclude: ReadonlySet<BalancerEndpoint> | undefined): exclude is ReadonlySet<BalancerEndpoint> {
  return exclude !== undefined && exclude.size > 0;
}

/** Random draws before {@link randomAllowed} walks: with half the set unavailable, 4 misses in a row happen 1 time in 16. */
const REDRAWS = 4;

/**
 * A uniformly random index whose endpoint is available, not excluded and
 * not `avoid`, drawn from `first` (the caller's first draw): a few redraws
 * keep the choice unbiased while most endpoints are usable, then a walk
 * from the last draw bounds the work. -1 when there is none.
 * @internal
 */
export function randomAllowed(
  endpoints: readonly BalancerEndpoint[],
  random: RandomSource,
  first: number,
  exclude: ReadonlySet<BalancerEndpoint> | undefined,
  avoid = -1,
): number {
  const n = endpoints.length;
  let i = first;
  for (let k = 0; k < REDRAWS; k++) {
    const e = endpoints[i] as BalancerEndpoint;
    if (i !== avoid && e.available !== false && (exclude === undefined || !exclude.has(e))) return i;
    i = randomIndex(random, n);
  }
  return nextAllowed(endpoints, i, exclude, avoid);
}

/**
 * A random available endpoint, preferring those not in `exclude`
 * (when every available one is excluded, an excluded one); `undefined`
 * when none is available. For strategies without a better rule.
 * @internal
 */
export function pickRandom<E extends BalancerEndpoint>(
  endpoints: readonly E[],
  random: RandomSource,
  exclude: ReadonlySet<BalancerEndpoint> | undefined,
): E | undefined {
  const n = endpoints.length;
  if (n === 0) return undefined;
  const first = randomIndex(random, n);
  const e = endpoints[first] as E;
  if (e.available !== false && !hasExclude(exclude)) return e; // the hot path: one draw
  const excluding = hasExclude(exclude) ? exclude : undefined;
  let i = randomAllowed(endpoints, random, first, excluding);
  if (i < 0 && excluding !== undefined) i = nextAllowed(endpoints, first, undefined);
  return i < 0 ? undefined : endpoints[i];
}

/** A picker over the empty set. @internal */
export function emptyPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
  return {
    endpoints,
    pick(): E | undefined {
      return undefined;
    },
  };
}

/**
 * Power-of-N-choices over the available endpoints with `better(a, b)`
 * deciding whether `a` is strictly better than `b`. When every endpoint is
 * usable the first sample is `floor(r₁·n)`, the second
 * `(first + 1 + floor(r₂·(n−1))) mod n` (always distinct), further samples
 * (choices > 2) `floor(rₖ·n)`; ties keep the earlier sample. An unavailable
 * or excluded sample is drawn again ({@link randomAllowed}); when every
 * available endpoint is excluded, a random available one is returned.
 * Allocation-free.
 * @internal
 */
export function pickOfChoices<E extends BalancerEndpoint>(
  endpoints: readonly E[],
  random: RandomSource,
  choices: number,
  exclude: ReadonlySet<BalancerEndpoint> | undefined,
  better: (a: E, b: E) => boolean,
  candidates?: BalancerEndpoint[],
): E | undefined {
  const n = endpoints.length;
  if (n === 0) return undefined;
  const excluding = hasExclude(exclude) ? exclude : undefined;
  let first = randomIndex(random, n);
  const e = endpoints[first] as E;
  if (e.available === false || (excluding !== undefined && excluding.has(e))) {
    first = randomAllowed(endpoints, random, first, excluding);
    // Nothing usable: any available endpoint (every one was tried), or none at all.
    if (first < 0) return excluding === undefined ? undefined : pickRandom(endpoints, random, undefined);
  }
  let best = endpoints[first] as E;
  if (n === 1) {
    candidates?.push(best);
    return best;
  }
  let second = first + 1 + randomIndex(random, n - 1);
  if (second >= n) second -= n;
  const s = endpoints[second] as E;
  if (s.available === false || (excluding !== undefined && excluding.has(s))) {
    second = randomAllowed(endpoints, random, second, excluding, first);
    if (second < 0) {
      candidates?.push(best);
      return best;
    }
  }
  const other = endpoints[second] as E;
  candidates?.push(best, other);
  if (better(other, best)) best = other;
  for (let k = 2; k < choices; k++) {
    const i = randomAllowed(endpoints, random, randomIndex(random, n), excluding);
    if (i < 0) break;
    const candidate = endpoints[i] as E;
    candidates?.push(candidate);
    if (better(candidate, best)) best = candidate;
  }
  return best;
}

/**
 * The probing side of a wrapper over several inner pickers (`locality()`'s
 * tiers): targets come from each part in turn (the part that picks is the one
 * that owes probes), answers go to every part (each ignores endpoints it does
 * not hold), and `inherit` reaches every part.
 * @internal
 */
export class ProbingGroup<E extends BalancerEndpoint> implements PickerProbing<E> {
  readonly parts: readonly PickerProbing<E>[];

  constructor(parts: readonly PickerProbing<E>[]) {
    this.parts = parts;
  }

  get settings(): ProbeSettings {
    return (this.parts[0] as PickerProbing<E>).settings;
  }

  /** The largest part's pool (every part hears every answer, so the widest one holds the most). */
  get poolSize(): number {
    let size = 0;
    for (const p of this.parts) size = Math.max(size, p.poolSize);
    return size;
  }

  targets(max: number): E[] {
    const out: E[] = [];
    for (const p of this.parts) {
      if (out.length >= max) break;
      for (const e of p.targets(max - out.length)) if (!out.includes(e)) out.push(e);
    }
    return out;
  }

  result(endpoint: E, result: ProbeResult | undefined): void {
    for (const p of this.parts) p.result(endpoint, result);
  }

  failed(endpoint: E): void {
    for (const p of this.parts) p.failed(endpoint);
  }

  inherit(previous: PickerProbing<E>): void {
    for (const p of this.parts) p.inherit?.(previous);
  }
}

/**
 * The probing side of a wrapper over `pickers`: undefined when none probes,
 * the one part's own when one does, else a {@link ProbingGroup}. Wrappers
 * must forward it, or a probing inner balancer (`prequal()`) is never probed
 * for and never hears an answer.
 * @internal
 */
export function probingOf<E extends BalancerEndpoint>(pickers: readonly Picker<E>[]): PickerProbing<E> | undefined {
  const parts: PickerProbing<E>[] = [];
  for (const p of pickers) if (p.probing !== undefined) parts.push(p.probing);
  return parts.length <= 1 ? parts[0] : new ProbingGroup(parts);
}
