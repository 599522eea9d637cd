import { ProxylessError, type ProxylessErrorOptions } from '@proxyless/core';
import { errorBrand } from '@proxyless/core/internal';
import type { FailureKind } from './attempt-outcome.js';
import { describeStale, type DiscoveryStale } from './discovery-stale.js';
import type { PickExplanation } from './pick-explanation-types.js';

/** Context every request error of this package carries. */
export interface RequestErrorContext {
  /** Service the request was for. */
  service: string;
  /** Attempts made (0 when none reached a transport). */
  attempts: number;
  /** `address:port` of every endpoint tried, in order (may repeat). */
  endpointsTried: readonly string[];
  /** The underlying error, if any. */
  cause?: unknown;
  /** With `explain: true`: why each attempt went where it went. */
  picks?: readonly PickExplanation[] | undefined;
  /** Set when the request failed while discovery was stale. */
  discoveryStale?: DiscoveryStale | undefined;
}

/** Base class of request errors: carries the service, attempts and endpoints tried. */
export class RequestError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('RequestError');

  override get name(): string {
    return 'RequestError';
  }

  /** Service the request was for. */
  readonly service: string;
  /** Attempts made. */
  readonly attempts: number;
  /** `address:port` of every endpoint tried, in order. */
  readonly endpointsTried: readonly string[];
  /** With `explain: true`: why each attempt went where it went. */
  readonly picks: readonly PickExplanation[] | undefined;
  /** Set when the request failed while discovery was stale: the endpoints tried may be out of date. */
  readonly discoveryStale: DiscoveryStale | undefined;

  constructor(code: string, message: string, context: RequestErrorContext) {
    const options: ProxylessErrorOptions = context.cause === undefined ? {} : { cause: context.cause };
    super(code, `${message} (service "${context.service}", ${context.attempts} attempt(s)${
      context.endpointsTried.length > 0 ? `, tried ${context.endpointsTried.join(', ')}` : ''
    }${context.discoveryStale === undefined ? '' : `; ${describeStale(context.discoveryStale, Date.now())}`})`, options);
    this.service = context.service;
    this.attempts = context.attempts;
    this.endpointsTried = context.endpointsTried;
    this.picks = context.picks;
    this.discoveryStale = context.discoveryStale;
  }
}

/** The service has no endpoint to send to (none resolved, or all ejected without panic). Code `ERR_NO_HEALTHY_ENDPOINTS`. */
export class NoHealthyEndpointsError extends RequestError {
  static override readonly brand: symbol = errorBrand('ERR_NO_HEALTHY_ENDPOINTS');

  override get name(): string {
    return 'NoHealthyEndpointsError';
  }

  constructor(context: RequestErrorContext) {
    super('ERR_NO_HEALTHY_ENDPOINTS', 'No healthy endpoint', context);
  }
}

/** Every candidate endpoint's circuit breaker is open. Code `ERR_CIRCUIT_OPEN`. */
export class CircuitOpenError extends RequestError {
  static override readonly brand: symbol = errorBrand('ERR_CIRCUIT_OPEN');

  override get name(): string {
    return 'CircuitOpenError';
  }

  constructor(context: RequestErrorContext) {
    super('ERR_CIRCUIT_OPEN', 'Circuit open', context);
  }
}

/** The overall deadline (or a per-try timeout on the last allowed try) passed. Code `ERR_DEADLINE_EXCEEDED`. */
export class DeadlineExceededError extends RequestError {
  static override readonly brand: symbol = errorBrand('ERR_DEADLINE_EXCEEDED');

  override get name(): string {
    return 'DeadlineExceededError';
  }

  /** The overall deadline, in ms. */
  readonly timeoutMs: number;

  constructor(timeoutMs: number, context: RequestErrorContext) {
    super('ERR_DEADLINE_EXCEEDED', `Deadline of ${timeoutMs} ms exceeded`, context);
    this.timeoutMs = timeoutMs;
  }
}

/** A retry was needed but the retry budget is spent. `cause` is the last failure. Code `ERR_RETRY_BUDGET_EXHAUSTED`. */
export class RetryBudgetExhaustedError extends RequestError {
  static override readonly brand: symbol = errorBrand('ERR_RETRY_BUDGET_EXHAUSTED');

  override get name(): string {
    return 'RetryBudgetExhaustedError';
  }

  constructor(context: RequestErrorContext) {
    super('ERR_RETRY_BUDGET_EXHAUSTED', 'Retry budget exhausted', context);
  }
}

/**
 * The request failed at the transport (refused, reset, malformed answer) and
 * could not be retried, or every retry failed too. `cause` is the transport error,
 * `reason` its class. Code `ERR_REQUEST_FAILED`.
 */
export class RequestFailedError extends RequestError {
  static override readonly brand: symbol = errorBrand('ERR_REQUEST_FAILED');

  override get name(): string {
    return 'RequestFailedError';
  }

  /** Failure class of the last attempt. */
  readonly reason: FailureKind;

  constructor(reason: FailureKind, context: RequestErrorContext) {
    super('ERR_REQUEST_FAILED', `Request failed (${reason})`, context);
    this.reason = reason;
  }
}

/** A buffered response body exceeded `maxResponseBytes`. Code `ERR_RESPONSE_TOO_LARGE`. */
export class ResponseTooLargeError extends RequestError {
  static override readonly brand: symbol = errorBrand('ERR_RESPONSE_TOO_LARGE');

  override get name(): string {
    return 'ResponseTooLargeError';
  }

  /** The limit, in bytes. */
  readonly maxResponseBytes: number;

  constructor(maxResponseBytes: number, context: RequestErrorContext) {
    super('ERR_RESPONSE_TOO_LARGE', `Response body exceeds ${maxResponseBytes} bytes`, context);
    this.maxResponseBytes = maxResponseBytes;
  }
}

/**
 * A request through the dispatcher ({@link createDispatcher}) named a service
 * the resolver has no instance of. `cause` is the client's
 * `NoHealthyEndpointsError`. Code `ERR_UNKNOWN_SERVICE`.
 */
export class UnknownServiceError extends RequestError {
  static override readonly brand: symbol = errorBrand('ERR_UNKNOWN_SERVICE');

  override get name(): string {
    return 'UnknownServiceError';
  }

  /** The request's origin (`http://users.service.consul`). */
  readonly origin: string;

  constructor(origin: string, context: RequestErrorContext) {
    super('ERR_UNKNOWN_SERVICE', `Unknown service "${context.service}" (origin ${origin}): the resolver has no instance of it`, context);
    this.origin = origin;
  }
}

/**
 * Every endpoint the pick tried was at its adaptive concurrency limit
 * (`concurrencyLimit` option): the request failed at once, without queuing
 * and without reaching a server. Back off, shed the work, or raise
 * `concurrencyLimit.maxLimit`/add instances. Code `ERR_CONCURRENCY_LIMIT`.
 */
export class ConcurrencyLimitError extends RequestError {
  static override readonly brand: symbol = errorBrand('ERR_CONCURRENCY_LIMIT');

  override get name(): string {
    return 'ConcurrencyLimitError';
  }

  constructor(context: RequestErrorContext) {
    super('ERR_CONCURRENCY_LIMIT', 'Every endpoint is at its concurrency limit (failed fast, nothing sent; back off or add capacity)', context);
  }
}

/**
 * Admission control (`admissionControl` option) rejected the request locally:
 * the service has been rejecting much of what this client sent (503/429 or
 * timeouts), so this one was not sent. `retryable` is false: retrying at once
 * only feeds the overload; back off, or shed the work. Code `ERR_ADMISSION_REJECTED`.
 */
export class AdmissionRejectedError extends RequestError {
  static override readonly brand: symbol = errorBrand('ERR_ADMISSION_REJECTED');

  override get name(): string {
    return 'AdmissionRejectedError';
  }

  /** Always false: do not retry this at once. */
  readonly retryable = false;
  /** The rejection probability when it was rejected. */
  readonly rejectProbability: number;

  constructor(rejectProbability: number, context: RequestErrorContext) {
    super('ERR_ADMISSION_REJECTED', `Rejected locally by admission control (p=${rejectProbability.toFixed(2)}: the service is rejecting much of what it is sent; back off, do not retry at once)`, context);
    this.rejectProbability = rejectProbability;
  }
}
