import type { Balancer, BalancerEndpoint, PickContext, Picker } from './balancer.js';
import { InvalidOptionError } from './errors.js';
import { checkBalancer, emptyPicker, hasExclude, probingOf } from './balancer-util.js';
import { checkNumber, checkOptions, optionKeys } from './validate.js';

/** Options of {@link locality}. */
export interface LocalityOptions {
  /** The local availability zone; endpoints whose `instance.zone` equals it are preferred. */
  zone?: string;
  /** The local datacenter; endpoints whose `instance.datacenter` equals it are preferred (after the zone). */
  datacenter?: string;
  /** A locality tier is used only if it holds at least this many endpoints, integer ≥ 1. Default 1. */
  minEndpoints?: number;
  /**
   * A locality tier is used only if it holds at least this fraction of all
   * ready endpoints, in [0, 1]. Default 0 (no fraction rule).
   */
  minFraction?: number;
}

/**
 * Locality preference in front of any balancer: requests stay in the local
 * zone (then the local datacenter) while that tier has enough ready
 * endpoints, and spill over to the next tier, finally to every endpoint,
 * when it has fewer than `minEndpoints` (or less than `minFraction` of the
 * set). Only available endpoints count (an open breaker or an ejection
 * makes one unavailable). When a retry has excluded every endpoint of the
 * chosen tier, the pick spills over too.
 *
 * Tier sets are computed when the picker is built (on each set change) and
 * their available counts when availability changes, so a pick costs the
 * inner picker's pick.
 *
 * @example
 * ```ts
 * import { locality, peakEwma } from '@proxyless/core';
 * const balancer = locality(peakEwma(), { zone: 'eu-west-1a', datacenter: 'dc1', minEndpoints: 2 });
 * ```
 */
export function locality(inner: Balancer, options: LocalityOptions): Balancer {
  checkBalancer('inner', inner);
  checkOptions('locality', options, optionKeys<LocalityOptions>({ zone: true, datacenter: true, minEndpoints: true, minFraction: true }));
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('locality', options, 'must be an options object');
  const { zone, datacenter } = options;
  if (zone !== undefined && (typeof zone !== 'string' || zone === '')) throw new InvalidOptionError('zone', zone, 'must be a non-empty string');
  if (datacenter !== undefined && (typeof datacenter !== 'string' || datacenter === '')) {
    throw new InvalidOptionError('datacenter', datacenter, 'must be a non-empty string');
  }
  if (zone === undefined && datacenter === undefined) throw new InvalidOptionError('zone', zone, 'or datacenter must be given');
  const minEndpoints = checkNumber('minEndpoints', options.minEndpoints, 1, { min: 1, integer: true });
  const minFraction = checkNumber('minFraction', options.minFraction, 0, { min: 0, max: 1 });
  return {
    name: `locality(${inner.name})`,
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      if (endpoints.length === 0) return emptyPicker(endpoints);
      // Tiers by membership, built once per set; whether a tier has enough *available*
      // endpoints is recounted only when availability changes (availabilityChanged()).
      const tiers: Picker<E>[] = [];
      if (zone !== undefined) {
        const local = endpoints.filter((e) => e.instance.zone === zone && (datacenter === undefined || e.instance.datacenter === datacenter));
        if (local.length > 0 && local.length < endpoints.length) tiers.push(inner.createPicker(local));
      }
      if (datacenter !== undefined) {
        const local = endpoints.filter((e) => e.instance.datacenter === datacenter);
        if (local.length > 0 && local.length < endpoints.length && local.length !== tiers[0]?.endpoints.length) {
          tiers.push(inner.createPicker(local));
        }
      }
      const all = inner.createPicker(endpoints);
      if (tiers.length === 0) return all;
      const usable = tiers.map(() => false);
      const countAvailable = (set: readonly E[]): number => {
        let count = 0;
        for (const e of set) if (e.available !== false) count++;
        return count;
      };
      const recount = (): void => {
        const total = countAvailable(endpoints);
        tiers.forEach((tier, t) => {
          const ready = countAvailable(tier.endpoints);
          usable[t] = ready > 0 && ready >= minEndpoints && ready >= minFraction * total;
        });
      };
      recount();
      // A probing inner balancer (prequal()) is probed for through the wrapper: every tier's picks owe probes, every answer reaches every tier.
      const probing = probingOf([...tiers, all]);
      return {
        endpoints,
        ...(probing === undefined ? {} : { probing }),
        pick(context?: PickContext): E | undefined {
          const exclude = context?.exclude;
          for (let t = 0; t < tiers.length; t++) {
            if (!usable[t]) continue;
            const chosen = (tiers[t] as Picker<E>).pick(context);
            if (chosen !== undefined && (!hasExclude(exclude) || !exclude.has(chosen))) return chosen;
          }
          return all.pick(context);
        },
        availabilityChanged(): void {
          for (const tier of tiers) tier.availabilityChanged?.();
          all.availabilityChanged?.();
          recount();
        },
      };
    },
  };
}
