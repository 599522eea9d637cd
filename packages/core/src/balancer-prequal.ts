import type { Balancer, BalancerEndpoint, PickContext, Picker, PickerProbing, ProbeResult, ProbeSettings } from './balancer.js';
import { checkClock, checkRandom, emptyPicker, hasExclude, pickOfChoices, ProbingGroup, randomIndex, type RandomSource } from './balancer-util.js';
import { InvalidOptionError } from './errors.js';
import { checkNumber, checkOptions, optionKeys } from './validate.js';

/** Options of {@link prequal}; every one has a default ({@link prequalDefaults}). */
export interface PrequalOptions {
  /** Probes the pool holds, at most (one per endpoint, the newest), integer 1–256. Default 16 (the paper's). */
  poolSize?: number;
  /** Probes asked for per pick (`r_probe`), 0–16, fractions accumulate. Default 3. */
  probeRate?: number;
  /** A probe older than this is dropped, ms (1–600,000). Default 1,000. */
  maxProbeAgeMs?: number;
  /** Picks one probe may serve before it is dropped (`b_reuse`), integer 1–1,000. Default 3. */
  maxReuse?: number;
  /**
   * The hot–cold threshold `Q_RIF`: an endpoint is hot when its requests in
   * flight exceed this quantile of the recently probed ones, in [0, 1].
   * Default 0.84.
   */
  hotQuantile?: number;
  /**
   * How a cold endpoint is chosen. `'weighted'` (default): at random, with
   * odds in inverse proportion to latency (an endpoint twice as fast is
   * picked twice as often). `'lowest'`: the paper's rule, the lowest latency.
   * Why the default differs: in the paper a pool of 16 random probes over
   * hundreds of replicas spreads the choice; over a handful of endpoints the
   * pool holds them all, and with servers' latency estimates as noisy as they
   * are at light load (1.3 to 7.7 ms for the same handler, measured), the
   * lowest one took 288 of 600 requests one at a time over five servers and
   * another 2; an estimate a server keeps while it gets no traffic never
   * corrects itself. Weighted, a slow server (30× the latency) still gets
   * about 1 %.
   */
  coldChoice?: 'weighted' | 'lowest';
  /**
   * How sharply `coldChoice: 'weighted'` favours the faster: the odds are
   * latency^−latencyExponent, 0–16. 1 (default): in inverse proportion to
   * latency. 4: an endpoint 1.5× slower gets a fifth of the odds, 2× slower
   * a sixteenth, 10 % slower still two thirds (`prequalWhenReported()` uses
   * 4: on the balancer testbed a backend at half its capacity kept getting
   * its full share at 1). 0: uniform among the cold.
   */
  latencyExponent?: number;
  /**
   * Let a probe's RIF age toward its server's mean: `mean + (rif − mean) ×
   * e^(−age / latency)`, where `mean` is Little's law over what the server
   * reported and this client measured (`rps_fractional` × this client's
   * latency estimate, `load.ewmaMs`) and `latency` that estimate too: a
   * count taken one latency ago says little about now. Without it (default
   * `false`, the paper's rule), a server whose queue had just drained kept
   * saying "idle" for the probe's whole life, and every client that held
   * that probe sent to it at once. Needs `rps_fractional` in the reports
   * (`@proxyless/load-report` writes it); an endpoint without one is read as
   * reported.
   */
  rifAging?: boolean;
  /**
   * What the hot threshold is a quantile of: `'history'` (default, the
   * paper's), the last 32 probed RIFs as they arrived; `'pool'`, the RIFs of
   * the probes in the pool as this pick reads them (with the picks each
   * served, and aged under `rifAging`). `'pool'` compares like with like:
   * against the history, the counts a pick reads (raised by the picks each
   * probe served) were above the threshold so often that most picks found
   * every endpoint hot and fell back to the fewest RIF, blind to latency.
   */
  hotThresholdOf?: 'history' | 'pool';
  /** Path the transport probes (`GET`). Default `'/endpoint-load-metrics'` (`@proxyless/load-report` answers it without running the app). */
  probePath?: string;
  /** A probe's deadline, ms (1–60,000). Default 500. */
  probeTimeoutMs?: number;
  /** Probes in flight at once per set of endpoints, integer 1–1,024. Default 8. */
  maxConcurrentProbes?: number;
  /** Random source in [0, 1). Default `Math.random`. */
  random?: () => number;
  /** Clock for probe ages, ms. Default `performance.now()`. */
  clock?: () => number;
}

/** Every default of {@link PrequalOptions}, in one place. */
export const prequalDefaults = Object.freeze({
  poolSize: 16,
  probeRate: 3,
  maxProbeAgeMs: 1_000,
  maxReuse: 3,
  hotQuantile: 0.84,
  coldChoice: 'weighted',
  latencyExponent: 1,
  rifAging: false,
  hotThresholdOf: 'history',
  probePath: '/endpoint-load-metrics',
  probeTimeoutMs: 500,
  maxConcurrentProbes: 8,
});

/** Recent probe RIFs the hot threshold is a quantile of (the pool holds one per endpoint; the threshold needs more history). */
const RIF_HISTORY = 32;
/**
 * A probe target whose pool entry is younger than this fraction of
 * `maxProbeAgeMs` is not probed (the owed probe counts as done): the answers
 * of a busy client carry reports in-band, and probing what they just
 * refreshed cost the client CPU for nothing (balancer testbed, 8 clients:
 * client CPU 1.47× peak EWMA's without this; a quarter instead of a tenth
 * saved more CPU but let p99 slip, 1.10× against 1.00×).
 */
const FRESH_FRACTION = 0.1;
/** Latencies below this count as this, ms (the odds latency^−x stay finite). */
const MIN_LATENCY_MS = 0.01;

const optionNames = optionKeys<PrequalOptions>({
  poolSize: true, probeRate: true, maxProbeAgeMs: true, maxReuse: true, hotQuantile: true, coldChoice: true,
  probePath: true, probeTimeoutMs: true, maxConcurrentProbes: true, random: true, clock: true, latencyExponent: true, rifAging: true, hotThresholdOf: true,
});

const performanceClock = (): number => performance.now();

/** The `q`-quantile of the first `n` values of `sorted` (ascending), by linear interpolation. @internal */
export function quantile(sorted: Float64Array, n: number, q: number): number {
  if (n === 0) return Infinity;
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  const a = sorted[lo] ?? 0;
  return a + ((sorted[hi] ?? 0) - a) * (pos - lo);
}

/** Inserts `value` into the first `n` values of `sorted` (ascending), keeping them sorted: a pool is at most a few dozen. */
function insertSorted(sorted: Float64Array, n: number, value: number): void {
  let i = n;
  for (; i > 0 && (sorted[i - 1] as number) > value; i--) sorted[i] = sorted[i - 1] as number;
  sorted[i] = value;
}

/**
 * A Prequal-style probing balancer (Google, NSDI '24, "Load is not what you
 * should balance"): picks on what the servers say — their requests in flight
 * (RIF) and their latency at that load — from a small pool of recent probes,
 * with the hot–cold rule.
 *
 * - **Probes are asynchronous and reused.** Each pick asks for `probeRate`
 *   probes of random endpoints ({@link PickerProbing.targets}); the transport
 *   sends them (`GET probePath`) and hands back the answers, and an answer that
 *   carries a report in-band counts as a free probe, and a target whose pool
 *   entry is younger than a tenth of `maxProbeAgeMs` is not probed again. The pool keeps the newest
 *   probe per endpoint, at most `poolSize`; a probe is dropped when older than
 *   `maxProbeAgeMs`, after serving `maxReuse` picks, or when a later probe of
 *   its endpoint fails. Each pick it serves adds one to its RIF (the request
 *   just sent is in flight there now), and an endpoint's RIF is never taken
 *   below this client's own requests in flight there (a probe older than
 *   them says less than the client knows).
 * - **Hot–cold.** An endpoint is hot when its RIF exceeds the `hotQuantile`
 *   quantile of recently probed RIFs. Among cold endpoints, the faster wins:
 *   by default at random with odds latency^−`latencyExponent` (see
 *   `coldChoice` for why not strictly the lowest); when all are hot, the
 *   fewest RIF (ties at random).
 * - **Fallback.** With no usable probe in the pool (none yet, all aged out,
 *   the servers do not report), power-of-two-choices least-request on this
 *   client's own in-flight counts: a set that never answers probes behaves as
 *   under `leastRequest()`. An endpoint whose probe answers without a report
 *   gets its share by the same rule (a mixed fleet during a rollout).
 *
 * Explanations (`PickContext.signals`) name what decided: `probe-latency`
 * (hot–cold: a cold endpoint's latency), `probe-in-flight` (all hot: the
 * fewest RIF) or `in-flight` (the fallback).
 *
 * The picker is pure (no timers, no I/O). When the set of endpoints changes,
 * the new picker inherits the old one's probes of the endpoints still present
 * ({@link PickerProbing.inherit}); only those of removed endpoints are
 * dropped. `@proxyless/http-client` sends the probes.
 *
 * @example
 * ```ts
 * import { prequal } from '@proxyless/core';
 * import { createClient } from '@proxyless/http-client';
 * const client = createClient({ service: 'users', resolver, balancer: prequal({ probeRate: 2 }) });
 * ```
 */
export function prequal(options: PrequalOptions = {}): Balancer {
  checkOptions('prequal', options, optionNames);
  const d = prequalDefaults;
  const poolSize = checkNumber('poolSize', options.poolSize, d.poolSize, { integer: true, min: 1, max: 256 });
  const probeRate = checkNumber('probeRate', options.probeRate, d.probeRate, { min: 0, max: 16 });
  const maxAgeMs = checkNumber('maxProbeAgeMs', options.maxProbeAgeMs, d.maxProbeAgeMs, { min: 1, max: 600_000 });
  const maxReuse = checkNumber('maxReuse', options.maxReuse, d.maxReuse, { integer: true, min: 1, max: 1000 });
  const hotQuantile = checkNumber('hotQuantile', options.hotQuantile, d.hotQuantile, { min: 0, max: 1 });
  const coldChoice = options.coldChoice ?? d.coldChoice;
  if (coldChoice !== 'weighted' && coldChoice !== 'lowest') throw new InvalidOptionError('coldChoice', coldChoice, "must be 'weighted' or 'lowest'");
  const lowest = coldChoice === 'lowest';
  const latencyExponent = checkNumber('latencyExponent', options.latencyExponent, d.latencyExponent, { min: 0, max: 16 });
  const rifAging = options.rifAging ?? d.rifAging;
  if (typeof rifAging !== 'boolean') throw new InvalidOptionError('rifAging', rifAging, 'must be true or false');
  const thresholdOf = options.hotThresholdOf ?? d.hotThresholdOf;
  if (thresholdOf !== 'history' && thresholdOf !== 'pool') throw new InvalidOptionError('hotThresholdOf', thresholdOf, "must be 'history' or 'pool'");
  const path = options.probePath ?? d.probePath;
  if (typeof path !== 'string' || !/^\/[\x21-\x7E]*$/.test(path)) {
    throw new InvalidOptionError('probePath', path, "must be a path starting with '/' (printable ASCII)");
  }
  const settings: ProbeSettings = Object.freeze({
    path,
    timeoutMs: checkNumber('probeTimeoutMs', options.probeTimeoutMs, d.probeTimeoutMs, { integer: true, min: 1, max: 60_000 }),
    maxConcurrent: checkNumber('maxConcurrentProbes', options.maxConcurrentProbes, d.maxConcurrentProbes, { integer: true, min: 1, max: 1024 }),
  });
  const random = checkRandom('random', options.random);
  const clock = options.clock === undefined ? performanceClock : checkClock('clock', options.clock);
  const config: PoolConfig = { poolSize, probeRate, maxAgeMs, maxReuse, hotQuantile, lowest, latencyExponent, rifAging, poolThreshold: thresholdOf === 'pool', settings, random, clock };
  return {
    name: 'prequal',
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      if (endpoints.length === 0) return emptyPicker(endpoints);
      return new PrequalPicker(endpoints, config);
    },
  };
}

interface PoolConfig {
  readonly poolSize: number;
  readonly probeRate: number;
  readonly maxAgeMs: number;
  readonly maxReuse: number;
  readonly hotQuantile: number;
  /** `coldChoice: 'lowest'`. */
  readonly lowest: boolean;
  /** The weighted cold choice's odds: latency^−latencyExponent. */
  readonly latencyExponent: number;
  readonly rifAging: boolean;
  /** `hotThresholdOf: 'pool'`. */
  readonly poolThreshold: boolean;
  readonly settings: ProbeSettings;
  readonly random: RandomSource;
  readonly clock: () => number;
}

const fewerInFlight = (a: BalancerEndpoint, b: BalancerEndpoint): boolean => a.load.inFlight < b.load.inFlight;

/**
 * The picker and its probe pool: parallel typed arrays of at most `poolSize`
 * slots (endpoint index, RIF, latency, time, uses), one slot per endpoint.
 * @internal
 */
class PrequalPicker<E extends BalancerEndpoint> implements Picker<E>, PickerProbing<E> {
  readonly endpoints: readonly E[];
  readonly #c: PoolConfig;
  readonly #index = new Map<E, number>();
  // The pool.
  readonly #ep: Int32Array;
  readonly #rif: Float64Array;
  readonly #lat: Float64Array;
  readonly #at: Float64Array;
  readonly #uses: Int32Array;
  /** Each slot's RIF as the last pick read it (the weighted draw's second pass reads it again). */
  readonly #eff: Float64Array;
  /** The usable slots' RIFs, sorted, for the pool's threshold. */
  readonly #scratch: Float64Array;
  #size = 0;
  /** Endpoint index → its pool slot, or -1. */
  readonly #slotOf: Int32Array;
  // Recent probed RIFs (a ring) and their sorted copy, for the hot threshold.
  readonly #history = new Float64Array(RIF_HISTORY);
  readonly #sorted = new Float64Array(RIF_HISTORY);
  #historyLen = 0;
  #historyPos = 0;
  #threshold = Infinity;
  #thresholdStale = true;
  /** Probes owed: `probeRate` per pick, handed out by `targets()`, capped at the pool size. */
  #owed = 0;
  /** Endpoints whose probe answered without a report, as a swap-remove list with positions. */
  readonly #unreported: number[] = [];
  readonly #unreportedAt: Int32Array;
  /** A permutation of endpoint indices, shuffled in part by each `targets()` call (distinct targets, O(k)). */
  readonly #order: Int32Array;

  constructor(endpoints: readonly E[], config: PoolConfig) {
    this.endpoints = endpoints;
    this.#c = config;
    const n = endpoints.length;
    endpoints.forEach((e, i) => this.#index.set(e, i));
    const p = config.poolSize;
    this.#ep = new Int32Array(p);
    this.#rif = new Float64Array(p);
    this.#lat = new Float64Array(p);
    this.#at = new Float64Array(p);
    this.#uses = new Int32Array(p);
    this.#eff = new Float64Array(p);
    this.#scratch = new Float64Array(p);
    this.#slotOf = new Int32Array(n).fill(-1);
    this.#unreportedAt = new Int32Array(n).fill(-1);
    this.#order = Int32Array.from({ length: n }, (_, i) => i);
  }

  get probing(): PickerProbing<E> {
    return this;
  }

  get settings(): ProbeSettings {
    return this.#c.settings;
  }

  get poolSize(): number {
    return this.#size;
  }

  pick(context?: PickContext): E | undefined {
    const c = this.#c;
    this.#owed = Math.min(this.#owed + c.probeRate, Math.max(c.probeRate, c.poolSize));
    const now = c.clock();
    this.#ageOut(now);
    const excluding = context?.exclude;
    const exclude = hasExclude(excluding) ? excluding : undefined;
    const unreported = this.#unreported.length;
    // Endpoints that do not report get their share through least-request among themselves.
    if (unreported > 0 && c.random() * this.endpoints.length < unreported) {
      const e = this.#pickUnreported(exclude, context);
      if (e !== undefined) return e;
    }
    const slot = this.#hotCold(exclude, context, now);
    if (slot < 0) {
      context?.signals?.push('in-flight');
      return pickOfChoices(this.endpoints, c.random, 2, exclude, fewerInFlight, context?.candidates);
    }
    const e = this.endpoints[this.#ep[slot] as number] as E;
    // The request just sent is in flight there now; a probe serves `maxReuse` picks at most.
    const uses = (this.#uses[slot] as number) + 1;
    this.#uses[slot] = uses;
    if (uses >= c.maxReuse) this.#remove(slot);
    return e;
  }

  /** The hot–cold choice over the usable probes; the chosen slot, or -1 when none is usable. */
  #hotCold(exclude: ReadonlySet<BalancerEndpoint> | undefined, context: PickContext | undefined, now: number): number {
    const endpoints = this.endpoints;
    const random = this.#c.random;
    const lowest = this.#c.lowest;
    const poolThreshold = this.#c.poolThreshold;
    let usable = 0;
    // Each usable slot's RIF as this pick reads it (NaN: excluded or unavailable), kept sorted in the scratch for the pool's threshold.
    for (let s = 0; s < this.#size; s++) {
      const e = endpoints[this.#ep[s] as number] as E;
      if (e.available === false || (exclude !== undefined && exclude.has(e))) {
        this.#eff[s] = NaN;
        continue;
      }
      const rif = this.#effectiveRif(s, e, now);
      this.#eff[s] = rif;
      if (poolThreshold) insertSorted(this.#scratch, usable, rif);
      usable++;
    }
    if (usable === 0) return -1;
    const threshold = poolThreshold ? quantile(this.#scratch, usable, this.#c.hotQuantile) : this.#hotThreshold();
    // Cold: the odds (latency^−x) summed, and the lowest latency; hot: the fewest RIF, ties at random.
    let coldOdds = 0;
    let known = 0;
    let unknown = 0;
    let coldBest = -1;
    let anyCold = -1;
    let minRif = Infinity;
    let hotBest = -1;
    let ties = 0;
    for (let s = 0; s < this.#size; s++) {
      const rif = this.#eff[s] as number;
      if (Number.isNaN(rif)) continue;
      context?.candidates?.push(endpoints[this.#ep[s] as number] as E);
      if (rif <= threshold) {
        anyCold = s;
        const lat = this.#lat[s] as number;
        if (Number.isNaN(lat)) {
          unknown++;
          continue;
        }
        known++;
        coldOdds += this.#odds(lat);
        if (coldBest < 0 || lat < (this.#lat[coldBest] as number)) coldBest = s;
      } else if (rif < minRif) {
        minRif = rif;
        hotBest = s;
        ties = 1;
      } else if (rif === minRif && random() * ++ties < 1) hotBest = s;
    }
    if (anyCold < 0) {
      context?.signals?.push('probe-in-flight');
      return hotBest;
    }
    context?.signals?.push('probe-latency');
    if (lowest) return coldBest >= 0 ? coldBest : anyCold;
    // An endpoint without a latency yet gets the mean odds of those with one (neither favoured nor shunned).
    const unknownOdds = known > 0 ? coldOdds / known : 1;
    // A second pass over the cold ones: the slot where a uniform draw over the summed odds falls.
    let draw = random() * (coldOdds + unknown * unknownOdds);
    for (let s = 0; s < this.#size; s++) {
      const rif = this.#eff[s] as number;
      if (Number.isNaN(rif) || rif > threshold) continue;
      const lat = this.#lat[s] as number;
      draw -= Number.isNaN(lat) ? unknownOdds : this.#odds(lat);
      if (draw < 0) return s;
    }
    return anyCold; // rounding left the draw at the very end
  }

  /** Slot `s`'s RIF as this pick reads it: aged (`rifAging`), plus the picks it served, never below this client's own. */
  #effectiveRif(s: number, e: E, now: number): number {
    let rif = this.#rif[s] as number;
    if (this.#c.rifAging) {
      // Read only when aging: both are getters that do work (the report's A58 check, the estimate's decay).
      const rps = e.load.reported?.rps;
      const w = rps === undefined ? 0 : e.load.ewmaMs;
      if (w > 0) {
        const mean = ((rps as number) * w) / 1000;
        rif = mean + (rif - mean) * Math.exp(-(now - (this.#at[s] as number)) / w);
      }
    }
    return Math.max(rif + (this.#uses[s] as number), e.load.inFlight);
  }

  /** A cold endpoint's odds in the weighted choice: latency^−latencyExponent. */
  #odds(latencyMs: number): number {
    const x = this.#c.latencyExponent;
    const lat = Math.max(latencyMs, MIN_LATENCY_MS);
    return x === 1 ? 1 / lat : lat ** -x;
  }

  /** Least-request over two random endpoints that do not report; undefined when the draw finds none usable. */
  #pickUnreported(exclude: ReadonlySet<BalancerEndpoint> | undefined, context: PickContext | undefined): E | undefined {
    const list = this.#unreported;
    const random = this.#c.random;
    const usable = (i: number): E | undefined => {
      const e = this.endpoints[i] as E;
      return e.available === false || (exclude !== undefined && exclude.has(e)) ? undefined : e;
    };
    const a = usable(list[randomIndex(random, list.length)] as number);
    const b = usable(list[randomIndex(random, list.length)] as number);
    const best = a === undefined ? b : b === undefined || !fewerInFlight(b, a) ? a : b;
    if (best !== undefined) {
      context?.signals?.push('in-flight');
      if (a !== undefined) context?.candidates?.push(a);
      if (b !== undefined && b !== a) context?.candidates?.push(b);
    }
    return best;
  }

  /** The `hotQuantile` of the recent RIFs, sorted again only after new probes arrived. */
  #hotThreshold(): number {
    if (this.#thresholdStale) {
      const n = this.#historyLen;
      const sorted = this.#sorted;
      sorted.set(this.#history);
      sorted.subarray(0, n).sort();
      this.#threshold = quantile(sorted, n, this.#c.hotQuantile);
      this.#thresholdStale = false;
    }
    return this.#threshold;
  }

  #ageOut(nowMs: number): void {
    const oldest = nowMs - this.#c.maxAgeMs;
    for (let s = this.#size - 1; s >= 0; s--) if ((this.#at[s] as number) < oldest) this.#remove(s);
  }

  /** Removes a slot (the last one moves into it). */
  #remove(s: number): void {
    const last = --this.#size;
    this.#slotOf[this.#ep[s] as number] = -1;
    if (s !== last) {
      const moved = this.#ep[last] as number;
      this.#ep[s] = moved;
      this.#rif[s] = this.#rif[last] as number;
      this.#lat[s] = this.#lat[last] as number;
      this.#at[s] = this.#at[last] as number;
      this.#uses[s] = this.#uses[last] as number;
      this.#slotOf[moved] = s;
    }
  }

  targets(max: number): E[] {
    const n = this.endpoints.length;
    const k = Math.min(Math.floor(this.#owed), Math.floor(max), n);
    if (!(k > 0)) return [];
    const out: E[] = [];
    const order = this.#order;
    // A target whose pool entry is this fresh needs no probe: an answer's in-band report refreshed it (a free probe).
    const freshSince = this.#c.clock() - this.#c.maxAgeMs * FRESH_FRACTION;
    let fresh = 0;
    // A partial Fisher–Yates shuffle: distinct endpoints, uniformly; unavailable ones are skipped (and cost no probe).
    for (let j = 0; j < n && out.length + fresh < k; j++) {
      const r = j + randomIndex(this.#c.random, n - j);
      const pick = order[r] as number;
      order[r] = order[j] as number;
      order[j] = pick;
      const e = this.endpoints[pick] as E;
      if (e.available === false) continue;
      const slot = this.#slotOf[pick] as number;
      if (slot >= 0 && (this.#at[slot] as number) >= freshSince) fresh++;
      else out.push(e);
    }
    this.#owed -= out.length + fresh;
    return out;
  }

  result(endpoint: E, result: ProbeResult | undefined): void {
    const i = this.#index.get(endpoint);
    if (i === undefined) return; // an endpoint of an older picker
    if (result === undefined || !(result.rif >= 0) || !Number.isFinite(result.rif)) {
      this.#markUnreported(i, true);
      this.failed(endpoint);
      return;
    }
    this.#markUnreported(i, false);
    const rif = result.rif;
    const lat = result.latencyMs;
    this.#history[this.#historyPos] = rif;
    this.#historyPos = (this.#historyPos + 1) % RIF_HISTORY;
    if (this.#historyLen < RIF_HISTORY) this.#historyLen++;
    this.#thresholdStale = true;
    const now = this.#c.clock();
    let s = this.#slotOf[i] as number;
    if (s < 0) {
      if (this.#size === this.#c.poolSize) this.#remove(this.#oldestSlot());
      s = this.#size++;
      this.#ep[s] = i;
      this.#slotOf[i] = s;
    }
    this.#rif[s] = rif;
    // NaN: no latency yet (a new server, or one idle long enough to have none); see #hotCold.
    this.#lat[s] = lat !== undefined && lat >= 0 && Number.isFinite(lat) ? lat : NaN;
    this.#at[s] = now;
    this.#uses[s] = 0;
  }

  failed(endpoint: E): void {
    const i = this.#index.get(endpoint);
    if (i === undefined) return;
    const s = this.#slotOf[i] as number;
    if (s >= 0) this.#remove(s);
  }

  /**
   * Takes over the probes of `previous` (a picker of the same `prequal()`
   * value, or a group of them, as `locality()` builds) for the endpoints this
   * picker holds too, with their ages and uses; the RIF history, the probes
   * owed and the endpoints known not to report carry over as well. Where
   * several old pickers probed one endpoint, the newest probe wins.
   */
  inherit(previous: PickerProbing<E>): void {
    const sources = previous instanceof ProbingGroup ? previous.parts : [previous];
    const map = this.#matcher();
    let first = true;
    for (const src of sources) {
      if (!(src instanceof PrequalPicker) || src === this || src.#c !== this.#c) continue;
      if (first) {
        first = false;
        this.#history.set(src.#history);
        this.#historyLen = src.#historyLen;
        this.#historyPos = src.#historyPos;
        this.#thresholdStale = true;
        this.#owed = Math.max(this.#owed, src.#owed);
      }
      for (const j of src.#unreported) {
        const i = map(src.endpoints[j] as BalancerEndpoint);
        if (i >= 0) this.#markUnreported(i, true);
      }
      for (let t = 0; t < src.#size; t++) {
        const i = map(src.endpoints[src.#ep[t] as number] as BalancerEndpoint);
        if (i < 0) continue; // a removed endpoint: its probe goes with it
        const at = src.#at[t] as number;
        let s = this.#slotOf[i] as number;
        if (s >= 0 && (this.#at[s] as number) >= at) continue;
        if (s < 0) {
          if (this.#size === this.#c.poolSize) {
            const oldest = this.#oldestSlot();
            if ((this.#at[oldest] as number) >= at) continue;
            this.#remove(oldest);
          }
          s = this.#size++;
          this.#ep[s] = i;
          this.#slotOf[i] = s;
        }
        this.#rif[s] = src.#rif[t] as number;
        this.#lat[s] = src.#lat[t] as number;
        this.#at[s] = at;
        this.#uses[s] = src.#uses[t] as number;
      }
    }
  }

  /**
   * Finds an old picker's endpoint in this one: the same object (a transport
   * that keeps its endpoints, as http-client does), else the same instance key
   * at the same address and port (one that wraps them anew); -1 when gone.
   */
  #matcher(): (e: BalancerEndpoint) => number {
    let byKey: Map<string, number> | undefined;
    return (e) => {
      const i = this.#index.get(e as E);
      if (i !== undefined) return i;
      if (byKey === undefined) {
        byKey = new Map();
        this.endpoints.forEach((x, k) => byKey?.set(x.instance.key, k));
      }
      const k = byKey.get(e.instance.key);
      if (k === undefined) return -1;
      const mine = (this.endpoints[k] as E).instance;
      return mine.address === e.instance.address && mine.port === e.instance.port ? k : -1;
    };
  }

  #oldestSlot(): number {
    let oldest = 0;
    for (let s = 1; s < this.#size; s++) if ((this.#at[s] as number) < (this.#at[oldest] as number)) oldest = s;
    return oldest;
  }

  #markUnreported(i: number, on: boolean): void {
    const at = this.#unreportedAt[i] as number;
    if (on === at >= 0) return;
    const list = this.#unreported;
    if (on) {
      this.#unreportedAt[i] = list.length;
      list.push(i);
      return;
    }
    const last = list.pop() as number;
    if (last !== i) {
      list[at] = last;
      this.#unreportedAt[last] = at;
    }
    this.#unreportedAt[i] = -1;
  }
}
