import {
  InvalidOptionError,
  RegistrationLostError,
  TimeoutError,
  backoffDelay,
  type RegistrationSpec,
  type RegistryCallOptions,
  type RegistryFactory,
  type RegistryPort,
  type RegistryReport,
} from '@proxyless/core';
import { checkKnownKeys, optionKeys, sleep, withDeadline } from '@proxyless/core/internal';
import { EtcdApiError, EtcdClient, EtcdUnreachableError, grpcCode } from './etcd-client.js';
import { etcdConnectionKeys, type EtcdConnectionOptions } from './etcd-config.js';
import { describeEtcdFailure } from './etcd-failure.js';
import { proxylessLayout, type EtcdInstanceValue } from './key-layout.js';

/** Options of {@link etcdRegistry}. */
export interface EtcdRegistryOptions extends EtcdConnectionOptions {
  /** An existing client to share (not closed by the registrar). Default: a new one from the options and `ETCDCTL_*`. */
  client?: EtcdClient;
  /** Environment for connection defaults. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Root of the Proxyless layout (`<prefix>/<service>/<id>`). Default `/proxyless/services`. */
  prefix?: string;
}

/** etcd refused a write for a lease it no longer knows (it expired between a keepalive and the write). */
const isLeaseNotFound = (error: unknown): boolean => error instanceof EtcdApiError && /lease not found/i.test(error.etcdMessage);

/**
 * The etcd implementation of the registry port: the instance key
 * `<prefix>/<service>/<id>` holds a JSON value (address, port, tags, meta,
 * zone, weights, health) attached to a lease of the registration's TTL.
 *
 * A heartbeat renews the lease and checks that the key is still there. The
 * rule that tells a slow registry from a lost lease:
 * - **lost** only when etcd says so: a keepalive answers TTL 0 (the lease
 *   expired during a partition, was revoked, or etcd lost its data), a write
 *   is refused with "lease not found", or the key is gone. The registrar learns at that heartbeat and registers again
 *   with a new lease.
 * - **not lost** while a keepalive fails or times out (a leader election, a
 *   member down or stuck): the lease lives on the cluster until its TTL runs
 *   out, counted from when the last successful renewal was sent. The
 *   heartbeat retries (each try within the call's `timeoutMs`, on the next
 *   endpoint, at most the time left) for as long as the lease could still be
 *   alive, and only then reports the registry unreachable. An election
 *   (1–3 s on a 3-member cluster) fits in any TTL of a few seconds, so the
 *   lease, its ID and the key are kept; nothing is granted or rewritten.
 *
 * Draining and maintenance write `health: "critical"`, which resolvers leave
 * out; deregistration deletes the key and revokes the lease.
 */
export class EtcdRegistry implements RegistryPort {
  readonly kind = 'etcd';
  readonly label: string;
  /** The instance key. */
  readonly key: string;
  /** The instance key: what etcd knows this registration by. */
  readonly registrationId: string;
  readonly client: EtcdClient;
  readonly #ownsClient: boolean;
  readonly #spec: RegistrationSpec;
  readonly #ttlSeconds: number;
  #lease: string | undefined;
  /** Until when (performance.now()) the lease is surely alive: last renewal sent + the TTL etcd answered. */
  #leaseAliveUntil = 0;
  #maintenance = false;
  #report: RegistryReport = { status: 'passing', output: '' };
  #written: string | undefined;

  constructor(spec: RegistrationSpec, options: EtcdRegistryOptions = {}) {
    const { client, env, prefix, ...connection } = options;
    this.#spec = spec;
    this.key = proxylessLayout(prefix === undefined ? {} : { prefix }).instanceKey(spec.name, spec.id);
    this.registrationId = this.key;
    // etcd leases are whole seconds; never shorter than asked.
    this.#ttlSeconds = Math.max(2, Math.ceil(spec.ttlMs / 1000));
    if (client !== undefined) {
      if (!(client instanceof EtcdClient)) throw new InvalidOptionError('client', client, 'must be an EtcdClient');
      this.client = client;
      this.#ownsClient = false;
    } else {
      this.client = new EtcdClient(connection, env);
      this.#ownsClient = true;
    }
    this.label = `etcd at ${this.client.connection.endpoints.join(',')}`;
  }

  /** The lease the key is attached to (decimal string), while registered. */
  get lease(): string | undefined {
    return this.#lease;
  }

  #value(): string {
    const s = this.#spec;
    const value: EtcdInstanceValue & { output?: string } = {
      address: s.address,
      port: s.port,
      tags: s.tags,
      meta: s.meta,
      ...(s.meta['zone'] !== undefined ? { zone: s.meta['zone'] } : {}),
      ...(s.weights ? { weights: { passing: s.weights.passing, warning: s.weights.warning } } : {}),
      health: this.#maintenance ? 'critical' : this.#report.status,
      ...(this.#report.output ? { output: this.#report.output } : {}),
    };
    return JSON.stringify(value);
  }

  async #put(options: RegistryCallOptions): Promise<void> {
    const value = this.#value();
    await this.client.put(this.key, value, { lease: this.#lease, signal: options.signal, timeoutMs: options.timeoutMs });
    this.#written = value;
  }

  /** One keepalive; remembers how long the lease is surely alive after it. */
  async #keepAlive(lease: string, options: RegistryCallOptions): Promise<number> {
    const sentAt = performance.now();
    const ttl = await this.client.leaseKeepAlive(lease, { signal: options.signal, timeoutMs: options.timeoutMs });
    if (ttl > 0) this.#leaseAliveUntil = sentAt + ttl * 1000;
    return ttl;
  }

  /**
   * Runs `attempt` until it succeeds, retrying what a leader election or a
   * member down causes (timeouts, unreachable, unavailable) for as long as
   * the lease could still be alive; the first try gets `timeoutMs` (etcd
   * tells whether a lease is gone), a retry at most the time left. Then the
   * last failure is thrown.
   */
  async #whileLeaseLives<T>(options: RegistryCallOptions, attempt: (options: RegistryCallOptions) => Promise<T>): Promise<T> {
    for (let failures = 0; ; failures++) {
      const left = Math.floor(this.#leaseAliveUntil - performance.now());
      try {
        return await attempt({ signal: options.signal, timeoutMs: failures === 0 ? options.timeoutMs : Math.max(1, Math.min(options.timeoutMs, left)) });
      } catch (error) {
        // The client already moved to the next endpoint after a timeout or an unreachable member.
        const pause = backoffDelay(failures, { initialMs: 50, maxMs: 500 });
        if (options.signal.aborted || !this.isRetryable(error) || performance.now() + pause >= this.#leaseAliveUntil) throw error;
        options.onRetry?.(error);
        await sleep(pause, options.signal);
        if (options.signal.aborted) throw error; // the failure, not the abort, is what the caller reports
      }
    }
  }

  async register(report: RegistryReport, options: RegistryCallOptions): Promise<void> {
    this.#report = report;
    if (this.#lease !== undefined) {
      // Back after an outage: keep the lease if etcd still has it, rather than piling up new ones.
      const ttl = await this.#keepAlive(this.#lease, options);
      if (ttl <= 0) this.#lease = undefined;
    }
    if (this.#lease !== undefined) {
      try {
        await this.#put(options);
        return;
      } catch (error) {
        if (!isLeaseNotFound(error)) throw error;
        this.#lease = undefined; // expired since the keepalive: a new one
      }
    }
    const sentAt = performance.now();
    const granted = await this.client.leaseGrant(this.#ttlSeconds, options);
    this.#lease = granted.id;
    this.#leaseAliveUntil = sentAt + granted.ttlSeconds * 1000;
    await this.#put(options);
  }

  async heartbeat(report: RegistryReport, options: RegistryCallOptions): Promise<void> {
    this.#report = report;
    const lease = this.#lease;
    if (lease === undefined) throw new RegistrationLostError(`${this.key} has no lease`, { reason: 'expired' });
    const ttl = await this.#whileLeaseLives(options, (o) => this.#keepAlive(lease, o));
    if (ttl <= 0) {
      this.#lease = undefined;
      throw new RegistrationLostError(`etcd no longer knows lease ${lease} of ${this.key} (expired, revoked, or etcd lost its data)`, { reason: 'expired' });
    }
    // A key deleted by hand while its lease lives: the lease alone would never tell.
    const { kvs } = await this.#whileLeaseLives(options, (o) => this.client.range(this.key, { serializable: true, ...o }));
    const current = kvs[0];
    if (current === undefined || current.lease !== lease) {
      throw new RegistrationLostError(`${this.key} is gone from etcd although its lease lives`, { reason: 'forgotten' });
    }
    if (this.#value() !== this.#written) {
      try {
        await this.#whileLeaseLives(options, (o) => this.#put(o));
      } catch (error) {
        if (!isLeaseNotFound(error)) throw error;
        this.#lease = undefined;
        throw new RegistrationLostError(`etcd no longer knows lease ${lease} of ${this.key}`, { cause: error, reason: 'expired' });
      }
    }
  }

  async setMaintenance(enable: boolean, _reason: string | undefined, options: RegistryCallOptions): Promise<void> {
    this.#maintenance = enable;
    if (this.#lease !== undefined) await this.#put(options);
  }

  /** Resolves `true` once the key is gone or critical: a linearizable read, then a watch; transient failures are retried until `timeoutMs`. */
  async waitUntilOutOfRotation(options: RegistryCallOptions, onError: (error: unknown) => void): Promise<boolean> {
    const deadline = Date.now() + options.timeoutMs;
    while (Date.now() < deadline && !options.signal.aborted) {
      try {
        return await this.#confirmGone(options.signal, deadline);
      } catch (error) {
        if (options.signal.aborted) return false;
        onError(error);
        await sleep(Math.min(200, deadline - Date.now()), options.signal);
      }
    }
    return false;
  }

  /** A linearizable read, then a watch from the next revision: no change slips between them. */
  async #confirmGone(signal: AbortSignal, deadline: number): Promise<boolean> {
    const gone = (value: Buffer | undefined): boolean => {
      if (value === undefined) return true;
      try {
        return (JSON.parse(value.toString('utf8')) as { health?: unknown }).health === 'critical';
      } catch {
        return true; // not an instance any resolver would use
      }
    };
    const remaining = (): number => Math.max(1, deadline - Date.now());
    const { header, kvs } = await this.client.range(this.key, { signal, timeoutMs: remaining() });
    if (gone(kvs[0]?.value)) return true;
    let timedOut = false;
    const seen = await withDeadline(signal, remaining(), async (limit) => {
      try {
        for await (const message of this.client.watch({ key: this.key, startRevision: header.revision + 1 }, { signal: limit, connectTimeoutMs: remaining() })) {
          for (const event of message.events) if (event.type === 'delete' || gone(event.kv.value)) return true;
          if (message.canceled) throw new Error(`etcd canceled the watch on ${this.key}: ${message.cancelReason || 'compacted'}`);
        }
      } catch (error) {
        if (limit.aborted && !signal.aborted) {
          timedOut = true; // the deadline
          return false;
        }
        throw error;
      }
      return false;
    });
    if (seen || timedOut || Date.now() >= deadline) return seen;
    throw new Error(`etcd ended the watch on ${this.key}`);
  }

  async deregister(options: RegistryCallOptions): Promise<void> {
    await this.client.delete(this.key, options);
    const lease = this.#lease;
    this.#lease = undefined;
    this.#written = undefined;
    if (lease !== undefined) await this.client.leaseRevoke(lease, options).catch(() => undefined); // the key is gone; the lease would expire anyway
  }

  isUnreachable(error: unknown): boolean {
    return error instanceof EtcdUnreachableError || error instanceof TimeoutError;
  }

  isRetryable(error: unknown): boolean {
    if (this.isUnreachable(error)) return true;
    if (error instanceof EtcdApiError) return error.grpcCode === grpcCode.Unavailable || error.status === 429 || error.status >= 500;
    return false;
  }

  describeFailure(error: unknown, service: string): string {
    return describeEtcdFailure(error, this.client.connection.endpoints, `readwrite on the prefix of "${service}"`);
  }

  async close(): Promise<void> {
    if (this.#ownsClient) await this.client.close();
  }
}

const etcdRegistryKeys = [...etcdConnectionKeys, ...optionKeys<Omit<EtcdRegistryOptions, keyof EtcdConnectionOptions>>({ client: true, env: true, prefix: true })];

/**
 * The `registry` option of a registrar, for etcd.
 * @example
 * ```ts
 * import { Registrar } from '@proxyless/registrar';
 * import { etcdRegistry } from '@proxyless/etcd';
 * const registrar = new Registrar({ name: 'web', port: 8080, ttlMs: 6000, registry: etcdRegistry() }); // ETCDCTL_* by default
 * ```
 */
export function etcdRegistry(options: EtcdRegistryOptions = {}): RegistryFactory {
  checkKnownKeys('', options, etcdRegistryKeys, 'etcdRegistry()');
  if (options.prefix !== undefined) proxylessLayout({ prefix: options.prefix }); // validate now, not at start()
  return (spec) => new EtcdRegistry(spec, options);
}
