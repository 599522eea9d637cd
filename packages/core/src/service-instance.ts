/** Health of one instance as its registry reports it. */
export type HealthStatus = 'passing' | 'warning' | 'critical';

/** Load-balancing weights (Consul `Weights`): share when passing and when warning. */
export interface ServiceWeights {
  /** Weight while every check passes (Consul: ≥ 1). */
  readonly passing: number;
  /** Weight while some check warns (Consul: ≥ 0). */
  readonly warning: number;
}

/**
 * One instance of a service, as seen by a resolver. Immutable (frozen).
 *
 * `key` is the instance's identity across snapshots: per-endpoint state
 * (pools, breakers, statistics) is keyed by it.
 */
export interface ServiceInstance {
  /** Identity across snapshots, e.g. `<node>/<service id>` for Consul, `<address>:<port>` for DNS. */
  readonly key: string;
  /** Service instance ID (Consul `Service.ID`). */
  readonly id: string;
  /** Service name. */
  readonly service: string;
  /** IP address or host name to connect to. */
  readonly address: string;
  /** TCP port, 1–65535. */
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly weights: ServiceWeights;
  /** Datacenter, when known. */
  readonly datacenter?: string | undefined;
  /** Node (host) name, when known. */
  readonly node?: string | undefined;
  /** Availability zone, when known (e.g. from meta `zone`). */
  readonly zone?: string | undefined;
  readonly health: HealthStatus;
}
