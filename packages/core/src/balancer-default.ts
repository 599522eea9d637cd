import type { Balancer, BalancerEndpoint, PickContext, Picker, PickerProbing, ProbeResult, ProbeSettings } from './balancer.js';
import { checkClock, emptyPicker, ProbingGroup } from './balancer-util.js';
import { peakEwma, type PeakEwmaOptions } from './balancer-peak-ewma.js';
import { prequal, type PrequalOptions } from './balancer-prequal.js';
import { InvalidOptionError } from './errors.js';
import { checkOptions, optionKeys } from './validate.js';

/** Options of {@link defaultBalancer}. */
export interface DefaultBalancerOptions {
  /** Options of the peak EWMA used while some available endpoint does not report its load. */
  peakEwma?: PeakEwmaOptions;
  /**
   * Options of the Prequal picker used while every available endpoint
   * reports; the defaults of {@link defaultBalancerPrequal} apply first.
   * `false`: never switch (plain `peakEwma()`).
   */
  prequal?: PrequalOptions | false;
  /** Clock for the every-endpoint-reports check, ms. Default `performance.now()`. */
  clock?: () => number;
}

/**
 * The Prequal settings {@link defaultBalancer} starts from, measured on the
 * balancer testbed (bench/README.md): hot above the **median** probed
 * requests in flight (the paper's 0.84 quantile spread the load no better
 * than peak EWMA; the median brought per-backend utilisation max/avg from
 * 1.13 to 1.09), and **half a probe per pick** (answers carry reports
 * in-band, free probes; 3 per pick cost 2× the client CPU of peak EWMA for
 * the same p99 and spread, 0.5 costs 1.3–1.4×).
 */
export const defaultBalancerPrequal: Readonly<PrequalOptions> = Object.freeze({ hotQuantile: 0.5, probeRate: 0.5 });

/** How often the picker checks again whether every available endpoint reports, ms. */
const REPORTING_CHECK_MS = 250;

const performanceClock = (): number => performance.now();

/** No probe targets (while on peak EWMA): one shared empty list, no allocation per pick. */
const NO_TARGETS: readonly never[] = Object.freeze([]);

/**
 * The `@proxyless/http-client` default: **peak EWMA** ({@link peakEwma}) for
 * as long as some available endpoint does not report its load, and
 * **Prequal probing** ({@link prequal}, hot above the median requests in
 * flight) while every available endpoint does — that is, once the servers run
 * `@proxyless/load-report` and their reports are usable (gRPC A58: after 10 s
 * of reports, until 3 min without one).
 *
 * - Endpoints that never report are balanced exactly as by `peakEwma()`, and
 *   are never probed: one such endpoint in the set keeps the whole set on
 *   peak EWMA (a rollout of the reporter switches when it is complete).
 * - While on peak EWMA the Prequal side still hears every report the answers
 *   carry in-band, so its probe pool is warm when the set switches.
 * - Whether every endpoint reports is checked at most every 250 ms.
 *
 * Why: on the balancer testbed (12 backends whose capacity changes, 8
 * clients each seeing an eighth of the traffic) Prequal with the median
 * threshold had p99 0.85–0.88× peak EWMA's and utilisation max/avg 1.08
 * (peak EWMA 1.18); servers that do not report gain nothing from probes and
 * would only answer them with 404s. Explanations name the signal of the side
 * that picked (`probe-latency`, `probe-in-flight`, `in-flight`, `latency`).
 *
 * @example
 * ```ts
 * import { defaultBalancer } from '@proxyless/core';
 * import { createClient } from '@proxyless/http-client';
 * // what the client does without a balancer option, with a lower probe rate:
 * const client = createClient({ service: 'users', resolver, balancer: defaultBalancer({ prequal: { probeRate: 1 } }) });
 * ```
 */
export function defaultBalancer(options: DefaultBalancerOptions = {}): Balancer {
  checkOptions('defaultBalancer', options, optionKeys<DefaultBalancerOptions>({ peakEwma: true, prequal: true, clock: true }));
  const ewma = peakEwma(options.peakEwma);
  const prequalOptions: unknown = options.prequal;
  if (prequalOptions === false) return ewma;
  if (prequalOptions !== undefined && (typeof prequalOptions !== 'object' || prequalOptions === null)) {
    throw new InvalidOptionError('prequal', prequalOptions, 'must be prequal() options or false');
  }
  const probing = prequal({ ...defaultBalancerPrequal, ...(prequalOptions as PrequalOptions | undefined) });
  const clock = options.clock === undefined ? performanceClock : checkClock('clock', options.clock);
  return {
    name: 'peak-ewma+prequal',
    // Peak EWMA's cost, what decides while not every endpoint reports; while probing, the pick's signal names what decided.
    ...(ewma.score === undefined ? {} : { score: ewma.score.bind(ewma) }),
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      if (endpoints.length === 0) return emptyPicker(endpoints);
      return new DefaultPicker(ewma.createPicker(endpoints), probing.createPicker(endpoints), clock);
    },
  };
}

/**
 * Peak EWMA or Prequal, by whether every available endpoint reports; its
 * probing side is Prequal's, silent (no targets) while on peak EWMA.
 * @internal
 */
class DefaultPicker<E extends BalancerEndpoint> implements Picker<E>, PickerProbing<E> {
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
    const parts = (previous instanceof ProbingGroup ? previous.parts : [previous]).map((p) => (p instanceof DefaultPicker ? (p.#probing as PickerProbing<E>) : p));
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
