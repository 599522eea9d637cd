import type { Balancer, BalancerEndpoint, PickContext, Picker } from './balancer.js';
import { checkRandom, emptyPicker, pickOfChoices } from './balancer-util.js';
import { checkNumber, checkOptions, optionKeys } from './validate.js';

/** Options of {@link leastRequest}. */
export interface LeastRequestOptions {
  /** Endpoints sampled per pick (power of N choices), integer 2–16. Default 2. */
  choices?: number;
  /**
   * Random source in [0, 1). Default `Math.random`. Sampling is
   * deterministic given it: the first sample is `floor(r₁·n)`, the second
   * `(first + 1 + floor(r₂·(n−1))) mod n`, so the two are always distinct;
   * further samples (choices > 2) are `floor(rₖ·n)`.
   */
  random?: () => number;
}

/**
 * Least-request with the power of two choices: sample two distinct endpoints
 * at random and take the one with fewer requests in flight (`load.inFlight`,
 * read live). O(1) per pick at any set size, and, unlike "global least
 * loaded", many clients do not herd onto the same endpoint. Excluded
 * endpoints are skipped unless all are excluded.
 *
 * @example
 * ```ts
 * import { leastRequest } from '@proxyless/core';
 * const balancer = leastRequest({ choices: 2 });
 * const endpoint = balancer.createPicker(endpoints).pick();
 * ```
 */
export function leastRequest(options: LeastRequestOptions = {}): Balancer {
  checkOptions('leastRequest', options, optionKeys<LeastRequestOptions>({ choices: true, random: true }));
  const choices = checkNumber('choices', options.choices, 2, { min: 2, max: 16, integer: true });
  const random = checkRandom('random', options.random);
  const fewer = (a: BalancerEndpoint, b: BalancerEndpoint): boolean => a.load.inFlight < b.load.inFlight;
  return {
    name: 'least-request',
    score: (e: BalancerEndpoint) => e.load.inFlight,
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      if (endpoints.length === 0) return emptyPicker(endpoints);
      return {
        endpoints,
        pick(context?: PickContext): E | undefined {
          return pickOfChoices(endpoints, random, choices, context?.exclude, fewer, context?.candidates);
        },
      };
    },
  };
}
