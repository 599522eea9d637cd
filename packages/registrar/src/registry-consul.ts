import {
  BadResponseError,
  ConsulApiError,
  ConsulHttpClient,
  ConsulUnreachableError,
  InvalidOptionError,
  RegistrationLostError,
  TimeoutError,
  runBlockingQuery,
  type ConsulConnectionOptions,
  type RegistrationSpec,
  type RegistryCallOptions,
  type RegistryFactory,
  type RegistryPort,
  type RegistryReport,
} from '@proxyless/core';
import {
  checkKnownKeys,
  checkNumber,
  consulConnectionKeys,
  describeConsulFailure,
  optionKeys,
  withDeadline,
} from '@proxyless/core/internal';

/** Consul's minimum for `DeregisterCriticalServiceAfter`. */
export const MIN_DEREGISTER_AFTER_MS = 60_000;

/**
 * Options of {@link consulRegistry}: the Consul agent's connection (default:
 * `CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN` and the TLS variables) and the
 * settings of the TTL check, which only Consul has.
 */
export interface ConsulRegistryOptions extends ConsulConnectionOptions {
  /** A client to share instead of connection options; not closed by the registrar. */
  client?: ConsulHttpClient;
  /** Environment for connection defaults. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** TTL check ID (1–128 characters of `[A-Za-z0-9_.:-]`). Default `service:<id>`. */
  checkId?: string;
  /** TTL check name (1–256 characters). Default `<name> TTL heartbeat`. */
  checkName?: string;
  /**
   * How long the check may stay critical before the agent reaps the
   * registration, in ms. Consul's minimum is 60 000. Default 60 000.
   * `0` disables reaping (not recommended).
   */
  deregisterCriticalServiceAfterMs?: number;
}

const checkIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

/** Renders milliseconds as a Go duration string for Consul (`15s`, `1500ms`). @internal */
export function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * True when a heartbeat answer means the agent no longer knows the check:
 * 404 `Unknown check ID` (Consul ≥ 1.11.2) or 500 `does not have associated TTL` (older agents).
 * @internal
 */
export function isUnknownCheck(error: unknown): boolean {
  if (!(error instanceof ConsulApiError)) return false;
  if (error.status === 404) return true;
  return error.status === 500 && /does not have associated TTL|unknown check/i.test(error.consulMessage);
}

/**
 * True when the agent could not be reached or did not answer in time.
 * @internal
 */
export function isUnreachable(error: unknown): boolean {
  return error instanceof ConsulUnreachableError || error instanceof TimeoutError;
}

/**
 * True for failures worth retrying: unreachable, timed out, 429, 5xx.
 * 400 (bad registration) and 403 (ACL denied) need a human.
 * @internal
 */
export function isRetryable(error: unknown): boolean {
  if (isUnreachable(error)) return true;
  if (error instanceof ConsulApiError) return error.status === 429 || error.status >= 500;
  return false;
}

/** The Consul settings of one registration, after defaults. */
interface CheckSettings {
  readonly checkId: string;
  readonly checkName: string;
  readonly deregisterCriticalServiceAfterMs: number;
}

/**
 * The Consul implementation of the registry port: a service registration
 * with a TTL check in the local agent, heartbeats as check updates,
 * maintenance mode, and a blocking health query to confirm the instance left
 * the passing set. Made by {@link consulRegistry}.
 */
export class ConsulRegistry implements RegistryPort {
  /** `consul`. */
  readonly kind = 'consul';
  /** `the Consul agent at <origin>`, for log lines. */
  readonly label: string;
  /** The TTL check ID: what the agent knows this registration by. */
  readonly registrationId: string;
  /** The client talking to the agent. */
  readonly client: ConsulHttpClient;
  readonly #ownsClient: boolean;
  readonly #spec: RegistrationSpec;
  readonly #check: CheckSettings;

  /** Use {@link consulRegistry} (it validates the options) rather than this constructor. */
  constructor(spec: RegistrationSpec, options: ConsulRegistryOptions = {}) {
    const { client, env, checkId, checkName, deregisterCriticalServiceAfterMs, ...connection } = options;
    this.#spec = spec;
    this.#check = {
      checkId: checkId ?? `service:${spec.id}`,
      checkName: checkName ?? `${spec.name} TTL heartbeat`,
      deregisterCriticalServiceAfterMs: deregisterCriticalServiceAfterMs ?? MIN_DEREGISTER_AFTER_MS,
    };
    if (!checkIdPattern.test(this.#check.checkId)) {
      // The default is built from the instance ID, which follows the same rule; a given one was checked by consulRegistry().
      throw new InvalidOptionError('checkId', this.#check.checkId, 'must be 1-128 characters of [A-Za-z0-9_.:-], starting with a letter or digit');
    }
    this.registrationId = this.#check.checkId;
    if (client !== undefined) {
      this.client = client;
      this.#ownsClient = false;
    } else {
      this.client = new ConsulHttpClient(connection, env);
      this.#ownsClient = true;
    }
    this.label = `the Consul agent at ${this.client.connection.origin}`;
  }

  /** The TTL check's ID (also {@link ConsulRegistry.registrationId}). */
  get checkId(): string {
    return this.#check.checkId;
  }

  /** The TTL check's name. */
  get checkName(): string {
    return this.#check.checkName;
  }

  /** Reap delay of a critical check, in ms (0: never). */
  get deregisterCriticalServiceAfterMs(): number {
    return this.#check.deregisterCriticalServiceAfterMs;
  }

  /** `PUT /v1/agent/service/register?replace-existing-checks` with the TTL check, its status being `report`'s. */
  async register(report: RegistryReport, { signal, timeoutMs }: RegistryCallOptions): Promise<void> {
    const s = this.#spec;
    const c = this.#check;
    await this.client.request({
      method: 'PUT',
      path: '/v1/agent/service/register',
      query: { 'replace-existing-checks': true },
      body: {
        ID: s.id,
        Name: s.name,
        Address: s.address,
        Port: s.port,
        Tags: s.tags,
        Meta: s.meta,
        ...(s.weights ? { Weights: { Passing: s.weights.passing, Warning: s.weights.warning } } : {}),
        Check: {
          CheckID: c.checkId,
          Name: c.checkName,
          TTL: formatDuration(s.ttlMs),
          // A new check starts critical unless told otherwise; we only register once ready.
          Status: report.status,
          Notes: `TTL heartbeat every ~${s.heartbeatIntervalMs} ms by @proxyless/registrar`,
          ...(c.deregisterCriticalServiceAfterMs > 0
            ? { DeregisterCriticalServiceAfter: formatDuration(c.deregisterCriticalServiceAfterMs) }
            : {}),
        },
      },
      signal,
      timeoutMs,
    });
  }

  /** `PUT /v1/agent/check/update/:checkId`; an agent that no longer knows the check means the registration was forgotten. */
  async heartbeat(report: RegistryReport, { signal, timeoutMs }: RegistryCallOptions): Promise<void> {
    try {
      await this.client.request({
        method: 'PUT',
        path: `/v1/agent/check/update/${encodeURIComponent(this.#check.checkId)}`,
        body: { Status: report.status, Output: report.output },
        signal,
        timeoutMs,
      });
    } catch (error) {
      if (isUnknownCheck(error)) {
        throw new RegistrationLostError(`the agent no longer knows check ${this.#check.checkId}`, { cause: error, reason: 'forgotten' });
      }
      throw error;
    }
  }

  /** Consul's maintenance mode: a critical `_service_maintenance:<id>` check. */
  async setMaintenance(enable: boolean, reason: string | undefined, { signal, timeoutMs }: RegistryCallOptions): Promise<void> {
    await this.client.request({
      method: 'PUT',
      path: `/v1/agent/service/maintenance/${encodeURIComponent(this.#spec.id)}`,
      query: { enable: enable ? 'true' : 'false', reason: enable ? reason : undefined },
      signal,
      timeoutMs,
    });
  }

  /** `GET /v1/health/service/:name?passing` on core's blocking-query loop until this instance is absent. */
  async waitUntilOutOfRotation({ signal, timeoutMs }: RegistryCallOptions, onError: (error: unknown) => void): Promise<boolean> {
    const { name, id } = this.#spec;
    let gone = false;
    await withDeadline(signal, timeoutMs, (limit) => runBlockingQuery(this.client, {
      path: `/v1/health/service/${encodeURIComponent(name)}`,
      query: { passing: true },
      signal: limit,
      decode: (body) => {
        if (!Array.isArray(body)) throw new BadResponseError(`Consul health answer for "${name}" is not an array`);
        return body as { Service?: { ID?: unknown } }[];
      },
      onAnswer: (entries) => {
        gone = !entries.some((e) => e?.Service?.ID === id);
        return gone ? false : undefined;
      },
      onError,
    }, { waitMs: Math.min(600_000, Math.max(1000, timeoutMs)) }));
    return gone;
  }

  /** `PUT /v1/agent/service/deregister/:id`; 404 (already gone) counts as done. */
  async deregister({ signal, timeoutMs }: RegistryCallOptions): Promise<void> {
    try {
      await this.client.request({
        method: 'PUT',
        path: `/v1/agent/service/deregister/${encodeURIComponent(this.#spec.id)}`,
        signal,
        timeoutMs,
      });
    } catch (error) {
      if (error instanceof ConsulApiError && error.status === 404) return; // already gone
      throw error;
    }
  }

  /** Unreachable, timed out, 429 or 5xx. */
  isRetryable(error: unknown): boolean {
    return isRetryable(error);
  }

  /** Refused, reset, unresolvable or timed out. */
  isUnreachable(error: unknown): boolean {
    return isUnreachable(error);
  }

  /** One sentence: what failed at the agent, its address, and what to set (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`). */
  describeFailure(error: unknown, service: string): string {
    return describeConsulFailure(error, this.client.connection.origin, `service:write on "${service}"`, consulRegistryWords);
  }

  /** Closes the client if this registry created it. */
  async close(): Promise<void> {
    if (this.#ownsClient) await this.client.close();
  }
}

/** Where the registrar's settings of an agent are spelt, for failure hints. */
const consulRegistryWords = { address: 'consulRegistry({ address })', token: 'consulRegistry({ token })' };

const consulRegistryKeys = [
  ...consulConnectionKeys,
  ...optionKeys<Omit<ConsulRegistryOptions, keyof ConsulConnectionOptions>>({
    client: true, env: true, checkId: true, checkName: true, deregisterCriticalServiceAfterMs: true,
  }),
];

/**
 * The `registry` option of a registrar for Consul, and its default: a
 * service with a TTL check in the local agent. Validates its options at once.
 * @throws InvalidOptionError naming the option and the bad value.
 * @example
 * ```ts
 * import { Registrar, consulRegistry } from '@proxyless/registrar';
 * const registrar = new Registrar({
 *   name: 'web',
 *   port: 8080,
 *   registry: consulRegistry({ address: '10.0.0.2:8500', deregisterCriticalServiceAfterMs: 120_000 }),
 * });
 * ```
 */
export function consulRegistry(options: ConsulRegistryOptions = {}): RegistryFactory {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('consulRegistry()', options, 'must be an object of options');
  checkKnownKeys('', options, consulRegistryKeys, 'consulRegistry()');
  const { client, checkId, checkName, deregisterCriticalServiceAfterMs } = options;
  if (client !== undefined && !(client instanceof ConsulHttpClient)) throw new InvalidOptionError('client', client, 'must be a ConsulHttpClient');
  if (client !== undefined && consulConnectionKeys.some((key) => (options as Record<string, unknown>)[key] !== undefined)) {
    throw new InvalidOptionError('client', '<set>', 'cannot be combined with connection options (the client has its own)');
  }
  if (checkId !== undefined && (typeof checkId !== 'string' || !checkIdPattern.test(checkId))) {
    throw new InvalidOptionError('checkId', checkId, 'must be 1-128 characters of [A-Za-z0-9_.:-], starting with a letter or digit');
  }
  if (checkName !== undefined && (typeof checkName !== 'string' || checkName.length === 0 || checkName.length > 256)) {
    throw new InvalidOptionError('checkName', checkName, 'must be a non-empty string of at most 256 characters');
  }
  if (deregisterCriticalServiceAfterMs !== undefined && deregisterCriticalServiceAfterMs !== 0) {
    checkNumber('deregisterCriticalServiceAfterMs', deregisterCriticalServiceAfterMs, undefined, {
      integer: true,
      min: MIN_DEREGISTER_AFTER_MS,
      max: 365 * 24 * 3600_000,
    });
  }
  return (spec) => new ConsulRegistry(spec, options);
}
