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
 * balancer testbed (bench/README.md): hot above the **median** probed
 * requests in flight (the paper's 0.84 quantile spread the load no better
 * than peak EWMA; the median brought per-backend utilisation max/avg from
 * 1.13 to 1.09), and **half a probe per pick** (answers carry reports
 * in-band, free probes; 3 per pick cost 2× the client CPU of peak EWMA for
 * the same p99 and spread).
 */
export const prequalWhenReportedDefaults: Readonly<PrequalOptions> = Object.freeze({ hotQuantile: 0.5, probeRate: 0.5 });

/** How often the picker checks again whether every available endpoint reports, ms. */
const REPORTING_CHECK_MS = 250;

const performanceClock = (): number => performance.now();

/** No probe targets (while on peak EWMA): one shared empty list, no allocation per pick. */
const NO_TARGETS: readonly never[] = Object.freeze([]);

/**
 * **Peak EWMA** ({@link peakEwma}) for as long as some available endpoint
 * does not report its load, and **Prequal probing** ({@link prequal}, hot
 * above the median requests in flight, half a probe per pick) while every
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
 * When to use it (balancer testbed, quiet machine, bench/README.md): a fleet
 * where each client sends a small share of a service's traffic. With 8
 * clients it evened the servers' utilisation (max/avg 1.09 against peak
 * EWMA's 1.17–1.18) at the same p99 (0.88–1.10×) and a 3–5 % lower p50. It is
 * not the http-client's default because a client that sends all of a
 * service's traffic already knows every server's queue: alone, peak EWMA's
 * p99 was 9–17 % lower. Explanations name the signal of the side that picked
 * (`probe-latency`, `probe-in-flight`, `in-flight`, `latency`).
 *
 * @example
 * ```ts
 * import { prequalWhenReported } from '@proxyless/core';
 * import { createClient } from '@proxyless/http-client';
 * // one client of many in front of servers that run @proxyless/load-report:
 * const client = createClient({ service: 'users', resolver, balancer: prequalWhenReported() });
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
