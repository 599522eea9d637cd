import type { Balancer, BalancerEndpoint, PickContext, Picker } from './balancer.js';
import { checkRandom, emptyPicker, pickOfChoices } from './balancer-util.js';
import { checkNumber, checkOptions, optionKeys } from './validate.js';

/** Options of {@link peakEwma}. */
export interface PeakEwmaOptions {
  /**
   * Latency (ms) assumed for an endpoint without latency data
   * (`load.ewmaMs` is 0). Default: none, meaning "neutral": when one of the
   * two sampled endpoints has no data it is given the other's latency, so
   * the comparison falls back to in-flight counts and a new endpoint is
   * probed as soon as it is no busier than an established one.
   */
  defaultLatencyMs?: number;
  /** Random source in [0, 1), sampled as in `LeastRequestOptions.random`. Default `Math.random`. */
  random?: () => number;
}

/**
 * Peak EWMA (Finagle/Linkerd): each endpoint costs `ewmaMs × (inFlight + 1)`
 * and the cheaper of two random endpoints wins (power of two choices, O(1)).
 * Latency and load are read live from `load`, which the transport owns.
 *
 * What the transport must do (`@proxyless/http-client`'s endpoint load does it):
 * keep a per-endpoint peak-sensitive moving average of response latency (a
 * higher sample replaces it at once, a lower one pulls it down over a decay
 * window) and publish it as `load.ewmaMs`; on a failure (connection error, timeout, 5xx) feed a
 * *penalty* latency instead (e.g. the per-try timeout, or several times the
 * current estimate), so that a failing endpoint which answers fast does not
 * attract traffic. Peak semantics make the penalty take effect at once and
 * fade over the decay window.
 *
 * The default balancer of `@proxyless/http-client`.
 *
 * @example
 * ```ts
 * import { peakEwma } from '@proxyless/core';
 * const picker = peakEwma().createPicker(endpoints);
 * const endpoint = picker.pick({ exclude: triedSoFar });
 * ```
 */
export function peakEwma(options: PeakEwmaOptions = {}): Balancer {
  checkOptions('peakEwma', options, optionKeys<PeakEwmaOptions>({ defaultLatencyMs: true, random: true }));
  const defaultLatencyMs = checkNumber('defaultLatencyMs', options.defaultLatencyMs, 0, { min: 0 });
  const random = checkRandom('random', options.random);
  const score = (e: BalancerEndpoint): number => {
    const l = e.load;
    // Read once: `ewmaMs` may be a getter that decays the estimate (and reads a clock).
    const raw = l.ewmaMs;
    const ewma = raw > 0 ? raw : defaultLatencyMs;
    return ewma * (l.inFlight + 1);
  };
  // The two costs of one comparison (one scratch object: no allocation per pick).
  const costs = { a: 0, b: 0 };
  const compare = (a: BalancerEndpoint, b: BalancerEndpoint): typeof costs => {
    const la = a.load;
    const lb = b.load;
    const ra = la.ewmaMs; // a getter that may decay the estimate as of now: read once
    const rb = lb.ewmaMs;
    let ea = ra > 0 ? ra : defaultLatencyMs;
    let eb = rb > 0 ? rb : defaultLatencyMs;
    // Neutral default: an endpoint without data is assumed as fast as the other.
    if (!(ea > 0)) ea = eb > 0 ? eb : 1;
    if (!(eb > 0)) eb = ea;
    costs.a = ea * (la.inFlight + 1);
    costs.b = eb * (lb.inFlight + 1);
    return costs;
  };
  const cheaper = (a: BalancerEndpoint, b: BalancerEndpoint): boolean => {
    const c = compare(a, b);
    return c.a < c.b;
  };
  /** The explained pick: the same choice, recording the costs exactly as they were compared. */
  const pickExplained = (endpoints: readonly BalancerEndpoint[], context: PickContext, scores: number[]): BalancerEndpoint | undefined => {
    const candidates = context.candidates ?? [];
    const compared = new Map<BalancerEndpoint, number>();
    const picked = pickOfChoices(endpoints, random, 2, context.exclude, (a, b) => {
      const c = compare(a, b);
      compared.set(a, c.a).set(b, c.b);
      return c.a < c.b;
    }, candidates);
    for (const candidate of candidates) scores.push(compared.get(candidate) ?? score(candidate));
    return picked;
  };
  return {
    name: 'peak-ewma',
    score,
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      if (endpoints.length === 0) return emptyPicker(endpoints);
      return {
        endpoints,
        pick(context?: PickContext): E | undefined {
          if (context?.scores !== undefined) return pickExplained(endpoints, context, context.scores) as E | undefined;
          return pickOfChoices(endpoints, random, 2, context?.exclude, cheaper, context?.candidates);
        },
      };
    },
  };
}
