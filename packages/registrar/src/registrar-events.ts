import type { ConfigWarning, RegistrationLostReason } from '@proxyless/core';
import type { CheckStatus } from './health.js';

/**
 * Public lifecycle states of a {@link Registrar}.
 * - `idle`: constructed, or stopped after a failed deregistration;
 * - `registering`: {@link Registrar.start} is registering;
 * - `registered`: registered and heartbeating;
 * - `lost`: the registry forgot the registration or cannot be reached; re-registering with backoff;
 * - `deregistering` / `deregistered`: {@link Registrar.stop} in progress / done;
 * - `closed`: {@link Registrar.close} was called.
 */
export type RegistrarState = 'idle' | 'registering' | 'registered' | 'lost' | 'deregistering' | 'deregistered' | 'closed';

/**
 * Why the registrar thinks its registration is gone or unusable:
 * - `expired`: its time to live ran out or was ended (etcd: the lease expired, was revoked, or etcd lost its data);
 * - `forgotten`: the registry no longer knows it although it was kept alive (Consul: the agent restarted
 *   without its data or reaped the service; etcd: the key was deleted while its lease lives);
 * - `unreachable`: the registry cannot be reached or does not answer in time.
 */
export type LostReason = RegistrationLostReason | 'unreachable';

/** What this instance is registered as. */
export interface RegistrationInfo {
  /** Service name. */
  readonly name: string;
  /** Instance ID. */
  readonly id: string;
  /** Advertised address. */
  readonly address: string;
  /** Advertised port. */
  readonly port: number;
  /** Which registry holds it (the port's `kind`: `consul`, `etcd`). */
  readonly registry: string;
  /** What that registry knows it by: Consul's TTL check ID, etcd's instance key. */
  readonly registrationId: string;
}

/** One heartbeat the registry accepted. */
export interface HeartbeatInfo {
  /** Status sent. */
  readonly status: CheckStatus;
  /** Output sent (truncated to 4 KiB). */
  readonly output: string;
  /** `Date.now()` when the registry accepted it. */
  readonly at: number;
}

/** Events of a {@link Registrar}; names are camelCase, payloads typed. */
export interface RegistrarEvents {
  /** First successful registration after {@link Registrar.start}. */
  registered: [info: RegistrationInfo];
  /** The registry accepted a heartbeat. */
  heartbeat: [beat: HeartbeatInfo];
  /**
   * The registration is gone (`expired` or `forgotten`, see {@link LostReason}) or the registry is unreachable;
   * re-registration starts at once. A registry may first retry a beat while the registration can still be alive
   * (etcd: until its lease could have expired, so a leader election is not a loss); each failed try is an `error` event meanwhile.
   */
  lost: [reason: LostReason, error: Error];
  /** Registered again after `lost`. */
  reregistered: [info: RegistrationInfo];
  /** A failed registry call or health function (also kept as {@link Registrar.lastError}). */
  error: [error: Error];
  /** Deregistered by {@link Registrar.stop}. */
  deregistered: [info: RegistrationInfo];
  /** Maintenance mode was switched on or off. */
  maintenance: [enabled: boolean, reason: string | undefined];
  /** Every state transition. */
  stateChange: [state: RegistrarState, previous: RegistrarState];
  /** The configuration doctor found a setting that hurts in production (heartbeat vs TTL); the warning names the fix. */
  configWarning: [warning: ConfigWarning];
}

/** Per-call options. */
export interface RegistrarCallOptions {
  /** Caller cancellation. */
  signal?: AbortSignal;
  /** Time limit of the whole call, in ms. */
  timeoutMs?: number;
}
