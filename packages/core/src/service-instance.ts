import { isIP } from 'node:net';
import { InvalidOptionError } from './errors.js';
import { checkNumber, type NumberRule } from './validate.js';

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

/** Input of {@link createServiceInstance}; omitted fields get defaults. */
export interface ServiceInstanceInit {
  /** Identity across snapshots. Default `<node>/<id>` when `node` is set, else `<address>:<port>`. */
  key?: string;
  /** Instance ID. Default `<address>:<port>`. */
  id?: string;
  service: string;
  address: string;
  port: number;
  /** Default `[]`. */
  tags?: readonly string[];
  /** Default `{}`. */
  meta?: Readonly<Record<string, string>>;
  /** Default `{ passing: 1, warning: 1 }`. */
  weights?: ServiceWeights;
  datacenter?: string | undefined;
  node?: string | undefined;
  /** Default: `meta.zone` when present. */
  zone?: string | undefined;
  /** Default `passing`. */
  health?: HealthStatus;
}

const hostnamePattern = /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$/;
const healthValues: readonly string[] = ['passing', 'warning', 'critical'];
/** Consul's `Weights` are 16-bit. */
const weightRule: NumberRule = { integer: true, min: 0, max: 65535 };

/**
 * True when `address` is something a client can connect to: an IPv4/IPv6
 * literal (not the unspecified address) or a DNS host name.
 */
export function isConnectableAddress(address: unknown): address is string {
  if (typeof address !== 'string' || address.length === 0) return false;
  const family = isIP(address);
  if (family !== 0) return address !== '0.0.0.0' && address !== '::' && !/^[0:]+$/.test(address);
  return hostnamePattern.test(address) && !/^[0-9.]+$/.test(address);
}

function invalid(option: string, value: unknown, expectation: string): never {
  throw new InvalidOptionError(option, value, expectation);
}


/**
 * Validates `init` and returns a frozen {@link ServiceInstance}.
 * @throws {@link InvalidOptionError} naming the first bad field.
 */
export function createServiceInstance(init: ServiceInstanceInit): ServiceInstance {
  if (typeof init !== 'object' || init === null) invalid('instance', init, 'must be an object');
  if (typeof init.service !== 'string' || init.service.length === 0) invalid('instance.service', init.service, 'must be a non-empty string');
  if (!isConnectableAddress(init.address)) invalid('instance.address', init.address, 'must be an IP address or host name');
  const port = checkNumber('instance.port', init.port, undefined, { integer: true, min: 1, max: 65535 });
  const tags = init.tags ?? [];
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) invalid('instance.tags', tags, 'must be an array of strings');
  const metaIn = init.meta ?? {};
  if (typeof metaIn !== 'object' || metaIn === null || Array.isArray(metaIn)) invalid('instance.meta', metaIn, 'must be an object');
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(metaIn)) {
    if (typeof v !== 'string') invalid(`instance.meta.${k}`, v, 'must be a string');
    meta[k] = v;
  }
  const weightsIn = init.weights ?? { passing: 1, warning: 1 };
  const weights: ServiceWeights = Object.freeze({
    passing: checkNumber('instance.weights.passing', weightsIn.passing, undefined, weightRule),
    warning: checkNumber('instance.weights.warning', weightsIn.warning, undefined, weightRule),
  });
  const health = init.health ?? 'passing';
  if (!healthValues.includes(health)) invalid('instance.health', health, 'must be passing, warning or critical');
  for (const [name, value] of [['datacenter', init.datacenter], ['node', init.node], ['zone', init.zone], ['id', init.id], ['key', init.key]] as const) {
    if (value !== undefined && (typeof value !== 'string' || value.length === 0)) invalid(`instance.${name}`, value, 'must be a non-empty string');
  }
  const hostPort = `${init.address}:${port}`;
  const id = init.id ?? hostPort;
  const zone = init.zone ?? meta['zone'];
  return Object.freeze({
    key: init.key ?? (init.node !== undefined ? `${init.node}/${id}` : hostPort),
    id,
    service: init.service,
    address: init.address,
    port,
    tags: Object.freeze([...tags]),
    meta: Object.freeze(meta),
    weights,
    datacenter: init.datacenter,
    node: init.node,
    zone,
    health,
  });
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True when two instances carry the same data (field by field; cheap, no serialisation). */
export function sameInstance(a: ServiceInstance, b: ServiceInstance): boolean {
  if (a === b) return true;
  if (
    a.key !== b.key || a.id !== b.id || a.service !== b.service || a.address !== b.address || a.port !== b.port ||
    a.health !== b.health || a.datacenter !== b.datacenter || a.node !== b.node || a.zone !== b.zone ||
    a.weights.passing !== b.weights.passing || a.weights.warning !== b.weights.warning || !sameStrings(a.tags, b.tags)
  ) {
    return false;
  }
  const ak = Object.keys(a.meta);
  if (ak.length !== Object.keys(b.meta).length) return false;
  for (const k of ak) if (a.meta[k] !== b.meta[k]) return false;
  return true;
}

/**
 * What changed between two instance lists, matched by `key`: the one diff
 * type of discovery. A watch computes it once per change and hands the same
 * frozen object to every subscriber with the snapshot (see
 * {@link ServiceWatchEvents.update}); a subscriber's first one is from empty.
 */
export interface InstanceDiff {
  readonly added: readonly ServiceInstance[];
  readonly removed: readonly ServiceInstance[];
  /** New versions of instances whose key stayed but whose data changed. */
  readonly updated: readonly ServiceInstance[];
}

const none: readonly ServiceInstance[] = Object.freeze([]);

/**
 * Compares two instance lists by `key`. Order does not matter: DNS and
 * `near=_agent` reorder answers without any real change. From an empty list
 * nothing is compared: a frozen `next` is itself the `added` list.
 */
export function diffInstances(previous: readonly ServiceInstance[], next: readonly ServiceInstance[]): InstanceDiff {
  if (previous.length === 0) {
    return Object.freeze({ added: Object.isFrozen(next) ? next : Object.freeze([...next]), removed: none, updated: none });
  }
  const before = new Map<string, ServiceInstance>();
  for (const instance of previous) before.set(instance.key, instance);
  const added: ServiceInstance[] = [];
  const updated: ServiceInstance[] = [];
  const seen = new Set<string>();
  for (const instance of next) {
    seen.add(instance.key);
    const old = before.get(instance.key);
    if (old === undefined) added.push(instance);
    else if (!sameInstance(old, instance)) updated.push(instance);
  }
  const removed = previous.filter((instance) => !seen.has(instance.key));
  return Object.freeze({ added: Object.freeze(added), removed: Object.freeze(removed), updated: Object.freeze(updated) });
}

/** True when a diff holds no change. */
export function isEmptyDiff(diff: InstanceDiff): boolean {
  return diff.added.length === 0 && diff.removed.length === 0 && diff.updated.length === 0;
}
