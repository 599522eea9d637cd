/**
 * The settings one call takes, declared once: {@link PerCallOptions} is what
 * `client.request()`, `client.fetch()` and a dispatcher request all accept
 * beside their own shape of a request, checked and copied by one key list.
 * @module
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { InvalidOptionError } from '@proxyless/core';
import { checkKnownKeys, optionKeys } from '@proxyless/core/internal';
import { buildPolicy, isRequestPolicy, type PolicyOptions, type RequestPolicy } from './policy.js';

/**
 * Per-call settings, the same for every way into a client: the options of
 * {@link ProxylessClient.request}, the init of {@link ProxylessClient.fetch}
 * and the options of an undici request through {@link createDispatcher}.
 * Fields left out keep the policy's (or the client's) values; the
 * {@link PolicyOptions} given here override the policy's, validated per call.
 */
export interface PerCallOptions extends PolicyOptions {
  /**
   * The policy (deadline, per-try timeout, retries, hedging) for this call, built once
   * with {@link ProxylessClient.policy}. Default: the client's.
   */
  policy?: RequestPolicy;
  /** Mark a non-idempotent method (e.g. POST) safe to retry, or an idempotent one unsafe. Default: by method. */
  idempotent?: boolean;
  /** Key for consistent-hash balancers (affinity). */
  hashKey?: string;
}

/** Request body types. Strings and byte arrays are replayable (retries may resend them); streams are not. */
export type RequestBody = string | Uint8Array | Readable | null;

/** One request, undici style: the request itself plus the {@link PerCallOptions}. */
export interface RequestOptions extends PerCallOptions {
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
   * Record why each attempt went where it went (candidates, scores, excluded
   * endpoints and why) in `picks` of the response or error. Default false.
   */
  explain?: boolean;
}

/**
 * `RequestInit` plus the {@link PerCallOptions}, for {@link ProxylessClient.fetch}.
 * `priority` is Proxyless's request priority (`PerCallOptions.priority`, sent
 * as `x-proxyless-priority` for servers that shed by priority), not the
 * browser's fetch hint of the same name (`'high' | 'low' | 'auto'`, which
 * Node's fetch ignores): newer `RequestInit` types declare that one, and a type
 * cannot extend both.
 */
export interface ProxylessRequestInit extends Omit<RequestInit, 'priority'>, PerCallOptions {}

/** Every per-call key (the compiler keeps the list equal to the type). */
const perCallKeys = optionKeys<PerCallOptions>({ policy: true, timeoutMs: true, perTryTimeoutMs: true, retry: true, priority: true, hedge: true, idempotent: true, hashKey: true }) as readonly (keyof PerCallOptions)[];

const requestKeys = optionKeys<RequestOptions>({
  path: true, method: true, headers: true, body: true, signal: true, explain: true,
  policy: true, timeoutMs: true, perTryTimeoutMs: true, retry: true, priority: true, hedge: true, idempotent: true, hashKey: true,
});
const requestKeySet: ReadonlySet<string> = new Set(requestKeys);

/**
 * Throws `InvalidOptionError` naming an unknown key of a request (with the
 * nearest valid one). On the hot path: a for-in over a few keys and Set
 * lookups; the full check only on a miss.
 * @internal
 */
export function checkRequestKeys(input: RequestOptions, owner: string): void {
  for (const key in input) {
    if (requestKeySet.has(key)) continue;
    checkNoLocation(input, owner, 'pass the path alone ({ path: \'/users/42\' }); to pick the service from a URL\'s host, send through createDispatcher()');
    checkKnownKeys('', input, requestKeys, owner);
  }
}

/** Where a request would go in a plain HTTP client: a balancing client takes none of them. */
const locationKeys = ['host', 'hostname', 'origin', 'url', 'baseUrl', 'port'] as const;

/**
 * Throws `InvalidOptionError` for a key that names where to send (`host`,
 * `url`…), with `fix`: a client's instances come from its resolver, so a
 * "not an option, valid keys: …" list would not say what to do instead.
 * @internal
 */
export function checkNoLocation(input: object, owner: string, fix: string): void {
  for (const key of locationKeys) {
    if (!Object.hasOwn(input, key) || (input as Record<string, unknown>)[key] === undefined) continue;
    // The value is left out, as for any unknown key: it may carry credentials (a URL with a password).
    const error = new InvalidOptionError(key, '<not shown>', '');
    error.message = `Invalid option "${key}": ${owner} takes no ${key}: a client calls the one service it was created for, ` +
      `on the instances its resolver finds. Fix: ${fix}`;
    throw error;
  }
}

/**
 * Copies the per-call settings `from` sets onto `to`: the one copy that
 * `fetch()` and the dispatcher make from their own request shapes.
 * @internal
 */
export function copyPerCall(from: PerCallOptions, to: PerCallOptions): void {
  for (const key of perCallKeys) {
    if (from[key] !== undefined) (to as Record<string, unknown>)[key] = from[key];
  }
}

/**
 * The policy of one call: its `policy` (or the client's), with the call's
 * own `timeoutMs` / `perTryTimeoutMs` / `retry` over it, validated.
 * @internal
 */
export function callPolicy(call: PerCallOptions, clientPolicy: RequestPolicy, perTryExplicit: boolean): RequestPolicy {
  let policy = clientPolicy;
  if (call.policy !== undefined) {
    if (!isRequestPolicy(call.policy)) throw new InvalidOptionError('policy', call.policy, 'must be a policy built by client.policy()');
    policy = call.policy;
  }
  if (call.timeoutMs === undefined && call.perTryTimeoutMs === undefined && call.retry === undefined && call.priority === undefined && call.hedge === undefined) return policy;
  // The call's keys were checked with its request: its policy fields are read in place, not copied.
  return buildPolicy(call, policy, perTryExplicit || call.policy !== undefined, false).policy;
}
