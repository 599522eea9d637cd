import {
  BadResponseError,
  ConsulApiError,
  ConsulHttpClient,
  RegistrationLostError,
  type RegistryCallOptions,
  type RegistryPort,
  type RegistryReport,
  runBlockingQuery,
} from '@proxyless/core';
import { withDeadline } from '@proxyless/core/internal';
import { describeAgentFailure } from './agent-report.js';
import { isRetryable, isUnknownCheck, isUnreachable } from './heartbeat.js';
import { formatDuration, type ResolvedRegistrarOptions } from './options.js';

/**
 * The Consul implementation of the registry port: a service registration
 * with a TTL check in the local agent, heartbeats as check updates,
 * maintenance mode, and a blocking health query to confirm the instance left
 * the passing set.
 * @internal
 */
export class ConsulRegistry implements RegistryPort {
  readonly kind = 'consul';
  readonly label: string;
  readonly #client: ConsulHttpClient;
  readonly #ownsClient: boolean;
  readonly #o: ResolvedRegistrarOptions;

  constructor(options: ResolvedRegistrarOptions, consul: ConsulHttpClient | ConstructorParameters<typeof ConsulHttpClient>[0]) {
    this.#o = options;
    if (consul instanceof ConsulHttpClient) {
      this.#client = consul;
      this.#ownsClient = false;
    } else {
      this.#client = new ConsulHttpClient(consul ?? {});
      this.#ownsClient = true;
    }
    this.label = `the Consul agent at ${this.#client.connection.origin}`;
  }

  async register(report: RegistryReport, { signal, timeoutMs }: RegistryCallOptions): Promise<void> {
    const o = this.#o;
    await this.#client.request({
      method: 'PUT',
      path: '/v1/agent/service/register',
      query: { 'replace-existing-checks': true },
      body: {
        ID: o.id,
        Name: o.name,
        Address: o.address,
        Port: o.port,
        Tags: o.tags,
        Meta: o.meta,
        ...(o.weights ? { Weights: { Passing: o.weights.passing, Warning: o.weights.warning } } : {}),
        Check: {
          CheckID: o.checkId,
          Name: o.checkName,
          TTL: formatDuration(o.ttlMs),
          // A new check starts critical unless told otherwise; we only register once ready.
          Status: report.status,
          Notes: `TTL heartbeat every ~${o.heartbeatIntervalMs} ms by @proxyless/registrar`,
          ...(o.deregisterCriticalServiceAfterMs > 0
            ? { DeregisterCriticalServiceAfter: formatDuration(o.deregisterCriticalServiceAfterMs) }
            : {}),
        },
      },
      signal,
      timeoutMs,
    });
  }

  async heartbeat(report: RegistryReport, { signal, timeoutMs }: RegistryCallOptions): Promise<void> {
    try {
      await this.#client.request({
        method: 'PUT',
        path: `/v1/agent/check/update/${encodeURIComponent(this.#o.checkId)}`,
        body: { Status: report.status, Output: report.output },
        signal,
        timeoutMs,
      });
    } catch (error) {
      if (isUnknownCheck(error)) throw new RegistrationLostError(`the agent no longer knows check ${this.#o.checkId}`, { cause: error });
      throw error;
    }
  }

  async setMaintenance(enable: boolean, reason: string | undefined, { signal, timeoutMs }: RegistryCallOptions): Promise<void> {
    await this.#client.request({
      method: 'PUT',
      path: `/v1/agent/service/maintenance/${encodeURIComponent(this.#o.id)}`,
      query: { enable: enable ? 'true' : 'false', reason: enable ? reason : undefined },
      signal,
      timeoutMs,
    });
  }

  /** `GET /v1/health/service/:name?passing` on core's blocking-query loop until this instance is absent. */
  async waitUntilGone({ signal, timeoutMs }: RegistryCallOptions, onError: (error: unknown) => void): Promise<boolean> {
    let gone = false;
    await withDeadline(signal, timeoutMs, (limit) => runBlockingQuery(this.#client, {
      path: `/v1/health/service/${encodeURIComponent(this.#o.name)}`,
      query: { passing: true },
      signal: limit,
      decode: (body) => {
        if (!Array.isArray(body)) throw new BadResponseError(`Consul health answer for "${this.#o.name}" is not an array`);
        return body as { Service?: { ID?: unknown } }[];
      },
      onAnswer: (entries) => {
        gone = !entries.some((e) => e?.Service?.ID === this.#o.id);
        return gone ? false : undefined;
      },
      onError,
    }, { waitMs: Math.min(600_000, Math.max(1000, timeoutMs)) }));
    return gone;
  }

  async deregister({ signal, timeoutMs }: RegistryCallOptions): Promise<void> {
    try {
      await this.#client.request({
        method: 'PUT',
        path: `/v1/agent/service/deregister/${encodeURIComponent(this.#o.id)}`,
        signal,
        timeoutMs,
      });
    } catch (error) {
      if (error instanceof ConsulApiError && error.status === 404) return; // already gone
      throw error;
    }
  }

  isRetryable(error: unknown): boolean {
    return isRetryable(error);
  }

  isUnreachable(error: unknown): boolean {
    return isUnreachable(error);
  }

  describeFailure(error: unknown, service: string): string {
    return describeAgentFailure(error, this.#client.connection.origin, service);
  }

  async close(): Promise<void> {
    if (this.#ownsClient) await this.#client.close();
  }
}
