import type { Balancer, BalancerEndpoint, PickContext, Picker, PickerProbing, ProbeResult, ProbeSettings } from './balancer.js';
import { checkClock, emptyPicker, ProbingGroup } from './balancer-util.js';
import { peakEwma, type PeakEwmaOptions } from './balancer-peak-ewma.js';
import { prequal, type PrequalOptions } from './balancer-prequal.js';
import { InvalidOptionError } from './errors.js';
import { checkOptions, optionKeys } from './validate.js';

/** Options of {@link prequalWhenReported}. */
export interface PrequalWhenReportedOptions {
  /** Options of the peak EWMA used while some available endpoint does not report its load. */
  peakEwma?: PeakEwmaOptions;
  /**
   * Options of the Prequal picker used while every available endpoint
   * reports; the defaults of {@link prequalWhenReportedDefaults} apply first.
   * `false`: never switch (plain `peakEwma()`).
   */
  prequal?: PrequalOptions | false;
  /** Clock for the every-endpoint-reports check, ms. Default `performance.now()`. */
  clock?: () => number;
}

/**
 * The Prequal settings {@link prequalWhenReported} starts from, measured on the
 * balancer testbed (bench/README.md, 8 clients, 12 backends whose capacity
 * drops by half in turns):
 *
 * - hot above the **median** requests in flight (the paper's 0.84 quantile
 *   spread the load no better than peak EWMA);
 * - the threshold taken from **the pool's** counts as each pick reads them,
 *   and each count **aged** toward its server's mean (`hotThresholdOf:
 *   'pool'`, `rifAging`): without them a backend at half its capacity kept its
 *   full share, saturated, because a count taken as its queue drained said
 *   "idle" to every client at once, and most picks found every endpoint hot
 *   and chose by count alone, blind to latency;
 * - cold odds latency^−**3** (`latencyExponent`): 1 left a backend at twice
 *   the latency half a share; 4 cut p99 further but left the slowed backends
 *   so idle that utilisation max/avg rose past 1.10;
 * - **2 probes per pick**: ½ (answers carry reports in-band) cost less CPU
 *   for a p99 about 5 % higher.
 */
export const prequalWhenReportedDefaults: Readonly<PrequalOptions> = Object.freeze({
  hotQuantile: 0.5,
  probeRate: 2,
  latencyExponent: 3,
  rifAging: true,
  hotThresholdOf: 'pool',
});

/** How often the picker checks again whether every available endpoint reports, ms. */
const REPORTING_CHECK_MS = 250;

const performanceClock = (): number => performance.now();

/** No probe targets (while on peak EWMA): one shared empty list, no allocation per pick. */
const NO_TARGETS: readonly never[] = Object.freeze([]);

/**
 * **Peak EWMA** ({@link peakEwma}) for as long as some available endpoint
 * does not report its load, and **Prequal probing** ({@link prequal}, with
 * {@link prequalWhenReportedDefaults}) while every
 * available endpoint does — that is, once the servers run
 * `@proxyless/load-report` and their reports are usable (gRPC A58: after 10 s
 * of reports, until 3 min without one).
 *
 * - Endpoints that never report are balanced exactly as by `peakEwma()`, and
 *   are never probed: one such endpoint in the set keeps the whole set on
 *   peak EWMA (a rollout of the reporter switches when it is complete).
 * - While on peak EWMA the Prequal side still hears every report the answers
 *   carry in-band, so its probe pool is warm when the set switches.
 * - Whether every endpoint reports is checked at most every 250 ms, and at
 *   once after an availability change.
 *
 * The http-client's default balancer. Measured (balancer testbed, quiet
 * machine, bench/README.md: 12 backends, a quarter at half capacity in
 * turns): with 8 clients p99 0.59–0.75× peak EWMA's, per-second utilisation
 * max/avg 1.10–1.13 against 1.18–1.20; one client alone, p99 0.93–0.99×; client
 * CPU 1.3–1.6× peak EWMA's. Explanations name the signal of the side that picked
 * (`probe-latency`, `probe-in-flight`, `in-flight`, `latency`).
 *
 * @example
 * ```ts
 * import { prequalWhenReported } from '@proxyless/core';
 * import { createClient } from '@proxyless/http-client';
 * // the default; spelled out to change its Prequal settings:
 * const client = createClient({ service: 'users', resolver, balancer: prequalWhenReported({ prequal: { probeRate: 0.5 } }) });
 * ```
 */
export function prequalWhenReported(options: PrequalWhenReportedOptions = {}): Balancer {
  checkOptions('prequalWhenReported', options, optionKeys<PrequalWhenReportedOptions>({ peakEwma: true, prequal: true, clock: true }));
  const ewma = peakEwma(options.peakEwma);
  const prequalOptions: unknown = options.prequal;
  if (prequalOptions === false) return ewma;
  if (prequalOptions !== undefined && (typeof prequalOptions !== 'object' || prequalOptions === null)) {
    throw new InvalidOptionError('prequal', prequalOptions, 'must be prequal() options or false');
  }
  const probing = prequal({ ...prequalWhenReportedDefaults, ...(prequalOptions as PrequalOptions | undefined) });
  const clock = options.clock === undefined ? performanceClock : checkClock('clock', options.clock);
  return {
    name: 'prequal-when-reported',
    // Peak EWMA's cost, what decides while not every endpoint reports; while probing, the pick's signal names what decided.
    ...(ewma.score === undefined ? {} : { score: ewma.score.bind(ewma) }),
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      if (endpoints.length === 0) return emptyPicker(endpoints);
      return new PrequalWhenReportedPicker(ewma.createPicker(endpoints), probing.createPicker(endpoints), clock);
    },
  };
}

/**
 * Peak EWMA or Prequal, by whether every available endpoint reports; its
 * probing side is Prequal's, silent (no targets) while on peak EWMA.
 * @internal
 */
class PrequalWhenReportedPicker<E extends BalancerEndpoint> implements Picker<E>, PickerProbing<E> {
  readonly endpoints: readonly E[];
  readonly #ewma: Picker<E>;
  readonly #prequal: Picker<E>;
  readonly #probing: PickerProbing<E>;
  readonly #clock: () => number;
  #reporting = false;
  #checkedAt = -Infinity;

  constructor(ewma: Picker<E>, probingPicker: Picker<E>, clock: () => number) {
    this.endpoints = ewma.endpoints;
    this.#ewma = ewma;
    this.#prequal = probingPicker;
    this.#probing = probingPicker.probing as PickerProbing<E>;
    this.#clock = clock;
  }

  /** Whether the Prequal side picks now (every available endpoint reports). */
  get reporting(): boolean {
    const now = this.#clock();
    if (now - this.#checkedAt >= REPORTING_CHECK_MS) {
      this.#checkedAt = now;
      this.#reporting = everyAvailableReports(this.endpoints);
    }
    return this.#reporting;
  }

  pick(context?: PickContext): E | undefined {
    return this.reporting ? this.#prequal.pick(context) : this.#ewma.pick(context);
  }

  availabilityChanged(): void {
    this.#ewma.availabilityChanged?.();
    this.#prequal.availabilityChanged?.();
    this.#checkedAt = -Infinity; // an endpoint left or came back: check again at the next pick
  }

  get probing(): PickerProbing<E> {
    return this;
  }

  get settings(): ProbeSettings {
    return this.#probing.settings;
  }

  get poolSize(): number {
    return this.#probing.poolSize;
  }

  targets(max: number): E[] {
    return this.#reporting ? this.#probing.targets(max) : (NO_TARGETS as unknown as E[]);
  }

  result(endpoint: E, result: ProbeResult | undefined): void {
    this.#probing.result(endpoint, result);
  }

  failed(endpoint: E): void {
    this.#probing.failed(endpoint);
  }

  /** Hands the Prequal side what the previous picker's Prequal side learnt (unwrapping groups and default pickers). */
  inherit(previous: PickerProbing<E>): void {
    const parts = (previous instanceof ProbingGroup ? previous.parts : [previous]).map((p) => (p instanceof PrequalWhenReportedPicker ? (p.#probing as PickerProbing<E>) : p));
    this.#probing.inherit?.(parts.length === 1 ? (parts[0] as PickerProbing<E>) : new ProbingGroup(parts));
  }
}

/** Whether every available endpoint has a usable report with its requests in flight (and at least one is available). */
function everyAvailableReports(endpoints: readonly BalancerEndpoint[]): boolean {
  let available = 0;
  for (const e of endpoints) {
    if (e.available === false) continue;
    if (e.load.reported?.rif === undefined) return false;
    available++;
  }
  return available > 0;
}
