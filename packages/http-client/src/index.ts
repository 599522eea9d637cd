/**
 * `@proxyless/http-client`: a balancing HTTP client that calls a service by
 * name with no proxy hop — per-endpoint keep-alive pools fed by a resolver's
 * snapshots, peak-EWMA balancing, per-endpoint circuit breakers, passive
 * outlier ejection, safe retries under a retry budget, deadlines and typed errors.
 *
 * @example
 * ```ts
 * import { createClient } from '@proxyless/http-client';
 *
 * const client = createClient({ service: 'users', resolver, timeoutMs: 2_000 });
 * client.on('eject', (endpoint, ms) => console.warn(`ejected ${endpoint.label} for ${ms} ms`));
 * const res = await client.request('/users/42');
 * const patient = client.policy({ timeoutMs: 10_000, retry: { maxRetries: 4 } }); // built once, used per call
 * await client.request({ path: '/reports/7', policy: patient });
 * console.log(res.statusCode, await res.body.json());
 * const viaFetch = await client.fetch('/users/42', { method: 'PUT', body: '{}' });
 * await client.close();
 * ```
 * @packageDocumentation
 */
export { createClient, ProxylessClient } from './client.js';
export { createDispatcher, ServiceDispatcher } from './adapters/dispatcher.js';
export type { DispatcherOptions, ServiceDispatchOptions } from './adapters/dispatcher.js';
export type { PerCallOptions, RequestOptions, RequestBody, ProxylessRequestInit } from './config/call-options.js';
export type {
  ClientResponse,
  BufferedResponse,
  ClientStats,
  ProbeStats,
  EndpointStats,
  DiscoveryStats,
  HedgeStats,
  SubsetStats,
} from './request/request-types.js';
export type { RequestPolicy, RetryPolicy, PolicyOptions, RetryOptions, HedgeOptions, HedgePolicy } from './config/policy.js';
export type { ClientEvents } from './shared/events.js';
export type { DiscoveryStale } from './shared/discovery-stale.js';
export { telemetryReady } from './observe/otel-api.js';
export type { PickExplanation, PickCandidate, ExclusionReason } from './shared/pick-explanation-types.js';
export { checkRetryAmplification, checkPerTryRoom, checkEjectionCap } from './config/doctor.js';
export type { ExplainedConfig } from './config/doctor.js';
export type { RetryLayer } from './config/options.js';
export { instanceScheme } from './config/options.js';
export type { ConfigWarning, ConfigLogger, PickSignal } from '@proxyless/core';
export type { EndpointInfo } from './shared/endpoint-info.js';
export type { EndpointLoadReport } from './shared/load-report-types.js';
export type { BreakerState, EndpointHealthState } from './endpoints/health.js';
export type {
  ClientOptions,
  BreakerOptions,
  OutlierDetectionOptions,
  ClientRetryOptions,
  RetryBudgetOptions,
  BackendTlsOptions,
  ConcurrencyLimitOptions,
  AdmissionControlOptions,
} from './config/options.js';
export { RetryBudget } from './request/retry-budget.js';
export {
  RequestError,
  NoHealthyEndpointsError,
  CircuitOpenError,
  DeadlineExceededError,
  RetryBudgetExhaustedError,
  RequestFailedError,
  ResponseTooLargeError,
  UnknownServiceError,
  ConcurrencyLimitError,
  AdmissionRejectedError,
} from './shared/errors.js';
export type { ConcurrencyLimitStats, AdmissionStats, ConcurrencyLimitAlgorithm } from './shared/limit-types.js';
export type { FailureKind } from './shared/attempt-outcome.js';
export type { RequestErrorContext } from './shared/errors.js';
export { ClosedError, AbortedError, InvalidOptionError } from '@proxyless/core';
