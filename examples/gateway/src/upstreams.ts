/**
 * The gateway's only contact with discovery and balancing: one `Upstream`
 * (a balancing, streaming HTTP client) per routed service, fed by a Consul
 * health watch. Everything else in the gateway codes against the types here.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { ConsulHttpClient, ConsulResolver, type Resolver } from '@proxyless/core';
import { StandInClient } from './stand-in-client.js';

/** Live state of one endpoint of a service, as the status page shows it. */
export interface EndpointStatus {
  /** Instance identity (`<node>/<service id>`). */
  readonly key: string;
  readonly id: string;
  readonly address: string;
  readonly port: number;
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
  /** Time until the response headers arrive, per try, in ms. */
  readonly timeoutMs: number;
  /** Extra tries on another endpoint after a connection failure (only used when `body` is null). */
  readonly retries: number;
  /** Statuses that count as a failed try and are retried (bodyless requests only). */
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

/** A balancing client for one service. */
export interface Upstream {
  readonly service: string;
  request(request: UpstreamRequest): Promise<UpstreamResponse>;
  stats(): EndpointStatus[];
  close(): Promise<void>;
}

/** Creates upstreams over one shared Consul connection and resolver. */
export class Upstreams {
  readonly consul: ConsulHttpClient;
  readonly resolver: Resolver;

  constructor(consulAddress: string) {
    this.consul = new ConsulHttpClient({ address: consulAddress });
    this.resolver = new ConsulResolver({ client: this.consul });
  }

  open(service: string): Upstream {
    return new StandInClient(service, this.resolver.watch(service));
  }

  async close(): Promise<void> {
    await this.resolver.close();
    await this.consul.close();
  }
}
