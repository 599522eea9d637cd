import type { Balancer, BalancerEndpoint, PickContext, Picker } from './balancer.js';
import { checkRandom, emptyPicker, pickRandom } from './balancer-util.js';
import { checkOptions, optionKeys } from './validate.js';

/** Options of {@link random}. */
export interface RandomOptions {
  /** Random source in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/**
 * Uniform random choice among the available endpoints. Excluded endpoints
 * are drawn again (all excluded: a random available one).
 *
 * @example
 * ```ts
 * import { random } from '@proxyless/core';
 * const endpoint = random().createPicker(endpoints).pick();
 * ```
 */
export function random(options: RandomOptions = {}): Balancer {
  checkOptions('random', options, optionKeys<RandomOptions>({ random: true }));
  const source = checkRandom('random', options.random);
  return {
    name: 'random',
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      if (endpoints.length === 0) return emptyPicker(endpoints);
      return {
        endpoints,
        pick(context?: PickContext): E | undefined {
          return pickRandom(endpoints, source, context?.exclude);
        },
      };
    },
  };
}
