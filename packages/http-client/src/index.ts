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
export { createDispatcher, ServiceDispatcher } from './dispatcher.js';
export type { DispatcherOptions, ServiceDispatchOptions } from './dispatcher.js';
export type {
  RequestOptions,
  RequestBody,
  ClientResponse,
  BufferedResponse,
  ProxylessRequestInit,
  ClientStats,
  EndpointStats,
} from './request-types.js';
export type { RequestPolicy, RetryPolicy, PolicyOptions, RetryOptions } from './policy.js';
export type { ClientEvents } from './events.js';
export { telemetryReady } from './otel-api.js';
export type { PickExplanation, PickCandidate, ExclusionReason } from './pick-explanation-types.js';
export { checkRetryAmplification, checkPerTryRoom, checkEjectionCap } from './doctor.js';
export type { ExplainedConfig } from './doctor.js';
export type { RetryLayer } from './options.js';
export type { ConfigWarning, ConfigLogger } from '@proxyless/core';
export type { EndpointInfo } from './endpoint.js';
export type { BreakerState } from './breaker.js';
export type {
  ClientOptions,
  BreakerOptions,
  OutlierDetectionOptions,
  ClientRetryOptions,
  RetryBudgetOptions,
  BackendTlsOptions,
} from './options.js';
export { RetryBudget } from './retry-budget.js';
export {
  RequestError,
  NoHealthyEndpointsError,
  CircuitOpenError,
  DeadlineExceededError,
  RetryBudgetExhaustedError,
  RequestFailedError,
  ResponseTooLargeError,
  UnknownServiceError,
} from './errors.js';
export type { FailureKind } from './attempt-outcome.js';
export type { RequestErrorContext } from './errors.js';
export { ClosedError, AbortedError, InvalidOptionError } from '@proxyless/core';
