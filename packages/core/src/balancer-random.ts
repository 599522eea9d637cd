import type { Balancer, BalancerEndpoint, PickContext, Picker } from './balancer.js';
import { checkRandom, emptyPicker, hasExclude, nextAllowed, randomIndex } from './balancer-util.js';
import { checkOptions } from './validate.js';

/** Options of {@link random}. */
export interface RandomOptions {
  /** Random source in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/**
 * Uniform random choice. With exclusions, the first non-excluded endpoint at
 * or after the random index is taken (all excluded: the random one).
 *
 * @example
 * ```ts
 * import { random } from '@proxyless/core';
 * const endpoint = random().createPicker(endpoints).pick();
 * ```
 */
export function random(options: RandomOptions = {}): Balancer {
  checkOptions('random', options);
  const source = checkRandom('random', options.random);
  return {
    name: 'random',
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      const n = endpoints.length;
      if (n === 0) return emptyPicker(endpoints);
      return {
        endpoints,
        pick(context?: PickContext): E | undefined {
          const i = randomIndex(source, n);
          const exclude = context?.exclude;
          if (hasExclude(exclude)) {
            const allowed = nextAllowed(endpoints, i, exclude);
            if (allowed >= 0) return endpoints[allowed];
          }
          return endpoints[i];
        },
      };
    },
  };
}
