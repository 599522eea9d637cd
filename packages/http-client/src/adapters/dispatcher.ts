/**
 * An undici `Dispatcher` that sends requests for service origins
 * (`http://users.service.consul`, `http://users`, a configured host) through
 * a balancing {@link ProxylessClient} per service, and every other origin to
 * a fallback dispatcher untouched — so `fetch`, `undici.request`, SDKs that
 * take a dispatcher or a `fetch`, and (after `setGlobalDispatcher`) the global
 * `fetch` get client-side balancing without a change.
 * @module
 */
import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { Agent, Dispatcher } from 'undici';
import { AbortedError, ClosedError, InvalidOptionError, InvalidServiceNameError, type Resolver } from '@proxyless/core';
import { createClient, type ProxylessClient } from '../client.js';
import { NoHealthyEndpointsError, UnknownServiceError } from '../shared/errors.js';
import type { ClientOptions, ClientSettings } from '../config/options.js';
import { resolveDispatcherOptions, type DispatcherOptions } from '../config/dispatcher-options.js';
import type { CallHandle } from '../request/call.js';
export type { DispatcherOptions } from '../config/dispatcher-options.js';
import type { ForwardedAttempt, Sink } from '../request/forwarded-attempt.js';
import { copyPerCall, type PerCallOptions, type RequestBody, type RequestOptions } from '../config/call-options.js';

/**
 * Per-request settings a caller of `undici.request()` / `dispatcher.request()`
 * may add to its options for a service origin (ignored for other origins):
 * the same {@link PerCallOptions} as `client.request()` and `client.fetch()`.
 * Build a policy with {@link ProxylessClient.policy} on {@link ServiceDispatcher.client}.
 */
export type ServiceDispatchOptions = PerCallOptions;

/** A service a host routes to. @internal */
interface Route {
  service: string;
  /** Client key: the service, with `https:` when the origin asks for TLS. */
  key: string;
  https: boolean;
}

/** A host under the service domain that names no valid service: it fails, it never goes to the fallback (and DNS). @internal */
interface InvalidHost {
  host: string;
  reason: string;
}

/** At most this many origins' routing decisions are cached (the cache is cleared when full). */
const ROUTE_CACHE_MAX = 1024;

/** The handler shape Node's built-in `fetch` and undici's `request()` pass (undici marks it deprecated, but it is what they call us with). */
interface LegacyHandler {
  onConnect?(abort: (reason?: Error) => void, context?: object): void;
  onResponseStarted?(): void;
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(trailers: Buffer[] | null): void;
  onError?(error: Error): void;
}

/** A handler seen as a {@link Sink}, plus how a request starts (`abort` stops it). */
interface HandlerSink extends Sink {
  start(abort: (reason?: Error) => void): void;
}

/** An `onConnect`/`onHeaders`/`onData`/`onComplete`/`onError` handler (what `fetch` and `request` pass): the backend's raw headers go through as they came. */
class LegacySink implements HandlerSink {
  readonly #h: LegacyHandler;

  constructor(h: LegacyHandler) {
    this.#h = h;
  }

  start(abort: (reason?: Error) => void): void {
    this.#h.onConnect?.(abort, {});
  }

  headers(statusCode: number, rawHeaders: Buffer[], _headers: IncomingHttpHeaders, resume: () => void): boolean {
    this.#h.onResponseStarted?.();
    return this.#h.onHeaders?.(statusCode, rawHeaders, resume, STATUS_CODES[statusCode] ?? '') !== false;
  }

  data(chunk: Buffer): boolean {
    return this.#h.onData?.(chunk) !== false;
  }

  end(): void {
    this.#h.onComplete?.([]);
  }

  error(error: Error): void {
    this.#h.onError?.(error); // a handler without onError: nothing else to tell
  }
}

/** An `onRequestStart`/`onResponseStart`/… handler with a controller (what `compose()` interceptors pass). */
function controllerSink(h: Dispatcher.DispatchHandler): HandlerSink {
  let abortFn: (reason?: Error) => void = () => undefined;
  let resumeFn: () => void = () => undefined;
  let aborted = false;
  let reason: Error | null = null;
  let paused = false;
  const controller: Dispatcher.DispatchController = {
    get aborted() {
      return aborted;
    },
    get paused() {
      return paused;
    },
    get reason() {
      return reason;
    },
    abort(r: Error) {
      if (aborted) return;
      aborted = true;
      reason = r;
      abortFn(r);
    },
    pause() {
      paused = true;
    },
    resume() {
      if (!paused) return;
      paused = false;
      resumeFn();
    },
  };
  return {
    start(abort) {
      abortFn = abort;
      h.onRequestStart?.(controller, {});
    },
    headers(statusCode, _rawHeaders, headers, resume) {
      resumeFn = resume;
      h.onResponseStart?.(controller, statusCode, headers, STATUS_CODES[statusCode] ?? '');
      return !paused;
    },
    data(chunk) {
      h.onResponseData?.(controller, chunk);
      return !paused;
    },
    end: () => h.onResponseEnd?.(controller, {}),
    error: (error) => h.onResponseError?.(controller, error),
  };
}

/** The request body as the client takes it: replayable forms kept, any other iterable streamed. */
function toBody(body: Dispatcher.DispatchOptions['body']): RequestBody | undefined {
  if (body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array || body instanceof Readable) return body;
  if (body instanceof FormData) throw new InvalidOptionError('body', 'FormData', 'is not supported by request() to a service origin; send it with fetch()');
  const iterable = body as unknown as Partial<AsyncIterable<Uint8Array>> & Partial<Iterable<Uint8Array>>;
  if (typeof iterable[Symbol.asyncIterator] === 'function' || typeof iterable[Symbol.iterator] === 'function') {
    return Readable.from(iterable as AsyncIterable<Uint8Array>, { objectMode: false });
  }
  throw new InvalidOptionError('body', typeof body, 'must be a string, bytes, a stream or an (async) iterable of bytes');
}

function withQuery(path: string, query: Record<string, unknown> | undefined): string {
  if (query === undefined) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    for (const item of Array.isArray(v) ? (v as unknown[]) : [v]) {
      if (item === undefined || item === null) continue;
      params.append(k, typeof item === 'string' ? item : typeof item === 'number' || typeof item === 'boolean' ? item.toString() : JSON.stringify(item));
    }
  }
  const qs = params.toString();
  return qs === '' ? path : `${path}${path.includes('?') ? '&' : '?'}${qs}`;
}

/**
 * The dispatcher made by {@link createDispatcher}: one balancing client per
 * service, made on first use; everything else to the fallback.
 */
export class ServiceDispatcher extends Dispatcher {
  readonly #resolver: Resolver;
  readonly #clientOptions: ClientSettings;
  readonly #mapping: ReadonlyMap<string, string>;
  readonly #domainSuffix: string | undefined;
  readonly #bare: boolean;
  readonly #fallback: Dispatcher;
  readonly #ownsFallback: boolean;
  readonly #clients = new Map<string, ProxylessClient>();
  readonly #routes = new Map<string, Route | InvalidHost | null>();
  #closed = false;

  /** Use {@link createDispatcher}. */
  constructor(options: DispatcherOptions) {
    super();
    const o = resolveDispatcherOptions(options);
    this.#resolver = o.resolver;
    this.#clientOptions = o.client;
    this.#mapping = o.services;
    this.#domainSuffix = o.domainSuffix;
    this.#bare = o.bareHostnames;
    this.#fallback = o.fallback ?? new Agent();
    this.#ownsFallback = o.fallback === undefined;
  }

  /** True after {@link ServiceDispatcher.close} or {@link ServiceDispatcher.destroy}. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The service an origin routes to, or `undefined` when it goes to the fallback.
   * A trailing dot is ignored (`users.service.consul.` is `users.service.consul`).
   * @param origin - `http://users.service.consul`, a URL, …
   * @throws `InvalidServiceNameError` (`ERR_INVALID_SERVICE_NAME`) for a host under the
   * service domain that names no valid service (`..service.consul`, `-x.service.consul`):
   * such a request fails with it too, and is never handed to the fallback or DNS.
   */
  serviceOf(origin: string | URL): string | undefined {
    const route = this.#route(typeof origin === 'string' ? origin : origin.origin);
    if (route !== undefined && 'reason' in route) throw invalidHost(route, this.#domainSuffix ?? '');
    return route?.service;
  }

  #route(origin: string): Route | InvalidHost | undefined {
    const cached = this.#routes.get(origin);
    if (cached !== undefined) return cached ?? undefined;
    let route: Route | InvalidHost | null = null;
    try {
      const url = new URL(origin);
      if (url.protocol === 'http:' || url.protocol === 'https:') {
        // A fully qualified name (`users.service.consul.`) is the same host as the dotless one: routing it
        // to the fallback would send a real DNS query for it.
        const name = url.hostname.toLowerCase().replace(/\.$/, '');
        const host = url.port === '' ? name : `${name}:${url.port}`;
        let service = this.#mapping.get(host) ?? this.#mapping.get(name);
        if (service === undefined && this.#domainSuffix !== undefined && (name.endsWith(this.#domainSuffix) || name === this.#domainSuffix.slice(1))) {
          // Everything under the service domain is ours: a host that names no valid service is an error, never a DNS lookup.
          const label = name.slice(0, Math.max(0, name.length - this.#domainSuffix.length));
          if (SERVICE_LABEL.test(label)) service = label;
          else route = { host: url.hostname, reason: whyNotAServiceLabel(label, this.#domainSuffix, url.hostname) };
        }
        if (route === null && service === undefined && this.#bare && SERVICE_LABEL.test(name) && name !== 'localhost' && !/^\d+$/.test(name)) service = name;
        if (service !== undefined) {
          const https = url.protocol === 'https:';
          route = { service, https, key: https ? `https:${service}` : service };
        }
      }
    } catch {
      route = null; // not a URL: the fallback decides what to do with it
    }
    if (this.#routes.size >= ROUTE_CACHE_MAX) this.#routes.clear();
    this.#routes.set(origin, route);
    return route ?? undefined;
  }

  /**
   * The balancing client of a service (made on first use), e.g. to build a
   * policy with {@link ProxylessClient.policy}, read `stats()` or listen to its events.
   * @throws `ClosedError` after close; `InvalidOptionError` for a bad service name.
   */
  client(service: string, options: { https?: boolean } = {}): ProxylessClient {
    if (this.#closed) throw new ClosedError('Service dispatcher');
    const key = options.https === true ? `https:${service}` : service;
    let client = this.#clients.get(key);
    if (client === undefined) {
      const o: ClientOptions = { ...this.#clientOptions, service, resolver: this.#resolver };
      if (options.https === true) o.scheme = 'https';
      client = createClient(o);
      this.#clients.set(key, client);
    }
    return client;
  }

  /** undici's dispatch: a service origin goes through its balancing client, any other to the fallback. */
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const given = options.origin;
    const origin = given === undefined ? '' : typeof given === 'string' ? given : given.origin;
    const route = this.#route(origin);
    if (route === undefined) return this.#fallback.dispatch(options, handler);
    const sink = typeof handler.onRequestStart === 'function' ? controllerSink(handler) : new LegacySink(handler as unknown as LegacyHandler);
    if ('reason' in route) {
      const exchange = new Exchange(sink, route.host);
      sink.start(exchange.abort);
      exchange.fail(invalidHost(route, this.#domainSuffix ?? ''));
    } else {
      this.#send(route, origin, options, sink);
    }
    return true;
  }

  #send(route: Route, origin: string, options: Dispatcher.DispatchOptions & ServiceDispatchOptions, sink: HandlerSink): void {
    const exchange = new Exchange(sink, route.service);
    let client: ProxylessClient;
    let req: RequestOptions;
    try {
      sink.start(exchange.abort);
      if (exchange.over) return;
      if (this.#closed) throw new ClosedError('Service dispatcher');
      const { upgrade, method, path, query, headers, body } = options;
      if (upgrade || method === 'CONNECT') {
        throw new InvalidOptionError('upgrade', upgrade ?? method, `is not supported for the service origin ${origin}`);
      }
      req = { path: withQuery(path, query), method, headers: headers as RequestOptions['headers'], body: toBody(body) };
      copyPerCall(options, req);
      client = this.#clients.get(route.key) ?? this.client(route.service, { https: route.https });
    } catch (error) {
      exchange.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    const forwarded = client.forward(req);
    exchange.call = forwarded;
    forwarded.response.then(
      (res) => exchange.answered(res.body),
      (error: unknown) => exchange.fail(this.#unknown(error, client, route, origin)),
    );
  }

  /** A service with no instance at all is unknown: the error names it (and its idle client is dropped). */
  #unknown(error: unknown, client: ProxylessClient, route: Route, origin: string): Error {
    if (!(error instanceof NoHealthyEndpointsError) || client.stats().endpoints.length > 0) return error instanceof Error ? error : new Error(String(error));
    if (this.#clients.get(route.key) === client) {
      this.#clients.delete(route.key);
      client.close().catch(() => undefined);
    }
    return new UnknownServiceError(origin, { service: route.service, attempts: error.attempts, endpointsTried: error.endpointsTried, cause: error });
  }

  /**
   * Closes every service client (requests in progress finish, within their
   * `drainTimeoutMs`) and the default fallback; a fallback you passed stays open.
   * Idempotent.
   */
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const done = this.#end((c) => c.close(), (d) => d.close());
    if (callback === undefined) return done;
    done.then(callback, callback);
  }

  /** Fails every request in progress, destroys every service client and the default fallback. Idempotent. */
  override destroy(error?: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(error: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    const error = typeof a === 'function' ? undefined : (a ?? undefined);
    const callback = typeof a === 'function' ? a : b;
    const done = this.#end((c) => c.destroy(error), (d) => d.destroy(error ?? null));
    if (callback === undefined) return done;
    done.then(callback, callback);
  }

  #ending: Promise<void> | undefined;

  #end(client: (c: ProxylessClient) => Promise<void>, fallback: (d: Dispatcher) => Promise<void>): Promise<void> {
    this.#closed = true;
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    const work = Promise.all([...clients.map((c) => client(c).catch(() => undefined)), this.#ownsFallback ? fallback(this.#fallback).catch(() => undefined) : undefined]).then(() => undefined);
    this.#ending = this.#ending ? Promise.all([this.#ending, work]).then(() => undefined) : work;
    return this.#ending;
  }

  /** Same as {@link ServiceDispatcher.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * One request of a caller's handler to a service: the caller's abort stops
 * the client's call, or the answer's body once it flows to the handler.
 */
class Exchange {
  /** The client's call, once forwarded: the caller's abort stops it. */
  call: CallHandle | undefined;
  #answer: ForwardedAttempt | undefined;
  /** The handler was told the outcome (or the answer now tells it). */
  over = false;
  readonly #sink: HandlerSink;
  readonly #service: string;

  constructor(sink: HandlerSink, service: string) {
    this.#sink = sink;
    this.#service = service;
  }

  /** Given to the handler as its `abort`. */
  readonly abort = (reason?: Error): void => {
    const error = reason ?? new AbortedError(`Request to "${this.#service}"`);
    if (this.#answer !== undefined) {
      this.#answer.abort(error); // undici then reports the error through the answer to the handler
      return;
    }
    if (this.over) return;
    this.call?.stop('caller');
    this.fail(error);
  };

  answered(answer: ForwardedAttempt): void {
    if (this.over) {
      answer.abort();
      return;
    }
    this.over = true;
    this.#answer = answer; // from here the answer reports its end or error to the handler itself
    answer.pipe(this.#sink);
  }

  fail(error: Error): void {
    if (this.over) return;
    this.over = true;
    this.#sink.error(error);
  }
}

/** A service name as one DNS label (what `validateServiceName` accepts, lower-cased hosts). */
const SERVICE_LABEL = /^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$/;

/**
 * Why the part of a host before the service domain is not a service name
 * (`label` fails {@link SERVICE_LABEL}), and the fix: the host the caller
 * should have written, or the `services` mapping that routes this one.
 */
function whyNotAServiceLabel(label: string, domainSuffix: string, host: string): string {
  const form = `http://<service>${domainSuffix}/…`;
  const mapIt = `or route this host to a service with createDispatcher({ services: { "${host}": "<service>" } })`;
  if (label === '') return `names no service before it. Fix: put the service's name first (${form})`;
  if (label.includes('.')) {
    return `has ${label.split('.').length} labels before it ("${label}"), and a service name is one label. Fix: call ${form}, ${mapIt}`;
  }
  return `has "${label}" before it, which is not a valid service name (letters, digits, "-", "_"; 1-63 characters; first and last a letter or digit). ` +
    `Fix: use the name the service registered with (${form}), ${mapIt}`;
}

/**
 * The error of a host under the service domain that names no service. Its
 * message says "host in the request URL", not `Invalid option "host"`: the
 * caller passed a URL, not an option called host. `option` stays `host`.
 */
function invalidHost({ host, reason }: InvalidHost, domainSuffix: string): InvalidServiceNameError {
  const message = `Invalid host "${host}" in the request URL: it is under the service domain "${domainSuffix.slice(1)}" but ${reason}. Nothing was sent.`;
  return new InvalidServiceNameError('host', host, reason, message);
}

/**
 * Creates an undici `Dispatcher` that balances requests for service origins
 * across the service's instances and passes every other origin to a fallback
 * dispatcher untouched.
 *
 * A service origin is `http://<service>.service.consul` (the `serviceDomain`),
 * `http://<service>` (a single-label host, unless `bareHostnames: false`) or a
 * host listed in `services`; the port in the URL is ignored (the resolver has
 * the instances' ports), `https:` means TLS to the instances. Each service gets
 * one {@link ProxylessClient} on first use: pick, breaker, ejection, retries
 * under the budget, deadline. An unknown service fails with
 * {@link UnknownServiceError} naming it; a host under the service domain that
 * is not a valid service name (`..service.consul`, `-x.service.consul`) fails
 * with `InvalidServiceNameError` before anything is looked up or sent, and a
 * trailing dot (`users.service.consul.`) routes like the dotless host.
 * @example
 * ```ts
 * import { setGlobalDispatcher } from 'undici';
 * import { ConsulResolver } from '@proxyless/core';
 * import { createDispatcher } from '@proxyless/http-client';
 *
 * const dispatcher = createDispatcher({ resolver: new ConsulResolver(), client: { timeoutMs: 2_000 } });
 * const res = await fetch('http://users.service.consul/users/42', { dispatcher } as RequestInit);
 * setGlobalDispatcher(dispatcher); // now every plain fetch('http://users/…') is balanced too
 * ```
 */
export function createDispatcher(options: DispatcherOptions): ServiceDispatcher {
  return new ServiceDispatcher(options);
}
