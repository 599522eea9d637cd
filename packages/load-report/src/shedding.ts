/**
 * Prioritised load shedding (Netflix, "Enhancing Netflix Reliability with
 * Service-Level Prioritized Load Shedding", 2024): when the process is
 * overloaded, turn away lower-priority requests first, before the handler
 * runs, so the work that matters keeps its availability.
 *
 * One number says how loaded the process is, the **pressure**: the larger of
 * requests in flight ÷ `inFlightLimit` and the event-loop delay of the last
 * window ÷ `eventLoopDelayMs` (1 = at the limit). Each priority has a
 * progressive band of pressure (Netflix's per-bucket utilisation thresholds):
 * below its start nothing of it is shed, above its end all of it is, in between
 * a share rising linearly. Bands are ordered, so at any pressure a more
 * important priority is shed no more than a less important one.
 * @module
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { InvalidOptionError, defaultRequestPriority, requestPriorities, type RequestPriority } from '@proxyless/core';
import { checkNumber, checkOptions, optionKeys } from '@proxyless/core/internal';

/** Options of the reporter's shedding (`new LoadReporter({ shedding: { … } })`); every one has a default ({@link sheddingDefaults}). */
export interface SheddingOptions {
  /**
   * Requests in flight at which the process counts as fully loaded
   * (pressure 1: `high` starts to be shed here; `normal` is shed from 70 % of it, entirely from 90 %).
   * 1–1,000,000. Default 1,000: a bound on memory and queueing for a handler
   * that awaits slow I/O, which event-loop delay does not see.
   */
  inFlightLimit?: number;
  /**
   * Mean event-loop delay over the reporter's window, in ms, at which the
   * process counts as fully loaded (1–10,000), or `false` to use requests in
   * flight alone. Default 50: an idle loop shows under 2 ms, a loop that runs
   * ~30 ms of work between turns ~20 ms (measured with
   * `monitorEventLoopDelay`); delay, not utilisation, because a loop can be
   * 95 % busy and still answer at once, while delay is time requests wait.
   * Read once per window (`windowMs`), so it reacts within a window;
   * requests in flight react at once.
   */
  eventLoopDelayMs?: number | false;
  /** The `Retry-After` of a shed answer, in whole seconds (1–3,600). Default 1. */
  retryAfterSeconds?: number;
  /** The priority of a request without `x-proxyless-priority`, or with a value not in `requestPriorities`. Default `'normal'`. */
  defaultPriority?: RequestPriority;
}

/** Every default of {@link SheddingOptions}, in one place. */
export const sheddingDefaults: Readonly<Required<SheddingOptions>> = Object.freeze({
  inFlightLimit: 1000,
  eventLoopDelayMs: 50,
  retryAfterSeconds: 1,
  defaultPriority: defaultRequestPriority,
});

/**
 * Each priority's band of pressure, by level (0 `critical` … 4 `background`):
 * shedding of that priority starts at `start` and is total at `end`. Ordered
 * so a more important priority's band is never below a less important one's
 * (the decision is monotone in priority). Low priorities are all shed by
 * 0.65 and `high` starts at 1: the gap is room for bursts of high-priority
 * work while a spike of low-priority work fills the rest. A shed high-priority
 * request usually fails: the client's retry budget is spent on the shed
 * low-priority ones (bench/priority-shedding.bench.ts measured 96–97.5 %
 * high-priority success with a gap of 2–5 requests, 100 % with 10).
 * `critical` is shed only at twice the limits: a bound, so not even critical
 * work can grow the queue without end.
 */
export const sheddingBands: readonly Readonly<{ start: number; end: number }>[] = Object.freeze([
  Object.freeze({ start: 2, end: 3 }), // critical
  Object.freeze({ start: 1, end: 1.5 }), // high
  Object.freeze({ start: 0.7, end: 0.9 }), // normal
  Object.freeze({ start: 0.5, end: 0.65 }), // low
  Object.freeze({ start: 0.35, end: 0.5 }), // background
]);

/** Below this pressure nothing is shed, and the request's priority is not even read. */
const firstStart = Math.min(...sheddingBands.map((b) => b.start));

/**
 * The share of requests of priority `level` (0 `critical` … 4 `background`)
 * shed at `pressure`: 0 below the band, 1 above it, linear in between.
 */
export function shedShare(level: number, pressure: number): number {
  const band = sheddingBands[level];
  if (band === undefined) return level < 0 ? 0 : 1;
  if (pressure < band.start) return 0;
  if (pressure >= band.end) return 1;
  return (pressure - band.start) / (band.end - band.start);
}

/**
 * Is a request of priority `level` shed at `pressure`, given `draw` uniform
 * in [0, 1)? One draw per request, so that with the same draw and pressure a
 * more important priority is never shed when a less important one is admitted.
 */
export function shouldShed(level: number, pressure: number, draw: number): boolean {
  return draw < shedShare(level, pressure);
}

const optionNames = optionKeys<SheddingOptions>({ inFlightLimit: true, eventLoopDelayMs: true, retryAfterSeconds: true, defaultPriority: true });

// The delay histogram's sampling period: its intervals are this plus the delay, so the delay is the mean minus it.
const delayResolutionMs = 10;

/**
 * The reporter's shedding state: options, the event-loop delay monitor,
 * the pressure from delay (per window), and the counts of shed requests.
 * @internal
 */
export class Shedder {
  readonly options: Readonly<Required<SheddingOptions>>;
  readonly defaultLevel: number;
  /** Requests shed, by level (0 critical … 4 background). */
  readonly shed = [0, 0, 0, 0, 0];
  /** Pressure from the last window's event-loop delay. */
  delayPressure = 0;
  /** The last window's mean event-loop delay, ms. */
  delayMs = 0;
  readonly #histogram: IntervalHistogram | undefined;
  readonly #retryAfter: string;

  constructor(options: SheddingOptions | true) {
    const o = options === true ? {} : options;
    checkOptions('shedding', o, optionNames);
    const d = sheddingDefaults;
    const inFlightLimit = checkNumber('shedding.inFlightLimit', o.inFlightLimit, d.inFlightLimit, { integer: true, min: 1, max: 1_000_000 });
    const eventLoopDelayMs = o.eventLoopDelayMs === false ? false : checkNumber('shedding.eventLoopDelayMs', o.eventLoopDelayMs, d.eventLoopDelayMs as number, { min: 1, max: 10_000 });
    const retryAfterSeconds = checkNumber('shedding.retryAfterSeconds', o.retryAfterSeconds, d.retryAfterSeconds, { integer: true, min: 1, max: 3600 });
    const defaultPriority = o.defaultPriority ?? d.defaultPriority;
    this.defaultLevel = requestPriorities.indexOf(defaultPriority);
    if (this.defaultLevel < 0) {
      throw new InvalidOptionError('shedding.defaultPriority', defaultPriority, `must be one of ${requestPriorities.map((p) => `'${p}'`).join(', ')}`);
    }
    this.options = Object.freeze({ inFlightLimit, eventLoopDelayMs, retryAfterSeconds, defaultPriority });
    this.#retryAfter = String(retryAfterSeconds);
    if (eventLoopDelayMs !== false) {
      // Node's delay monitor runs on its own unref'd libuv timer: it keeps no process alive.
      this.#histogram = monitorEventLoopDelay({ resolution: delayResolutionMs });
      this.#histogram.enable();
    }
  }

  /** `Retry-After` of a shed answer. */
  get retryAfter(): string {
    return this.#retryAfter;
  }

  /** The pressure for a request arriving with `inFlight` others in flight. */
  pressure(inFlight: number): number {
    const p = inFlight / this.options.inFlightLimit;
    return p > this.delayPressure ? p : this.delayPressure;
  }

  /** Could anything be shed at this pressure (else the request's priority is not read)? */
  static mayShed(pressure: number): boolean {
    return pressure >= firstStart;
  }

  /**
   * Ends a window: the pressure from its mean event-loop delay, or from how
   * late the window's own timer fired (`lateMs`) when that is larger. A loop
   * blocked longer than a window gives the delay monitor no turn to record
   * in it, so the histogram alone read such a window as idle: after 350 ms
   * blocks, every other window showed pressure 0.
   */
  sample(lateMs = 0): void {
    const h = this.#histogram;
    const limit = this.options.eventLoopDelayMs;
    if (h === undefined || limit === false) return;
    const mean = h.count === 0 ? 0 : h.mean / 1e6 - delayResolutionMs;
    this.delayMs = Math.max(0, mean, lateMs);
    this.delayPressure = this.delayMs / limit;
    h.reset();
  }

  /** Stops the delay monitor. */
  close(): void {
    this.#histogram?.disable();
  }
}
