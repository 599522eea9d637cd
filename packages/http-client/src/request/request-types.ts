import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { EndpointInfo } from '../shared/endpoint-info.js';
import type { BreakerState, EndpointHealthState } from '../endpoints/health.js';
import type { RequestPolicy, RetryOptions } from '../config/policy.js';
import type { PickExplanation } from '../shared/pick-explanation-types.js';

/** Request body types. Strings and byte arrays are replayable (retries may resend them); streams are not. */
export type RequestBody = string | Uint8Array | Readable | null;

/** One request, undici style. */
export interface RequestOptions {
  /** Path and query, starting with `/`. */
  path: string;
  /** HTTP method. Default `GET`. */
  method?: string;
  /** Request headers. */
  headers?: IncomingHttpHeaders | Record<string, string | string[] | undefined>;
  /** Request body. */
  body?: RequestBody;
  /** Caller cancellation; carried through retries and into the transport. */
  signal?: AbortSignal;
  /**
   * The policy (deadline, per-try timeout, retries) for this call, built once
   * with {@link ProxylessClient.policy}. Default: the client's.
   */
  policy?: RequestPolicy;
  /** Overall deadline (all attempts and backoff), in ms; overrides the policy's (validated per call). */
  timeoutMs?: number;
  /** Time limit of each attempt, in ms; overrides the policy's (validated per call). */
  perTryTimeoutMs?: number;
  /** Retry settings for this call (`false`: no retry); override the policy's (validated per call). */
  retry?: RetryOptions | false;
  /** Mark a non-idempotent method (e.g. POST) safe to retry, or an idempotent one unsafe. Default: by method. */
  idempotent?: boolean;
  /** Key for consistent-hash balancers (affinity). */
  hashKey?: string;
  /**
   * Record why each attempt went where it went (candidates, scores, excluded
   * endpoints and why) in `picks` of the response or error. Default false.
   */
  explain?: boolean;
}

/** A response; `body` is undici's readable body (consume or dump it). */
export interface ClientResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** undici body: `.text()`, `.json()`, `.arrayBuffer()`, `.dump()`, or a Readable. */
  body: Dispatcher.ResponseData['body'];
  /** Endpoint that answered. */
  endpoint: EndpointInfo;
  /** Attempts made, including this one. */
  attempts: number;
  /** With `explain: true`: one explanation per attempt. */
  picks?: readonly PickExplanation[];
}

/** A buffered response (from {@link ProxylessClient.text} / {@link ProxylessClient.json}). */
export interface BufferedResponse<T> {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: T;
  endpoint: EndpointInfo;
  attempts: number;
  /** With `explain: true`: one explanation per attempt. */
  picks?: readonly PickExplanation[];
}

/** `RequestInit` plus Proxyless per-call settings, for {@link ProxylessClient.fetch}. */
export interface ProxylessRequestInit extends RequestInit {
  /** Policy for this call (see {@link RequestOptions.policy}). */
  policy?: RequestPolicy;
  /** Overall deadline, in ms. */
  timeoutMs?: number;
  /** Per-attempt time limit, in ms. */
  perTryTimeoutMs?: number;
  /** Retry settings for this call. */
  retry?: RetryOptions | false;
  /** Retry safety override (see {@link RequestOptions.idempotent}). */
  idempotent?: boolean;
  /** Consistent-hash key. */
  hashKey?: string;
}

/** Per-endpoint statistics in {@link ClientStats}. */
export interface EndpointStats {
  key: string;
  /** `address:port`. */
  label: string;
  inFlight: number;
  /** Peak-EWMA latency estimate as balancers see it now, ms. */
  ewmaMs: number;
  /** Attempts that succeeded since the endpoint appeared. */
  successes: number;
  /** Attempts that failed since the endpoint appeared. */
  failures: number;
  /** The endpoint's health state: one state machine for the breaker and outlier ejection. */
  health: EndpointHealthState;
  /** The breaker's public state, read from `health` (`probing` is `halfOpen`). */
  breaker: BreakerState;
  /** `health === 'ejected'`. */
  ejected: boolean;
}

/** Discovery of a client's service in {@link ClientStats}. */
export interface DiscoveryStats {
  /**
   * The resolver's snapshot is stale (registry unreachable or silent, no leader, reset grace):
   * the client keeps serving its last known endpoints (see the `discoveryStale` event).
   */
  stale: boolean;
  /** While stale: since when (epoch ms). */
  staleSince: number | undefined;
  /** When the registry last confirmed the set (epoch ms); undefined before the first snapshot. */
  lastConfirmedAt: number | undefined;
  /** The snapshot's source (`consul`, `etcd`, `dns`…); undefined before the first snapshot. */
  source: string | undefined;
}

/** A point-in-time view of a client. */
export interface ClientStats {
  service: string;
  /** Balancer name. */
  balancer: string;
  /** Panic mode (balancing over every endpoint because too few are available). */
  panic: boolean;
  /** Endpoints in the current pick set. */
  ready: number;
  /** Retries the budget allows right now (the budget exists even with `retry: false`: per-request policies draw on it). */
  retryBudget: number;
  /** The freshness of the endpoints' source. */
  discovery: DiscoveryStats;
  endpoints: EndpointStats[];
}
