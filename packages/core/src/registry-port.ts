/**
 * The registry port: what a registrar needs from a service registry (Consul,
 * etcd…), so that one lifecycle implementation (start, keep alive, recover,
 * out of rotation, confirm, drain, deregister) serves every registry.
 */
import { ProxylessError, errorBrand } from './errors.js';
import type { HealthStatus, ServiceWeights } from './service-instance.js';

/** What is registered; durations in ms. */
export interface RegistrationSpec {
  readonly name: string;
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly weights: ServiceWeights | undefined;
  /** How long the registry keeps the instance without a heartbeat (Consul TTL check, etcd lease TTL). */
  readonly ttlMs: number;
  /** Interval between heartbeats. */
  readonly heartbeatIntervalMs: number;
}

/** The status a heartbeat reports, with a human-readable output. */
export interface RegistryReport {
  readonly status: HealthStatus;
  readonly output: string;
}

/** Cancellation and deadline of one port call. */
export interface RegistryCallOptions {
  readonly signal: AbortSignal;
  /** Deadline of one exchange with the registry (a port that retries within a call gives each try this much). */
  readonly timeoutMs: number;
  /** Told of each failed try a port retries within the call (e.g. an etcd keepalive during a leader election), so nothing fails silently. */
  readonly onRetry?: (error: unknown) => void;
}

/**
 * Why a registry no longer holds a registration, in words of no particular registry:
 * - `expired`: its time to live ran out or was ended (etcd: the lease expired, was revoked, or etcd lost its data);
 * - `forgotten`: the registry no longer knows it although it was kept alive (Consul: the agent restarted
 *   without its data or reaped the service; etcd: the key was deleted while its lease lives).
 */
export type RegistrationLostReason = 'expired' | 'forgotten';

/** A heartbeat found that the registry no longer holds the registration; {@link RegistrationLostError.reason} says why. */
export class RegistrationLostError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_REGISTRATION_LOST');

  override get name(): string {
    return 'RegistrationLostError';
  }

  /** Why the registration is gone. Default `forgotten`. */
  readonly reason: RegistrationLostReason;

  constructor(what: string, options: { cause?: unknown; reason?: RegistrationLostReason } = {}) {
    super('ERR_REGISTRATION_LOST', `Registration lost: ${what}`, { cause: options.cause });
    this.reason = options.reason ?? 'forgotten';
  }
}

/** One registry, seen from a registrar. Implementations: Consul (`@proxyless/registrar`), etcd (`@proxyless/etcd`). */
export interface RegistryPort {
  /** Short name, e.g. `consul`, `etcd`. */
  readonly kind: string;
  /** Where it is, for log lines: e.g. `the Consul agent at http://127.0.0.1:8500`. Never holds credentials. */
  readonly label: string;
  /** What the registry knows this registration by, for people and events: e.g. Consul's TTL check ID, etcd's instance key. */
  readonly registrationId: string;
  /** Registers (or registers again) with `report`'s status. */
  register(report: RegistryReport, options: RegistryCallOptions): Promise<void>;
  /** Keeps the registration alive and reports the status. @throws {@link RegistrationLostError} when the registry forgot it. */
  heartbeat(report: RegistryReport, options: RegistryCallOptions): Promise<void>;
  /** Maintenance mode: out of rotation while still registered. */
  setMaintenance(enable: boolean, reason: string | undefined, options: RegistryCallOptions): Promise<void>;
  /**
   * Resolves `true` once clients no longer see the instance as healthy, `false` when
   * `timeoutMs` ran out (or `signal` aborted) first. Transient failures are retried
   * until then and passed to `onError`.
   */
  waitUntilOutOfRotation(options: RegistryCallOptions, onError: (error: unknown) => void): Promise<boolean>;
  /** Removes the registration; already gone counts as done. */
  deregister(options: RegistryCallOptions): Promise<void>;
  /** True for failures worth retrying (unreachable, timeouts, overload, no leader). */
  isRetryable(error: unknown): boolean;
  /** True when the registry could not be reached or did not answer in time. */
  isUnreachable(error: unknown): boolean;
  /** One sentence: what failed and what to set to fix it. */
  describeFailure(error: unknown, service: string): string;
  /** Releases connections the port owns. */
  close(): Promise<void>;
}

/** Builds the port for one registration (given to a registrar as its `registry` option). */
export type RegistryFactory = (spec: RegistrationSpec) => RegistryPort;
