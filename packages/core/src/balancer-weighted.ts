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
 * Smooth weighted round-robin (nginx's algorithm): on each pick every
 * endpoint's `current` grows by its weight, the largest `current` wins and
 * is lowered by the total weight. Over any window of Σweights picks each
 * endpoint is chosen exactly `weight` times, interleaved rather than in
 * bursts. An endpoint of weight 0 is never picked, unless all weigh 0 (then
 * all count equally). Excluded endpoints sit out the round as nginx skips
 * tried peers; if only zero-weight endpoints remain, the weight rule wins
 * and an excluded endpoint is picked again.
 *
 * A pick is O(n) (as in nginx); at 10 000 endpoints prefer `peakEwma()`
 * or `leastRequest()`, which are O(1).
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
      const weights = new Float64Array(n);
      let positive = 0;
      for (let i = 0; i < n; i++) {
        const w = weightFn((endpoints[i] as E).instance);
        if (Number.isFinite(w) && w > 0) {
          weights[i] = w;
          positive++;
        }
      }
      if (positive === 0) weights.fill(1);
      const current = new Float64Array(n);
      const choose = (exclude: ReadonlySet<BalancerEndpoint> | undefined): number => {
        let best = -1;
        let bestCurrent = -Infinity;
        let total = 0;
        for (let i = 0; i < n; i++) {
          const w = (weights[i] as number);
          if (w === 0) continue;
          if (exclude !== undefined && exclude.has(endpoints[i] as E)) continue;
          const c = (current[i] as number) + w;
          current[i] = c;
          total += w;
          if (c > bestCurrent) {
            bestCurrent = c;
            best = i;
          }
        }
        if (best >= 0) current[best] = bestCurrent - total;
        return best;
      };
      return {
        endpoints,
        pick(context?: PickContext): E | undefined {
          const exclude = context?.exclude;
          let i = hasExclude(exclude) ? choose(exclude) : -1;
          if (i < 0) i = choose(undefined);
          return endpoints[i];
        },
      };
    },
  };
}
