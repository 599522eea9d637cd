import { parseLoadReport, type LoadReport } from '@proxyless/core';
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
  #report: LoadReport | undefined;
  /** When the last report arrived, ms (the set's clock). */
  #at = 0;
  /** When the current unbroken run of reports began (A58's `non_empty_since`). */
  #since = 0;

  /** An answer's `endpoint-load-metrics` value (absent: nothing to do). */
  received(value: string | readonly string[] | undefined, nowMs: number): void {
    if (value === undefined) return;
    const report = typeof value === 'string' ? parseLoadReport(value) : undefined;
    if (report === undefined) {
      this.malformed++;
      return;
    }
    if (this.#report === undefined || nowMs - this.#at > LOAD_REPORT_EXPIRATION_MS) this.#since = nowMs;
    this.#report = report;
    this.#at = nowMs;
  }

  /** Back from an ejection or an open breaker: A58 starts the blackout again. */
  rejoined(): void {
    this.#report = undefined;
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
    const app = report.application_utilization;
    return Object.freeze({
      utilization: app !== undefined && app > 0 ? app : report.cpu_utilization,
      rps: report.rps_fractional,
      eps: report.eps,
      ageMs,
      usable: nowMs - this.#since >= LOAD_REPORT_BLACKOUT_MS,
      report,
    });
  }
}
