import type { Balancer, BalancerEndpoint, PickContext, Picker } from './balancer.js';
import type { ServiceInstance } from './service-instance.js';
import { emptyPicker, hasExclude } from './balancer-util.js';
import { checkOptions } from './validate.js';
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

/**
 * Weighted round-robin by earliest deadline first (as Envoy and gRPC's WRR
 * do): each endpoint has a next deadline that advances by `1 / weight` every
 * time it is picked, and the earliest deadline wins, from a binary heap. A
 * pick is O(log n) and building a picker O(n), so it stays cheap at 10 000
 * endpoints. Deadlines start half a period in (`0.5 / weight`), so over every
 * window of Σweights picks each endpoint is chosen exactly `weight` times,
 * interleaved rather than in bursts (ties go to the lighter endpoint, then to
 * the earlier one in the set). An endpoint of weight 0 is never picked, unless
 * all weigh 0 (then all count equally). Excluded endpoints sit out; if every
 * candidate is excluded, the weight rule wins and an excluded one is picked again.
 *
 * @example
 * ```ts
 * import { weightedRoundRobin } from '@proxyless/core';
 * // Consul Weights { Passing: 3 } vs { Passing: 1 }: 3 picks in 4 go to the first.
 * const picker = weightedRoundRobin().createPicker(endpoints);
 * ```
 */
export function weightedRoundRobin(options: WeightedRoundRobinOptions = {}): Balancer {
  checkOptions('weightedRoundRobin', options);
  const weightOf: unknown = options.weight ?? consulWeight;
  if (typeof weightOf !== 'function') throw new InvalidOptionError('weight', weightOf, 'must be a function (instance) => number');
  return {
    name: 'weighted-round-robin',
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      const n = endpoints.length;
      if (n === 0) return emptyPicker(endpoints);
      const weightFn = weightOf as (instance: ServiceInstance) => number;
      const weight = new Float64Array(n);
      let size = 0;
      for (let i = 0; i < n; i++) {
        const w = weightFn((endpoints[i] as E).instance);
        if (Number.isFinite(w) && w > 0) {
          weight[i] = w;
          size++;
        }
      }
      if (size === 0) {
        weight.fill(1);
        size = n;
      }
      // Deadline of an endpoint picked k times: (k + 0.5) / weight, computed afresh (not accumulated)
      // so equal rationals are equal doubles and ties resolve by the rule below, not by rounding.
      const picks = new Float64Array(n);
      const deadline = new Float64Array(n);
      const heap = new Int32Array(size);
      for (let i = 0, h = 0; i < n; i++) {
        if (weight[i] === 0) continue;
        deadline[i] = 0.5 / (weight[i] as number);
        heap[h++] = i;
      }
      /** Does entry `a` come before entry `b`? Earlier deadline, then lighter, then earlier in the set. */
      const before = (a: number, b: number): boolean => {
        const da = deadline[a] as number;
        const db = deadline[b] as number;
        if (da !== db) return da < db;
        const wa = weight[a] as number;
        const wb = weight[b] as number;
        return wa !== wb ? wa < wb : a < b;
      };
      const siftDown = (pos: number, count: number): void => {
        const item = heap[pos] as number;
        for (;;) {
          let child = 2 * pos + 1;
          if (child >= count) break;
          const right = child + 1;
          if (right < count && before(heap[right] as number, heap[child] as number)) child = right;
          if (!before(heap[child] as number, item)) break;
          heap[pos] = heap[child] as number;
          pos = child;
        }
        heap[pos] = item;
      };
      const siftUp = (pos: number): void => {
        const item = heap[pos] as number;
        while (pos > 0) {
          const parent = (pos - 1) >> 1;
          if (!before(item, heap[parent] as number)) break;
          heap[pos] = heap[parent] as number;
          pos = parent;
        }
        heap[pos] = item;
      };
      for (let i = (size >> 1) - 1; i >= 0; i--) siftDown(i, size);
      /** Advances the entry at the top of the (first `count` of the) heap and restores the order. */
      const advanceTop = (count: number): number => {
        const i = heap[0] as number;
        const k = (picks[i] as number) + 1;
        picks[i] = k;
        deadline[i] = (k + 0.5) / (weight[i] as number);
        siftDown(0, count);
        return i;
      };
      return {
        endpoints,
        pick(context?: PickContext): E | undefined {
          const exclude = context?.exclude;
          if (!hasExclude(exclude)) return endpoints[advanceTop(size)];
          // Set excluded entries aside at the end of the heap (at most |exclude| of them), pick among the rest, put them back.
          let count = size;
          while (count > 0 && exclude.has(endpoints[heap[0] as number] as E)) {
            const top = heap[0] as number;
            count--;
            heap[0] = heap[count] as number;
            heap[count] = top;
            siftDown(0, count);
          }
          const chosen = count === 0 ? -1 : advanceTop(count);
          for (let j = count; j < size; j++) siftUp(j);
          return endpoints[chosen < 0 ? advanceTop(size) : chosen];
        },
      };
    },
  };
}
