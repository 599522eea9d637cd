import type { Balancer, BalancerEndpoint, PickContext, Picker } from './balancer.js';
import { checkBalancer, checkClock, checkRandom } from './balancer-util.js';
import { checkNumber, checkOptions, optionKeys } from './validate.js';

/** Options of {@link slowStart}. */
export interface SlowStartOptions {
  /** Ramp duration in ms after `load.readySince`. Default 30 000. */
  windowMs?: number;
  /**
   * Shape of the ramp, > 0: an endpoint of age `a` keeps a pick with
   * probability `(a / windowMs) ^ aggression`. 1 (default) is linear; > 1
   * starts slower, < 1 faster.
   */
  aggression?: number;
  /** Floor of that probability, in [0, 1], so a new endpoint is probed at once. Default 0.1. */
  minWeight?: number;
  /** Re-picks tried before accepting a young endpoint anyway, integer 1–8. Default 2. */
  maxRepicks?: number;
  /** Clock, epoch ms, matching `load.readySince`. Default `Date.now`. */
  now?: () => number;
  /** Random source in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/**
 * Slow start around any balancer: a newly ready endpoint (a fresh process
 * with cold caches and JIT) receives a share that grows over `windowMs`
 * instead of its full share at once.
 *
 * Approach: the inner picker chooses as usual; when its choice is younger
 * than the window (age = now − `load.readySince`), it is kept with
 * probability `max(minWeight, (age / windowMs) ^ aggression)` and otherwise
 * swapped for another pick of the inner picker (at most `maxRepicks` times,
 * after which the last choice stands). The young endpoint's share is thus
 * scaled by roughly that probability, whatever the inner strategy, without
 * rebuilding pickers as time passes. When every endpoint is equally young
 * (a client starting up) the swaps cancel out and nothing is throttled.
 * A pick of an endpoint known to be past its window costs what the inner
 * pick costs (no clock read); one that rejoins (its `readySince` moves
 * forward, e.g. after an ejection) ramps again without a new picker.
 *
 * With consistent hashing, a re-pick with the same key returns the same
 * endpoint, so hashing is effectively not slowed; wrap load-aware or
 * round-robin strategies.
 *
 * @example
 * ```ts
 * import { peakEwma, slowStart } from '@proxyless/core';
 * const balancer = slowStart(peakEwma(), { windowMs: 30_000 });
 * ```
 */
export function slowStart(inner: Balancer, options: SlowStartOptions = {}): Balancer {
  checkBalancer('inner', inner);
  checkOptions('slowStart', options, optionKeys<SlowStartOptions>({ windowMs: true, aggression: true, minWeight: true, maxRepicks: true, now: true, random: true }));
  const windowMs = checkNumber('windowMs', options.windowMs, 30_000, { above: 0 });
  const aggression = checkNumber('aggression', options.aggression, 1, { above: 0 });
  const minWeight = checkNumber('minWeight', options.minWeight, 0.1, { min: 0, max: 1 });
  const maxRepicks = checkNumber('maxRepicks', options.maxRepicks, 2, { min: 1, max: 8, integer: true });
  const now = checkClock('now', options.now);
  const random = checkRandom('random', options.random);
  return {
    name: `slow-start(${inner.name})`,
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      const picker = inner.createPicker(endpoints);
      // The last clock reading: an endpoint that had left its window then has left it for good
      // (until it rejoins, which moves its readySince forward), so most picks read no clock.
      let lastNow = -Infinity;
      const slowed: Picker<E> = {
        endpoints,
        // A probing picker's probes pass through: slow start only re-draws its choices.
        ...(picker.probing === undefined ? {} : { probing: picker.probing }),
        pick(context?: PickContext): E | undefined {
          let chosen = picker.pick(context);
          if (chosen === undefined || chosen.load.readySince + windowMs <= lastNow) return chosen;
          const t = now();
          lastNow = t;
          for (let k = 0; k < maxRepicks; k++) {
            const age = t - chosen.load.readySince;
            if (age >= windowMs) return chosen;
            let keep = age <= 0 ? 0 : (age / windowMs) ** aggression;
            if (keep < minWeight) keep = minWeight;
            if (random() < keep) return chosen;
            chosen = picker.pick(context) ?? chosen;
          }
          return chosen;
        },
      };
      if (picker.availabilityChanged !== undefined) slowed.availabilityChanged = () => picker.availabilityChanged?.();
      return slowed;
    },
  };
}
