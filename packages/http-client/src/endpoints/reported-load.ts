import { loadReportMetricNames, parseLoadReport, type LoadReport, type ReportedLoadView } from '@proxyless/core';
import type { EndpointLoadReport } from '../shared/load-report-types.js';

/** gRPC A58's `weight_expiration_period` default: a report older than this is dropped. */
export const LOAD_REPORT_EXPIRATION_MS = 180_000;
/** gRPC A58's `blackout_period` default: how long an endpoint reports before its reports are used. */
export const LOAD_REPORT_BLACKOUT_MS = 10_000;

/**
 * One endpoint's server-reported load, beside its `LoadTracker`: the
 * last valid `endpoint-load-metrics` report, fed by each attempt's answer.
 * A malformed value (or the header sent twice) is never trusted: it is
 * counted and ignored, and the last good report stays. gRPC A58's rules: a
 * report expires after {@link LOAD_REPORT_EXPIRATION_MS}; a run of reports
 * starts a blackout of {@link LOAD_REPORT_BLACKOUT_MS} (again after an expiry
 * or a rejoin), so one report from a just-started or just-recovered endpoint
 * does not swing a balancer.
 * @internal
 */
export class ReportedLoad {
  /** Values that did not parse, since the endpoint appeared. */
  malformed = 0;
  readonly #clock: () => number;
  #report: LoadReport | undefined;
  /** The balancers' view of `#report`, built at its first read (one per report, not one per pick). */
  #view: ReportView | undefined;
  /** When the last report arrived, ms (the set's clock). */
  #at = 0;
  /** When the current unbroken run of reports began (A58's `non_empty_since`). */
  #since = 0;

  /** @param clock - the set's clock, ms (what `ReportedLoadView.ageMs` is measured by). */
  constructor(clock: () => number = () => performance.now()) {
    this.#clock = clock;
  }

  /** An answer's `endpoint-load-metrics` value (absent: nothing to do); returns the report when it is valid. */
  received(value: string | readonly string[] | undefined, nowMs: number): LoadReport | undefined {
    if (value === undefined) return undefined;
    const report = typeof value === 'string' ? parseLoadReport(value) : undefined;
    if (report === undefined) {
      this.malformed++;
      return undefined;
    }
    if (this.#report === undefined || nowMs - this.#at > LOAD_REPORT_EXPIRATION_MS) this.#since = nowMs;
    this.#report = report;
    this.#view = undefined;
    this.#at = nowMs;
    return report;
  }

  /** Back from an ejection or an open breaker: A58 starts the blackout again. */
  rejoined(): void {
    this.#report = undefined;
    this.#view = undefined;
  }

  /**
   * What balancers read (`EndpointLoad.reported`): the report as of `nowMs`
   * only while A58 lets a balancer use it — past the blackout and not
   * expired — else undefined. Allocates once per report, not per read.
   */
  view(nowMs: number): ReportedLoadView | undefined {
    const report = this.#report;
    if (report === undefined || nowMs - this.#at > LOAD_REPORT_EXPIRATION_MS || nowMs - this.#since < LOAD_REPORT_BLACKOUT_MS) return undefined;
    return (this.#view ??= new ReportView(report, this.#at, this.#clock));
  }

  /** The report as of `nowMs`, or undefined when none arrived or it expired (then it is dropped). */
  current(nowMs: number): EndpointLoadReport | undefined {
    const report = this.#report;
    if (report === undefined) return undefined;
    const ageMs = Math.max(0, nowMs - this.#at);
    if (ageMs > LOAD_REPORT_EXPIRATION_MS) {
      this.#report = undefined;
      return undefined;
    }
    return Object.freeze({
      utilization: utilizationOf(report),
      rps: report.rps_fractional,
      eps: report.eps,
      ageMs,
      usable: nowMs - this.#since >= LOAD_REPORT_BLACKOUT_MS,
      report,
    });
  }
}

/** One report as balancers read it (see `ReportedLoadView`); only `ageMs` reads the clock. @internal */
class ReportView implements ReportedLoadView {
  readonly utilization: number | undefined;
  readonly rps: number | undefined;
  readonly eps: number | undefined;
  readonly rif: number | undefined;
  readonly latencyMs: number | undefined;
  readonly report: LoadReport;
  readonly #at: number;
  readonly #clock: () => number;

  constructor(report: LoadReport, at: number, clock: () => number) {
    this.report = report;
    this.utilization = utilizationOf(report);
    this.rps = report.rps_fractional;
    this.eps = report.eps;
    this.rif = report.named_metrics?.[loadReportMetricNames.requestsInFlight];
    this.latencyMs = report.named_metrics?.[loadReportMetricNames.latencyMs];
    this.#at = at;
    this.#clock = clock;
  }

  get ageMs(): number {
    return Math.max(0, this.#clock() - this.#at);
  }
}

/** A58's utilisation: `application_utilization` when > 0, else `cpu_utilization`. */
function utilizationOf(report: LoadReport): number | undefined {
  const app = report.application_utilization;
  return app !== undefined && app > 0 ? app : report.cpu_utilization;
}
