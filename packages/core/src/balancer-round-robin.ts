import type { Balancer, BalancerEndpoint, PickContext, Picker } from './balancer.js';
import { checkRandom, emptyPicker, hasExclude, nextAllowed, randomIndex } from './balancer-util.js';
import { checkOptions, optionKeys } from './validate.js';

/** Options of {@link roundRobin}. */
export interface RoundRobinOptions {
  /** Random source for the starting offset, in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/**
 * Round-robin: endpoints in turn, starting at a random offset so that many
 * clients created at once do not all hit the first endpoint together.
 * Unavailable endpoints are skipped, and so are excluded ones (already tried
 * by a retry) unless every available endpoint is excluded.
 *
 * @example
 * ```ts
 * import { roundRobin } from '@proxyless/core';
 * const picker = roundRobin().createPicker(endpoints);
 * const endpoint = picker.pick();
 * ```
 */
export function roundRobin(options: RoundRobinOptions = {}): Balancer {
  checkOptions('roundRobin', options, optionKeys<RoundRobinOptions>({ random: true }));
  const random = checkRandom('random', options.random);
  return {
    name: 'round-robin',
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      const n = endpoints.length;
      if (n === 0) return emptyPicker(endpoints);
      let next = randomIndex(random, n);
      return {
        endpoints,
        pick(context?: PickContext): E | undefined {
          let i = next;
          const e = endpoints[i] as E;
          const exclude = context?.exclude;
          const excluding = hasExclude(exclude);
          if (e.available === false || (excluding && exclude.has(e))) {
            // Walk on to the next usable endpoint; every one excluded: the next available.
            let allowed = nextAllowed(endpoints, i, excluding ? exclude : undefined);
            if (allowed < 0 && excluding) allowed = nextAllowed(endpoints, i, undefined);
            if (allowed < 0) return undefined;
            i = allowed;
          }
          next = i + 1 === n ? 0 : i + 1;
          return endpoints[i];
        },
      };
    },
  };
}
