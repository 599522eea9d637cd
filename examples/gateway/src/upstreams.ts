/**
 * The gateway's contact with discovery and balancing: per routed service, a
 * `@proxyless/http-client` client over a `ConsulResolver` health watch. The
 * rest of the gateway codes against the small types here.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { ConsulHttpClient, ConsulResolver } from '@proxyless/core';
import { createClient, type EndpointInfo, type ProxylessClient } from '@proxyless/http-client';

/** Live state of one endpoint of a service, as the status page shows it. */
export interface EndpointStatus {
  /** Instance identity (`<node>/<service id>`). */
  readonly key: string;
  /** Service instance ID. */
  readonly id: string;
  /** `address:port`. */
  readonly label: string;
  /** Always `passing`: the health watch only returns instances whose checks all pass. */
  readonly health: string;
  readonly inFlight: number;
  /** Peak-EWMA latency estimate, ms (0 when unknown). */
  readonly ewmaMs: number;
  readonly successes: number;
  readonly failures: number;
  readonly breaker: 'closed' | 'open' | 'halfOpen';
  readonly ejected: boolean;
}

/** One forwarded request. Bodies stream; nothing is buffered. */
export interface UpstreamRequest {
  readonly method: string;
  /** Path and query string, as sent to the instance. */
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  /** Request body stream, or null when there is none. */
  readonly body: Readable | null;
  readonly signal: AbortSignal;
  /** Time limit of each try (to the response headers, then between body chunks), in ms. */
  readonly timeoutMs: number;
  /**
   * Extra tries on other instances. The client only retries what is safe: a
   * connection that never reached the instance, or an idempotent method
   * without a streamed (unreplayable) body.
   */
  readonly retries: number;
  /** Statuses retried like failures. */
  readonly retryOnStatus: readonly number[];
}

/** An instance's answer; `body` streams. */
export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
  /** `address:port` of the endpoint that answered. */
  readonly endpoint: string;
  readonly attempts: number;
}

/** A notable endpoint event, for the status page. */
export interface UpstreamEvent {
  readonly at: number;
  readonly service: string;
  readonly event: string;
  readonly endpoint: string;
}

/** A balancing client for one service. */
export interface Upstream {
  readonly service: string;
  request(request: UpstreamRequest): Promise<UpstreamResponse>;
  stats(): EndpointStatus[];
  close(): Promise<void>;
}

/**
 * One service's upstream. Retry settings are per client in
 * `@proxyless/http-client`, so routes with different retry policies to the
 * same service get their own client (their own breakers and statistics);
 * the status page adds their numbers up per endpoint.
 */
class ServiceUpstream implements Upstream {
  readonly #clients = new Map<string, ProxylessClient>();

  constructor(
    readonly service: string,
    private readonly resolver: ConsulResolver,
    private readonly onEvent: (event: UpstreamEvent) => void,
    defaults: { retries: number; retryOnStatus: readonly number[] },
  ) {
    // The default policy's client exists from the start, so its endpoints show before any traffic.
    this.#client(defaults.retries, defaults.retryOnStatus);
  }

  #client(retries: number, retryOnStatus: readonly number[]): ProxylessClient {
    const id = `${retries}|${retryOnStatus.join(',')}`;
    let client = this.#clients.get(id);
    if (!client) {
      client = createClient({
        service: this.service,
        resolver: this.resolver,
        retry: retries === 0 ? false : { maxRetries: retries, retryOnStatuses: retryOnStatus },
      });
      const report = (event: string) => (endpoint: EndpointInfo): void =>
        this.onEvent({ at: Date.now(), service: this.service, event, endpoint: endpoint.label });
      client.on('endpointAdded', report('added'));
      client.on('endpointRemoved', report('removed'));
      client.on('breakerOpen', report('breaker open'));
      client.on('breakerHalfOpen', report('breaker half-open'));
      client.on('breakerClose', report('breaker closed'));
      client.on('eject', report('ejected'));
      client.on('restore', report('restored'));
      client.on('error', () => undefined); // the last good endpoints stay in use
      this.#clients.set(id, client);
    }
    return client;
  }

  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const res = await this.#client(req.retries, req.retryOnStatus).request({
      method: req.method,
      path: req.path,
      headers: req.headers,
      body: req.body,
      signal: req.signal,
      perTryTimeoutMs: req.timeoutMs,
      // The overall deadline leaves every try its full time; after the headers
      // only the per-try (idle) limit applies to the streaming body.
      timeoutMs: req.timeoutMs * (req.retries + 1) + 1_000,
    });
    return { statusCode: res.statusCode, headers: res.headers, body: res.body, endpoint: res.endpoint.label, attempts: res.attempts };
  }

  stats(): EndpointStatus[] {
    const merged = new Map<string, EndpointStatus>();
    for (const client of this.#clients.values()) {
      for (const e of client.stats().endpoints) {
        const prev = merged.get(e.key);
        const breaker = prev?.breaker === 'open' || e.breaker === 'open' ? 'open'
          : prev?.breaker === 'halfOpen' || e.breaker === 'halfOpen' ? 'halfOpen' : 'closed';
        merged.set(e.key, {
          key: e.key,
          id: e.key.slice(e.key.lastIndexOf('/') + 1),
          label: e.label,
          health: 'passing',
          inFlight: (prev?.inFlight ?? 0) + e.inFlight,
          ewmaMs: Math.round(Math.max(prev?.ewmaMs ?? 0, e.ewmaMs) * 10) / 10,
          successes: (prev?.successes ?? 0) + e.successes,
          failures: (prev?.failures ?? 0) + e.failures,
          breaker,
          ejected: (prev?.ejected ?? false) || e.ejected,
        });
      }
    }
    return [...merged.values()];
  }

  async close(): Promise<void> {
    await Promise.all([...this.#clients.values()].map((c) => c.close()));
    this.#clients.clear();
  }
}

/** Creates upstreams over one shared Consul connection and resolver (one health watch per service). */
export class Upstreams {
  readonly consul: ConsulHttpClient;
  readonly resolver: ConsulResolver;
  /** The latest endpoint events, newest first (at most 50). */
  readonly events: UpstreamEvent[] = [];

  constructor(consulAddress: string) {
    this.consul = new ConsulHttpClient({ address: consulAddress });
    this.resolver = new ConsulResolver({ client: this.consul });
  }

  open(service: string, defaults: { retries: number; retryOnStatus: readonly number[] }): Upstream {
    return new ServiceUpstream(service, this.resolver, (event) => {
      this.events.unshift(event);
      this.events.length = Math.min(this.events.length, 50);
    }, defaults);
  }

  async close(): Promise<void> {
    await this.resolver.close();
    await this.consul.close();
  }
}
