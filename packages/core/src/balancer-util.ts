/**
 * Helpers shared by the balancer implementations: option validation and
 * allocation-free candidate selection honouring `PickContext.exclude`.
 * @internal
 * @module
 */
import type { BalancerEndpoint, Picker } from './balancer.js';
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

/** Validates the inner balancer of a wrapper. @internal */
export function checkBalancer(option: string, value: unknown): void {
  if (typeof value !== 'object' || value === null || typeof (value as { createPicker?: unknown }).createPicker !== 'function') {
    throw new InvalidOptionError(option, value, 'must be a Balancer (an object with createPicker())');
  }
}

/** Uniform index in [0, n), clamped so a misbehaving random source cannot go out of range. @internal */
export function randomIndex(random: RandomSource, n: number): number {
  const i = Math.floor(random() * n);
  return i >= n ? n - 1 : i < 0 ? 0 : i;
}

/**
 * The first endpoint at or after `start` (cyclically) that is not excluded
 * and not `avoid`, or -1 when there is none. O(n) worst case, no allocation.
 * @internal
 */
export function nextAllowed(
  endpoints: readonly BalancerEndpoint[],
  start: number,
  exclude: ReadonlySet<BalancerEndpoint>,
  avoid = -1,
): number {
  const n = endpoints.length;
  for (let k = 0, i = start; k < n; k++, i++) {
    if (i === n) i = 0;
    if (i !== avoid && !exclude.has(endpoints[i] as BalancerEndpoint)) return i;
  }
  return -1;
}

/** True when a context carries a non-empty exclude set. @internal */
export function hasExclude(exclude: ReadonlySet<BalancerEndpoint> | undefined): exclude is ReadonlySet<BalancerEndpoint> {
  return exclude !== undefined && exclude.size > 0;
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
 * Power-of-N-choices over `endpoints` with `better(a, b)` deciding whether
 * `a` is strictly better than `b`. Without exclusions the first sample is
 * `floor(r₁·n)`, the second `(first + 1 + floor(r₂·(n−1))) mod n` (always
 * distinct), further samples (choices > 2) `floor(rₖ·n)`; ties keep the
 * earlier sample. Excluded endpoints are skipped by walking forward from
 * each sampled index. Allocation-free.
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
  if (n === 1) {
    candidates?.push(endpoints[0] as E);
    return endpoints[0];
  }
  const excluding = hasExclude(exclude);
  let first = randomIndex(random, n);
  if (excluding) {
    first = nextAllowed(endpoints, first, exclude);
    if (first < 0) return endpoints[randomIndex(random, n)]; // everything tried: any endpoint
  }
  let second = first + 1 + randomIndex(random, n - 1);
  if (second >= n) second -= n;
  if (excluding) {
    second = nextAllowed(endpoints, second, exclude, first);
    if (second < 0) return endpoints[first];
  }
  let best = endpoints[first] as E;
  const other = endpoints[second] as E;
  candidates?.push(best, other);
  if (better(other, best)) best = other;
  for (let k = 2; k < choices; k++) {
    let i = randomIndex(random, n);
    if (excluding) {
      i = nextAllowed(endpoints, i, exclude);
      if (i < 0) break;
    }
    const candidate = endpoints[i] as E;
    candidates?.push(candidate);
    if (better(candidate, best)) best = candidate;
  }
  return best;
}
