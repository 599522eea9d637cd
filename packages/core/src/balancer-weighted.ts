import type { Balancer, BalancerEndpoint, PickContext, Picker } from './balancer.js';
import type { ServiceInstance } from './service-instance.js';
import { emptyPicker, hasExclude } from './balancer-util.js';
import { checkOptions, optionKeys } from './validate.js';
import { InvalidOptionError } from './errors.js';

/** Options of {@link weightedRoundRobin}. */
export interface WeightedRoundRobinOptions {
  /**
   * Weight of an instance. Default {@link consulWeight}: Consul `Weights`
   * (`passing` for passing instances, `warning` for warning ones, 0 for
   * critical). Negative or non-finite results count as 0.
   */
  weight?: (instance: ServiceInstance) => number;
}

/**
 * The default weight function of {@link weightedRoundRobin}: Consul's
 * `Weights.Passing` for a passing instance, `Weights.Warning` for a warning
 * one, and 0 for a critical one (present only when the transport is in panic
 * mode, where every endpoint weighs 0 and is therefore used equally).
 */
export function consulWeight(instance: ServiceInstance): number {
  switch (instance.health) {
    case 'passing':
      return instance.weights.passing;
    case 'warning':
      return instance.weights.warning;
    default:
      return 0;
  }
}

/** EDF turns tried before a pick falls back to a scan (only when most of the weight is unavailable or excluded). */
const MAX_TURNS = 64;

/**
 * Weighted round-robin by earliest deadline first (as Envoy and gRPC's WRR
 * do), over classes of equal weight: endpoints of one weight form a class
 * taken in turn (round-robin inside it), and each class has a next deadline
 * that advances by `1 / (weight × members)` every time it is picked; the
 * earliest deadline wins, from a binary heap of classes. A pick is
 * O(log k) for k distinct weights (O(1) for the usual handful; O(log n) at
 * worst, when every weight differs) and building a picker O(n). Deadlines
 * start half a period in, so over every window of Σweights picks each
 * endpoint is chosen exactly `weight` times, interleaved rather than in
 * bursts (ties go to the lighter class, then to the one met first in the
 * set). An endpoint of weight 0 is never picked while one of positive weight
 * is available (all 0: all count equally).
 *
 * An unavailable or excluded endpoint gives up its turn, so the others keep
 * their weights among themselves and an availability change costs nothing.
 * If every candidate is excluded, an excluded one is picked again.
 *
 * @example
 * ```ts
 * import { weightedRoundRobin } from '@proxyless/core';
 * // Consul Weights { Passing: 3 } vs { Passing: 1 }: 3 picks in 4 go to the first.
 * const picker = weightedRoundRobin().createPicker(endpoints);
 * ```
 */
export function weightedRoundRobin(options: WeightedRoundRobinOptions = {}): Balancer {
  checkOptions('weightedRoundRobin', options, optionKeys<WeightedRoundRobinOptions>({ weight: true }));
  const weightOf: unknown = options.weight ?? consulWeight;
  if (typeof weightOf !== 'function') throw new InvalidOptionError('weight', weightOf, 'must be a function (instance) => number');
  return {
    name: 'weighted-round-robin',
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      const n = endpoints.length;
      if (n === 0) return emptyPicker(endpoints);
      const weightFn = weightOf as (instance: ServiceInstance) => number;
      const weight = new Float64Array(n);
      for (let i = 0; i < n; i++) weight[i] = weightFn((endpoints[i] as E).instance);
      return edfPicker(endpoints, weight);
    },
  };
}

/**
 * The EDF picker of {@link weightedRoundRobin} over `weight` (one entry per
 * endpoint, read and normalised in place: non-finite or negative counts as 0;
 * all 0: all 1). `startTurns` turns are taken before the first pick, so a
 * caller that rebuilds the schedule often (the load-weighted balancer, every
 * weight update) can start each one at a random phase instead of always at
 * the heaviest endpoint.
 * @internal
 */
export function edfPicker<E extends BalancerEndpoint>(endpoints: readonly E[], weight: Float64Array, startTurns = 0): Picker<E> {
  const n = endpoints.length;
  if (n === 0) return emptyPicker(endpoints);
  let positive = 0;
  for (let i = 0; i < n; i++) {
    const w = weight[i] as number;
    if (Number.isFinite(w) && w > 0) positive++;
    else weight[i] = 0;
  }
  if (positive === 0) weight.fill(1);
  // Classes of equal weight, in order of first appearance; members as indices into `endpoints`.
  const classOf = new Map<number, number>();
  const classWeight: number[] = [];
  const memberCount: number[] = [];
  const classIndex = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const w = weight[i] as number;
    if (w === 0) continue;
    let c = classOf.get(w);
    if (c === undefined) {
      c = classWeight.length;
      classOf.set(w, c);
      classWeight.push(w);
      memberCount.push(0);
    }
    classIndex[i] = c;
    memberCount[c] = (memberCount[c] as number) + 1;
  }
  const k = classWeight.length;
  const memberStart = new Int32Array(k + 1);
  for (let c = 0; c < k; c++) memberStart[c + 1] = (memberStart[c] as number) + (memberCount[c] as number);
  const members = new Int32Array(memberStart[k] as number);
  const fill = memberStart.slice(0, k);
  for (let i = 0; i < n; i++) {
    if (weight[i] === 0) continue;
    const c = classIndex[i] as number;
    members[fill[c] as number] = i;
    fill[c] = (fill[c] as number) + 1;
  }
  const cursor = new Int32Array(k);
  // A class's deadline after k picks: (k + 0.5) / (weight × members), computed afresh (not accumulated)
  // so equal rationals are equal doubles and ties resolve by the rule below, not by rounding.
  const rate = new Float64Array(k);
  const picks = new Float64Array(k);
  const deadline = new Float64Array(k);
  const heap = new Int32Array(k);
  for (let c = 0; c < k; c++) {
    rate[c] = (classWeight[c] as number) * (memberCount[c] as number);
    deadline[c] = 0.5 / (rate[c] as number);
    heap[c] = c;
  }
  /** Does class `a` come before class `b`? Earlier deadline, then lighter weight, then met first. */
  const before = (a: number, b: number): boolean => {
    const da = deadline[a] as number;
    const db = deadline[b] as number;
    if (da !== db) return da < db;
    const wa = classWeight[a] as number;
    const wb = classWeight[b] as number;
    return wa !== wb ? wa < wb : a < b;
  };
  const siftDown = (from: number): void => {
    let pos = from;
    const item = heap[pos] as number;
    for (;;) {
      let child = 2 * pos + 1;
      if (child >= k) break;
      const right = child + 1;
      if (right < k && before(heap[right] as number, heap[child] as number)) child = right;
      if (!before(heap[child] as number, item)) break;
      heap[pos] = heap[child] as number;
      pos = child;
    }
    heap[pos] = item;
  };
  for (let c = (k >> 1) - 1; c >= 0; c--) siftDown(c);
  /** Takes the next turn: the earliest class's next member, advancing the class's deadline and cursor. */
  const turn = (): number => {
    const c = heap[0] as number;
    const p = (picks[c] as number) + 1;
    picks[c] = p;
    deadline[c] = (p + 0.5) / (rate[c] as number);
    if (k > 1) siftDown(0);
    const at = cursor[c] as number;
    cursor[c] = at + 1 === memberCount[c] ? 0 : at + 1;
    return members[(memberStart[c] as number) + at] as number;
  };
  for (let t = 0; t < startTurns; t++) turn();
  let scanFrom = 0;
  /** The fallback when most turns go to unusable endpoints: a rotating scan, weighted ones first. */
  const scan = (exclude: ReadonlySet<BalancerEndpoint> | undefined): number => {
    for (let pass = 0; pass < 3; pass++) {
      for (let j = 0, i = scanFrom; j < n; j++, i++) {
        if (i >= n) i = 0;
        const e = endpoints[i] as E;
        if (e.available === false) continue;
        if (pass < 2 && exclude !== undefined && exclude.has(e)) continue;
        if (pass === 0 && weight[i] === 0) continue;
        scanFrom = i + 1 === n ? 0 : i + 1;
        return i;
      }
    }
    return -1;
  };
  return {
    endpoints,
    pick(context?: PickContext): E | undefined {
      const exclude = hasExclude(context?.exclude) ? context?.exclude : undefined;
      for (let t = 0; t < MAX_TURNS; t++) {
        const e = endpoints[turn()] as E;
        if (e.available !== false && (exclude === undefined || !exclude.has(e))) return e;
      }
      const i = scan(exclude);
      return i < 0 ? undefined : endpoints[i];
    },
  };
}
