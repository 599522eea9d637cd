import type { LoadReport } from '@proxyless/core';

/**
 * An endpoint's last ORCA load report (the `endpoint-load-metrics` response
 * header, TEXT or JSON), as the client holds it under gRPC A58's rules: a
 * report older than the expiration period (3 min) is dropped, and a report is
 * `usable` by a balancer only once the endpoint has reported continuously for
 * the blackout period (10 s); balancers read the usable report as core's
 * `EndpointLoad.reported` (`loadWeightedRoundRobin()`, `peakEwma({ reportedLoad: true })`).
 */
export interface EndpointLoadReport {
  /** The utilisation A58 weighs by: `application_utilization` when > 0, else `cpu_utilization`; undefined if the report has neither. */
  readonly utilization: number | undefined;
  /** Requests per second the endpoint reported (`rps_fractional`). */
  readonly rps: number | undefined;
  /** Errors per second the endpoint reported (`eps`). */
  readonly eps: number | undefined;
  /** Time since the report arrived, ms. */
  readonly ageMs: number;
  /** Past the blackout period and not expired: what a load-aware balancer may use. */
  readonly usable: boolean;
  /** The report as parsed (frozen; every number finite and ≥ 0). */
  readonly report: LoadReport;
}
