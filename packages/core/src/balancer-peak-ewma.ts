import type { Balancer, BalancerEndpoint, PickContext, Picker, PickSignal } from './balancer.js';
import { checkRandom, emptyPicker, pickOfChoices } from './balancer-util.js';
import { checkNumber, checkOptions, optionKeys } from './validate.js';
import { InvalidOptionError } from './errors.js';

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
  /**
   * Fuse what the servers report about their own load (`load.reported`,
   * ORCA `endpoint-load-metrics`) into the cost, when both compared
   * endpoints report it: requests in flight become `max(inFlight, rif)` (the
   * server's count includes other clients'), and the cost is multiplied by
   * `1 + 2 × min(utilization, 1)`: a full server costs up to three times an
   * idle one. Bounded on purpose: until 5 Dec the cost was divided by the
   * headroom `max(1 − utilization, 0.05)` (up to × 20), and with many clients
   * reading the same reports (each a few hundred ms old) they all fled the
   * same backends at once and herded onto the others (balancer testbed, 8
   * clients: p99 1.8× plain peak EWMA's, 1.3× now; see bench/README.md). Without a
   * utilisation term, one request at a time left a slightly slower endpoint
   * 0.21 of its fair share (× 2 at most: 0.27 over five; × 3: 0.49). A
   * report fades with its age (`rif` and `utilization` ×
   * e^(−age / 1 s)): an endpoint that stopped being picked sends no new
   * report, and its last one, taken while it was busy, must not keep it out
   * (at one request at a time that starved an endpoint: 0.12 of its fair
   * share over five). An endpoint that does not report is compared exactly as
   * without the option. Default `false`; the balancer is then named
   * `peak-ewma-reported`.
   */
  reportedLoad?: boolean;
}

/**
 * Time constant (ms) over which a report's `rif` and `utilization` fade: a
 * report describes its server's last window (`@proxyless/load-report`: 1 s),
 * and under steady traffic every endpoint answers, so reports stay far
 * younger than this; only a report left behind by an endpoint no longer
 * picked grows old.
 */
const REPORT_FADE_MS = 1_000;

/** How much of a report of age `ageMs` still counts (1 when fresh, toward 0). */
function freshness(ageMs: number): number {
  return ageMs > 0 ? Math.exp(-ageMs / REPORT_FADE_MS) : 1;
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
 * With `reportedLoad: true` (named `peak-ewma-reported`), the servers' own
 * reports join the cost where both compared endpoints send them:
 * `ewmaMs × (max(inFlight, rif) + 1) × (1 + 2 × min(utilization, 1))`, the
 * report's `rif` and `utilization` faded by e^(−age / 1 s). Latency
 * stays a factor, so a slow or hung endpoint loses as before, while one that
 * is saturated but still answering fast (a CPU-bound neighbour, a queue in
 * front of a fast handler) loses before its latency rises. An option rather
 * than a new balancer: it is the same P2C over the same cost, and an
 * endpoint that never reports is compared exactly as without it.
 *
 * Explained picks push the {@link PickSignal} that moved the costs most in
 * the winner's favour (`latency`, `in-flight`, `reported-rif`,
 * `reported-utilization`; `random` on a tie, `only-choice` alone).
 *
 * The default balancer of `@proxyless/http-client` (without `reportedLoad`).
 *
 * @example
 * ```ts
 * import { peakEwma } from '@proxyless/core';
 * const picker = peakEwma().createPicker(endpoints);
 * const endpoint = picker.pick({ exclude: triedSoFar });
 * ```
 */
export function peakEwma(options: PeakEwmaOptions = {}): Balancer {
  checkOptions('peakEwma', options, optionKeys<PeakEwmaOptions>({ defaultLatencyMs: true, random: true, reportedLoad: true }));
  const defaultLatencyMs = checkNumber('defaultLatencyMs', options.defaultLatencyMs, 0, { min: 0 });
  const random = checkRandom('random', options.random);
  const reportedLoad: unknown = options.reportedLoad ?? false;
  if (typeof reportedLoad !== 'boolean') throw new InvalidOptionError('reportedLoad', reportedLoad, 'must be a boolean');
  const score = (e: BalancerEndpoint): number => {
    const l = e.load;
    // Read once: `ewmaMs` may be a getter that decays the estimate (and reads a clock).
    const raw = l.ewmaMs;
    const ewma = raw > 0 ? raw : defaultLatencyMs;
    if (!reportedLoad) return ewma * (l.inFlight + 1);
    const r = l.reported;
    if (r === undefined) return ewma * (l.inFlight + 1);
    const f = freshness(r.ageMs);
    return (ewma * (Math.max(l.inFlight, (r.rif ?? 0) * f) + 1)) / headroom(r.utilization === undefined ? undefined : r.utilization * f);
  };
  // The two costs of one comparison and their factors (one scratch object: no allocation per pick).
  const costs = { a: 0, b: 0, ea: 0, eb: 0, ia: 0, ib: 0, pa: 0, pb: 0, ha: 1, hb: 1 };
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
    const ia = la.inFlight;
    const ib = lb.inFlight;
    let pa = ia;
    let pb = ib;
    let ha = 1;
    let hb = 1;
    if (reportedLoad) {
      const qa = la.reported;
      const qb = lb.reported;
      // Only between two reporting endpoints: one that does not report is compared as without reports.
      if (qa !== undefined && qb !== undefined) {
        const fa = freshness(qa.ageMs);
        const fb = freshness(qb.ageMs);
        if (qa.rif !== undefined && qb.rif !== undefined) {
          pa = Math.max(pa, qa.rif * fa);
          pb = Math.max(pb, qb.rif * fb);
        }
        if (qa.utilization !== undefined && qb.utilization !== undefined) {
          ha = headroom(qa.utilization * fa);
          hb = headroom(qb.utilization * fb);
        }
      }
    }
    costs.ea = ea;
    costs.eb = eb;
    costs.ia = ia;
    costs.ib = ib;
    costs.pa = pa;
    costs.pb = pb;
    costs.ha = ha;
    costs.hb = hb;
    costs.a = (ea * (pa + 1)) / ha;
    costs.b = (eb * (pb + 1)) / hb;
    return costs;
  };
  const cheaper = (a: BalancerEndpoint, b: BalancerEndpoint): boolean => {
    const c = compare(a, b);
    return c.a < c.b;
  };
  /** The explained pick: the same choice, recording the costs exactly as they were compared. */
  const pickExplained = (endpoints: readonly BalancerEndpoint[], context: PickContext): BalancerEndpoint | undefined => {
    const candidates = context.candidates ?? [];
    const compared = new Map<BalancerEndpoint, number>();
    let signal: PickSignal = 'only-choice';
    const picked = pickOfChoices(endpoints, random, 2, context.exclude, (a, b) => {
      const c = compare(a, b);
      compared.set(a, c.a).set(b, c.b);
      signal = decidingSignal(c);
      return c.a < c.b;
    }, candidates);
    if (context.scores !== undefined) for (const candidate of candidates) context.scores.push(compared.get(candidate) ?? score(candidate));
    if (picked !== undefined) context.signals?.push(signal);
    return picked;
  };
  return {
    name: reportedLoad ? 'peak-ewma-reported' : 'peak-ewma',
    score,
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      if (endpoints.length === 0) return emptyPicker(endpoints);
      return {
        endpoints,
        pick(context?: PickContext): E | undefined {
          if (context?.scores !== undefined || context?.signals !== undefined) return pickExplained(endpoints, context) as E | undefined;
          return pickOfChoices(endpoints, random, 2, context?.exclude, cheaper, context?.candidates);
        },
      };
    },
  };
}

/**
 * What the cost is divided by for a reported utilisation: 1 ÷ (1 + 2 × min(utilization, 1)), so the cost
 * grows threefold at most (1 when not reported). A divisor, so that the
 * explanation reads it as the reported headroom.
 */
function headroom(utilization: number | undefined): number {
  return utilization === undefined ? 1 : 1 / (1 + 2 * Math.min(utilization, 1));
}

/**
 * Which factor of two compared costs decided: the one whose ratio moved the
 * most in the winner's favour (latency, this client's in flight, the
 * server's extra in flight, the reported headroom); `random` on a tie.
 */
function decidingSignal(c: { a: number; b: number; ea: number; eb: number; ia: number; ib: number; pa: number; pb: number; ha: number; hb: number }): PickSignal {
  if (c.a === c.b) return 'random';
  // Every factor as log(a's / b's), positive when it makes a costlier; the winner's side is the sign of the total.
  const sign = c.a < c.b ? -1 : 1;
  const factors: readonly [PickSignal, number][] = [
    ['latency', Math.log(c.ea / c.eb)],
    ['in-flight', Math.log((c.ia + 1) / (c.ib + 1))],
    ['reported-rif', Math.log((c.pa + 1) / (c.pb + 1)) - Math.log((c.ia + 1) / (c.ib + 1))],
    ['reported-utilization', Math.log(c.hb / c.ha)],
  ];
  let best: PickSignal = 'latency';
  let most = 0;
  for (const [signal, value] of factors) {
    if (sign * value > most) {
      most = sign * value;
      best = signal;
    }
  }
  return best;
}
