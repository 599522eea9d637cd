/**
 * The reporter's state: requests in flight, a latency estimate per load,
 * completions and errors per second, event-loop utilisation, heap use, and
 * what the application sets. Read first; the adapters (node-http, fastify,
 * express) only feed it and write its report.
 * @module
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { InvalidOptionError, formatLoadReport, isLoadReportKey, loadReportLimits, loadReportMetricNames, requestPriorities, type LoadReport, type LoadReportFormat, type RequestPriority } from '@proxyless/core';
import { checkNumber, checkOptions, optionKeys } from '@proxyless/core/internal';
import { Shedder, type SheddingOptions } from './shedding.js';

/** Options of {@link LoadReporter}; every one has a default ({@link loadReporterDefaults}). */
export interface LoadReporterOptions {
  /**
   * The window over which event-loop utilisation, heap use, requests and
   * errors per second are measured, in ms (100–60,000). One unref'd timer
   * samples them at this period. Default 1,000.
   */
  windowMs?: number;
  /** The form written when the request does not ask for one (`endpoint-load-metrics-format`). Default `'TEXT'`. */
  format?: LoadReportFormat;
  /**
   * Write the header only on responses to requests that ask for it with
   * `endpoint-load-metrics-format: text|json` (as vLLM and Triton do). Default
   * `false`: every response carries it, as gRPC's per-query reports do
   * (gRFC A51: no negotiation) and as Envoy's client-side WRR needs (it never asks).
   */
  onlyWhenAsked?: boolean;
  /**
   * The probe path: a `GET` or `HEAD` of it is answered with the current
   * report (header, and for `GET` the JSON body) without running the
   * application's handler and without counting as a request (the "HTTP
   * GET/HEAD out-of-band endpoint" the ORCA specification proposes). `false`:
   * no probe. Default `'/endpoint-load-metrics'`.
   */
  probePath?: string | false;
  /** A response with a status this function accepts counts as an error (`eps`). Default: status ≥ 500. */
  isError?: (statusCode: number) => boolean;
  /**
   * Prioritised load shedding, off by default (`false`): `true` or options
   * turn it on. When the process is overloaded (requests in flight, event-loop
   * delay; see {@link SheddingOptions}), requests are turned away before the
   * handler runs, lowest priority first (`x-proxyless-priority`:
   * `background`, `low`, `normal`, `high`, `critical`), with `503`,
   * `Retry-After`, `x-proxyless-shed: <priority>` and the load report. Shed
   * requests are not counted as requests (`rif`, `rps_fractional`, `eps`);
   * {@link LoadReporter.sheddingStats} counts them.
   */
  shedding?: SheddingOptions | boolean;
}

/** What {@link LoadReporter.sheddingStats} returns. */
export interface SheddingStats {
  /** The pressure now (1 = at a limit): the larger of requests in flight ÷ `inFlightLimit` and the last window's event-loop delay ÷ `eventLoopDelayMs`. */
  pressure: number;
  /** The last window's mean event-loop delay, ms (0 when `eventLoopDelayMs` is `false`). */
  eventLoopDelayMs: number;
  /** Requests shed since the reporter started, by priority. */
  shed: Record<RequestPriority, number>;
}

/** Every default of {@link LoadReporterOptions}, in one place. */
export const loadReporterDefaults: Readonly<Required<LoadReporterOptions>> = Object.freeze({
  windowMs: 1000,
  format: 'TEXT',
  onlyWhenAsked: false,
  probePath: '/endpoint-load-metrics',
  isError: (statusCode: number): boolean => statusCode >= 500,
  shedding: false,
});

const optionNames = optionKeys<LoadReporterOptions>({ windowMs: true, format: true, onlyWhenAsked: true, probePath: true, isError: true, shedding: true });

/**
 * The named metrics the reporter writes itself; the application cannot set
 * them (a duplicate key would make every reader reject the report). The
 * same object as core's `loadReportMetricNames`, which clients read by.
 */
export const reporterMetricNames = loadReportMetricNames;
const reserved = new Set<string>(Object.values(reporterMetricNames));

// Latency per load: one estimate per requests-in-flight count up to this, the rest share the last.
const latencyBuckets = 64;
// An estimate older than this many windows no longer says what the current load costs.
const latencyMaxAgeWindows = 30;
// Weight of a new sample in a bucket's moving average.
const latencyAlpha = 0.2;
// The drift: every request's latency ÷ its load's estimate, a moving average with this weight, within ×/÷ driftMax.
// Each bucket learns only from requests that arrived at its load, a few per second each at a modest rate, so after a
// change of capacity (half the workers gone, a slower dependency) the loads not seen since kept their old figure for
// seconds, and a client that read one of them (a stale rif) sent its full share to a server with half the capacity
// (balancer testbed: the halved backends stayed saturated). The drift, fed by every request, moves them all at once.
const driftAlpha = 0.2;
const driftMax = 8;

/** Rounds to 4 decimals: a utilisation needs no more, and the header stays short. */
function round4(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}

/** A request being served, as {@link LoadReporter.begin} returns it. */
export interface LoadReportRequest {
  /**
   * Records the end of the request (call once; later calls do nothing).
   * `statusCode` decides whether it counts as an error; `completed: false`
   * (the client went away first) leaves it out of the latency estimate.
   */
  end(statusCode: number, completed?: boolean): void;
}

/**
 * Measures the load of this process and writes it as an ORCA load report
 * (`endpoint-load-metrics`, the field names of `xds.data.orca.v3.OrcaLoadReport`):
 *
 * | field | what | measured |
 * |---|---|---|
 * | `cpu_utilization` | event-loop utilisation, the honest CPU of a Node process: the share of the window the loop was busy | `performance.eventLoopUtilization()` delta over the last window |
 * | `mem_utilization` | V8 heap used ÷ heap limit | once per window |
 * | `application_utilization` | yours ({@link LoadReporter.setApplicationUtilization}) | — |
 * | `rps_fractional`, `eps` | responses and errors per second | over the last window |
 * | `named_metrics.rif` | requests in flight besides the one answered | live |
 * | `named_metrics.latency_ms` | latency of recent requests that arrived at this load (Prequal's "latency at the current RIF"), scaled by how far all recent requests ran from their load's figure | live |
 * | `named_metrics.*` | yours ({@link LoadReporter.setNamedMetric}) | — |
 *
 * Feed it with an adapter: {@link loadReportListener} (node:http, or an
 * Express app as a listener), {@link attachLoadReport} (an existing
 * `http.Server`), {@link loadReportFastify}, {@link loadReportExpress}; or by
 * hand with {@link LoadReporter.begin}. One timer, unref'd, samples the
 * window; {@link LoadReporter.close} stops it.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { LoadReporter, loadReportListener } from '@proxyless/load-report';
 * const load = new LoadReporter();
 * createServer(loadReportListener(load, (req, res) => res.end('ok'))).listen(8080);
 * // every response: endpoint-load-metrics: TEXT cpu_utilization=0.12, mem_utilization=0.05, rps_fractional=310, eps=0, named_metrics.rif=3, named_metrics.latency_ms=1.8
 * // GET /endpoint-load-metrics answers the same report without running the handler
 * ```
 */
export class LoadReporter {
  /** The options in force, defaults applied (`shedding`: as given; the shedding options in force are in {@link LoadReporter.sheddingOptions}). */
  readonly options: Readonly<Required<LoadReporterOptions>>;
  /** The shedding state, when shedding is on. @internal */
  readonly shedder: Shedder | undefined;
  private inFlight = 0;
  private completedInWindow = 0;
  private errorsInWindow = 0;
  private rps = 0;
  private eps = 0;
  private cpu = 0;
  private mem = 0;
  private appUtilization: number | undefined;
  private readonly named = new Map<string, number>();
  private elu: EventLoopUtilization;
  private windowStart: number;
  private windowIndex = 0;
  private timer: NodeJS.Timeout | undefined;
  // Latency at load: a moving average per arrival load, and the window it was last fed in.
  private readonly latency = new Float64Array(latencyBuckets);
  private readonly latencyWindow = new Int32Array(latencyBuckets).fill(-latencyMaxAgeWindows - 1);
  /** How far recent requests ran from what their load's estimate said (observed ÷ estimated), a moving average; 1 while the estimates hold. */
  private drift = 1;
  // The report's fixed part (all but rif and latency), rebuilt once per window or when the app sets a value.
  private fixed: { text: string; json: string } | undefined;

  constructor(options: LoadReporterOptions = {}) {
    checkOptions('LoadReporter', options, optionNames);
    const d = loadReporterDefaults;
    const windowMs = checkNumber('windowMs', options.windowMs, d.windowMs, { min: 100, max: 60_000 });
    const format = options.format ?? d.format;
    if (format !== 'TEXT' && format !== 'JSON') throw new InvalidOptionError('format', format, "must be 'TEXT' or 'JSON'");
    const onlyWhenAsked = options.onlyWhenAsked ?? d.onlyWhenAsked;
    if (typeof onlyWhenAsked !== 'boolean') throw new InvalidOptionError('onlyWhenAsked', onlyWhenAsked, 'must be a boolean');
    const probePath = options.probePath ?? d.probePath;
    if (probePath !== false && (typeof probePath !== 'string' || !/^\/[\x21-\x7E]*$/.test(probePath) || probePath.includes('?'))) {
      throw new InvalidOptionError('probePath', probePath, "must be a path starting with '/' (printable ASCII, no '?'), or false");
    }
    const isError = options.isError ?? d.isError;
    if (typeof isError !== 'function') throw new InvalidOptionError('isError', isError, 'must be a function (statusCode) => boolean');
    const shedding = options.shedding ?? d.shedding;
    if (shedding !== false && shedding !== true && (typeof shedding !== 'object' || shedding === null)) {
      throw new InvalidOptionError('shedding', shedding, 'must be a boolean or shedding options');
    }
    this.shedder = shedding === false ? undefined : new Shedder(shedding);
    this.options = Object.freeze({ windowMs, format, onlyWhenAsked, probePath, isError, shedding });
    this.elu = performance.eventLoopUtilization();
    this.windowStart = performance.now();
    this.timer = setInterval(() => this.sample(), windowMs);
    this.timer.unref();
  }

  /** The shedding options in force, defaults applied; `undefined` when shedding is off. */
  get sheddingOptions(): Readonly<Required<SheddingOptions>> | undefined {
    return this.shedder?.options;
  }

  /** Shedding now: pressure, event-loop delay and requests shed by priority; `undefined` when shedding is off. */
  sheddingStats(): SheddingStats | undefined {
    const s = this.shedder;
    if (s === undefined) return undefined;
    const shed = Object.fromEntries(requestPriorities.map((p, i) => [p, s.shed[i] ?? 0])) as Record<RequestPriority, number>;
    return { pressure: s.pressure(this.inFlight), eventLoopDelayMs: Math.round(s.delayMs * 100) / 100, shed };
  }

  /** Requests in flight now (begun and not ended). */
  get requestsInFlight(): number {
    return this.inFlight;
  }

  /**
   * Sets `application_utilization` (≥ 0; above 1 means past your soft limit),
   * or clears it with `undefined`. gRPC's and Envoy's weighted round robin
   * use it instead of `cpu_utilization` when it is > 0.
   * @throws `InvalidOptionError` (from `@proxyless/core`) for a negative or non-finite value.
   */
  setApplicationUtilization(value: number | undefined): void {
    this.appUtilization = value === undefined ? undefined : checkNumber('applicationUtilization', value, undefined, { min: 0 });
    this.fixed = undefined;
  }

  /**
   * Sets (or with `undefined` removes) an application metric, written as
   * `named_metrics.<name>`. Values are finite and ≥ 0 (readers reject others).
   * @throws `InvalidOptionError` (from `@proxyless/core`) for a bad name (see `isLoadReportKey`),
   * a name the reporter writes itself (`rif`, `latency_ms`), a bad value, or a metric that would
   * take the report past what readers accept (62 of yours, 4,096 characters: `loadReportLimits`).
   */
  setNamedMetric(name: string, value: number | undefined): void {
    if (typeof name !== 'string' || !isLoadReportKey(name)) {
      throw new InvalidOptionError('name', name, 'must be 1-128 characters of A-Z a-z 0-9 _ - . /');
    }
    if (reserved.has(name)) throw new InvalidOptionError('name', name, `is written by the reporter itself (${[...reserved].join(', ')})`);
    if (value === undefined) {
      this.named.delete(name);
      this.fixed = undefined;
      return;
    }
    const checked = checkNumber(`namedMetrics.${name}`, value, undefined, { min: 0 });
    const before = this.named.get(name);
    this.named.set(name, checked);
    // Readers reject a report with too many entries or too many characters (core's loadReportLimits): refuse the
    // metric that would cross a limit rather than send reports every client discards.
    const fixed = this.buildFixed();
    const worstTail = `, named_metrics.${reporterMetricNames.requestsInFlight}=${Number.MAX_SAFE_INTEGER}, named_metrics.${reporterMetricNames.latencyMs}=${Number.MAX_SAFE_INTEGER}`.length;
    const tooMany = this.named.size + reserved.size > loadReportLimits.maxMapEntries;
    if (tooMany || Math.max(fixed.text.length, fixed.json.length) + worstTail > loadReportLimits.maxChars) {
      if (before === undefined) this.named.delete(name);
      else this.named.set(name, before);
      throw new InvalidOptionError(
        'name',
        name,
        tooMany
          ? `would be named metric ${this.named.size + 1}: a report holds at most ${loadReportLimits.maxMapEntries - reserved.size} of yours (readers reject more)`
          : `would make the report longer than ${loadReportLimits.maxChars} characters (readers reject it)`,
      );
    }
    this.fixed = fixed;
  }

  /**
   * Starts tracking one request; call `end()` on the result when its
   * response is done. The adapters call this; use it for a server they do not cover.
   */
  begin(): LoadReportRequest {
    const arrivalLoad = this.inFlight++;
    const start = performance.now();
    let ended = false;
    return {
      end: (statusCode: number, completed = true): void => {
        if (ended) return;
        ended = true;
        this.inFlight--;
        this.completedInWindow++;
        if (this.options.isError(statusCode)) this.errorsInWindow++;
        if (completed) this.recordLatency(arrivalLoad, performance.now() - start);
      },
    };
  }

  /**
   * The current report. `inResponse`: for the response of a request still in
   * flight, which `rif` then leaves out.
   */
  report(inResponse = false): LoadReport {
    const rif = inResponse ? Math.max(0, this.inFlight - 1) : this.inFlight;
    const named: Record<string, number> = Object.fromEntries(this.named);
    named[reporterMetricNames.requestsInFlight] = rif;
    const latency = this.latencyAt(rif);
    if (latency !== undefined) named[reporterMetricNames.latencyMs] = latency;
    return {
      cpu_utilization: this.cpu,
      mem_utilization: this.mem,
      ...(this.appUtilization !== undefined ? { application_utilization: this.appUtilization } : {}),
      rps_fractional: this.rps,
      eps: this.eps,
      named_metrics: named,
    };
  }

  /**
   * The value of the `endpoint-load-metrics` header now, in `format` (default
   * the reporter's). Cheap: the fixed part is written once per window; only
   * `rif` and `latency_ms` are added per call.
   */
  headerValue(format: LoadReportFormat = this.options.format, inResponse = false): string {
    this.fixed ??= this.buildFixed();
    const rif = inResponse ? Math.max(0, this.inFlight - 1) : this.inFlight;
    const latency = this.latencyAt(rif);
    const rifName = reporterMetricNames.requestsInFlight;
    const latencyName = reporterMetricNames.latencyMs;
    if (format === 'JSON') {
      const tail = latency === undefined ? `"${rifName}":${rif}` : `"${rifName}":${rif},"${latencyName}":${latency}`;
      return `${this.fixed.json}${tail}}}`;
    }
    const tail = latency === undefined ? `named_metrics.${rifName}=${rif}` : `named_metrics.${rifName}=${rif}, named_metrics.${latencyName}=${latency}`;
    return `${this.fixed.text}, ${tail}`;
  }

  /** Stops the sampling timer and the event-loop delay monitor (idempotent). The reporter keeps answering with its last window's figures and live `rif`. */
  close(): Promise<void> {
    this.shedder?.close();
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    return Promise.resolve();
  }

  /** Same as {@link LoadReporter.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Ends a window: utilisation and rates over it. */
  private sample(): void {
    const now = performance.now();
    const seconds = (now - this.windowStart) / 1000;
    // How late this window's own timer fired: a loop blocked past a whole window records no delay sample in it.
    const lateMs = now - this.windowStart - this.options.windowMs;
    const elu = performance.eventLoopUtilization();
    this.cpu = round4(performance.eventLoopUtilization(elu, this.elu).utilization);
    this.elu = elu;
    const heap = getHeapStatistics();
    this.mem = round4(Math.min(1, heap.used_heap_size / heap.heap_size_limit));
    this.rps = seconds > 0 ? round4(this.completedInWindow / seconds) : 0;
    this.eps = seconds > 0 ? round4(this.errorsInWindow / seconds) : 0;
    this.completedInWindow = 0;
    this.errorsInWindow = 0;
    this.windowStart = now;
    this.windowIndex++;
    this.fixed = undefined;
    this.shedder?.sample(lateMs);
  }

  private recordLatency(arrivalLoad: number, ms: number): void {
    const i = Math.min(arrivalLoad, latencyBuckets - 1);
    const predicted = this.estimateAt(arrivalLoad);
    if (predicted !== undefined && predicted > 0) {
      this.drift += driftAlpha * (Math.min(driftMax, Math.max(1 / driftMax, ms / predicted)) - this.drift);
    }
    // A bucket gone stale starts again from this sample instead of averaging with the past.
    const last = this.latency[i] ?? 0;
    this.latency[i] = this.windowIndex - (this.latencyWindow[i] ?? 0) > latencyMaxAgeWindows ? ms : last + latencyAlpha * (ms - last);
    this.latencyWindow[i] = this.windowIndex;
  }

  /** What a request arriving at load `rif` would take now: its load's estimate, corrected by the drift; undefined if none. */
  private latencyAt(rif: number): number | undefined {
    const estimate = this.estimateAt(rif);
    return estimate === undefined ? undefined : Math.round(estimate * this.drift * 100) / 100;
  }

  /** The estimate for a request arriving at load `rif`: its bucket, else the nearest fresh one below, else above; undefined if none. */
  private estimateAt(rif: number): number | undefined {
    const at = Math.min(rif, latencyBuckets - 1);
    for (let d = 0; at - d >= 0 || at + d < latencyBuckets; d++) {
      const found = this.latencyIn(at - d) ?? (d > 0 ? this.latencyIn(at + d) : undefined);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  /** Bucket `i`'s estimate in ms (2 decimals) if it is fresh. */
  private latencyIn(i: number): number | undefined {
    if (i < 0 || i >= latencyBuckets || this.windowIndex - (this.latencyWindow[i] ?? 0) > latencyMaxAgeWindows) return undefined;
    return Math.round((this.latency[i] ?? 0) * 100) / 100;
  }

  private buildFixed(): { text: string; json: string } {
    const report: LoadReport = {
      cpu_utilization: this.cpu,
      mem_utilization: this.mem,
      ...(this.appUtilization !== undefined ? { application_utilization: this.appUtilization } : {}),
      rps_fractional: this.rps,
      eps: this.eps,
      named_metrics: Object.fromEntries(this.named),
    };
    const text = formatLoadReport(report, 'TEXT');
    const json = formatLoadReport(report, 'JSON');
    // JSON ends with `}` (no app metrics: no named_metrics map) or `}}`; reopen the map for rif and latency.
    const jsonOpen = this.named.size > 0 ? `${json.slice(0, -2)},` : `${json.slice(0, -1)},"named_metrics":{`;
    return { text, json: jsonOpen };
  }
}
