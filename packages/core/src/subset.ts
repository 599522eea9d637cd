import type { ServiceInstance } from './service-instance.js';
import type { Resolver } from './resolver.js';
import { InvalidOptionError } from './errors.js';
import { hashKey32 } from './balancer-hash.js';
import { checkKnownKeys, checkNumber, optionKeys, validateServiceName } from './validate.js';

/**
 * A client's place among the clients (its peers) that call the same service,
 * for deterministic aperture: `index` in `0 … count - 1`, distinct per peer.
 * Typically from a resolver of the client's own service (its position among
 * the sorted instance ids), or from the orchestrator (a StatefulSet ordinal).
 */
export interface SubsetCoordinate {
  /** This client's index among its peers, integer `0 … count - 1`. */
  index: number;
  /** How many peers (clients of the same service) there are, integer ≥ 1. */
  count: number;
}

/**
 * Where a client learns its {@link SubsetCoordinate} by itself: a watch of its
 * own service (its peers, the processes that call the same service). Its
 * index is its rank among the peers' instance ids, sorted; while its own
 * registration is not (yet) in the list, the place it will take there.
 */
export interface SubsetPeers {
  /** The client process's own service (where it and its peers register). */
  service: string;
  /** This process's own instance id in that service (as registered, e.g. the registrar's `id`). */
  id: string;
  /** Where to watch it. Default: the client's resolver. */
  resolver?: Resolver;
  /** Resolver-specific query for the peers' watch (tags, datacenter…). */
  query?: object;
}

/**
 * Subsetting: each client connects to a stable subset of a service's
 * instances instead of all of them (the connection explosion of hundreds of
 * clients × hundreds of instances).
 *
 * Two modes, picked by whether the client knows its place among its peers
 * (a `coordinate`, or `peers` to read it from):
 * - **rendezvous** (no coordinate; gRPC A68's random subsetting): each
 *   instance is ranked by a hash of the client id and the instance key, the
 *   `size` lowest win. No coordination; a join or leave changes at most one
 *   member per client, and only for the ≈ size/N of clients that must change.
 *   Balance is binomial: at 1,000 clients × 300 instances × 20, the busiest
 *   instance holds ≈ 1.3× the average connections.
 * - **aperture** (a `coordinate` or `peers`; Finagle's deterministic aperture): instances sorted by key form a ring;
 *   client `index` of `count` takes the `size` consecutive instances from
 *   `⌊index × N / count⌋`, so every instance is covered by the same number of
 *   clients ±1 (max/avg ≈ 1.02 at the figures above). The price: a join or
 *   leave shifts the ring, and about half the clients swap one member.
 *   When `count × size < N` the aperture widens to `⌈N / count⌉` so that
 *   every instance has a client.
 */
export interface SubsetOptions {
  /** Instances per client, integer ≥ 1 (gRPC's default is 20). The whole set when there are fewer. */
  size: number;
  /**
   * Rendezvous: the id the ranking hashes with. Clients with the same id get
   * the same subset. Default: a random id per client object (as A68's salt),
   * so restarts spread anew.
   */
  clientId?: string;
  /** Aperture: this client's place among its peers. Absent (and no `peers`): rendezvous. */
  coordinate?: SubsetCoordinate;
  /**
   * Aperture with a coordinate read from a watch of the client's own service
   * (instead of `coordinate`): it follows the peers as they come and go.
   * Until the peers' first snapshot, rendezvous.
   */
  peers?: SubsetPeers;
}

/** {@link SubsetOptions} validated by {@link resolveSubset}: what {@link subsetInstances} reads. */
export interface ResolvedSubset {
  readonly mode: 'rendezvous' | 'aperture';
  readonly size: number;
  readonly clientId: string;
  readonly coordinate: SubsetCoordinate | undefined;
  /** Where the coordinate comes from when it is watched (`peers`). */
  readonly peers: Readonly<SubsetPeers> | undefined;
}

const subsetKeys = optionKeys<SubsetOptions>({ size: true, clientId: true, coordinate: true, peers: true });
const peersKeys = optionKeys<SubsetPeers>({ service: true, id: true, resolver: true, query: true });
const coordinateKeys = optionKeys<SubsetCoordinate>({ index: true, count: true });

/** Most instances a subset may ask for (a subset larger than this is no subset). */
const MAX_SUBSET_SIZE = 100_000;

/**
 * Validates subset options; errors name the option under `option` and the fix.
 * `defaultClientId` is used when `clientId` is absent.
 * @throws `InvalidOptionError` naming the option (`subset.size must be ≥ 1`).
 * @example
 * ```ts
 * const subset = resolveSubset('subset', { size: 20, clientId: 'web-7' }, () => crypto.randomUUID());
 * const mine = subsetInstances(instances, subset);
 * ```
 */
export function resolveSubset(option: string, value: unknown, defaultClientId: () => string, owner = 'createClient()'): ResolvedSubset {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(option, value, 'must be an object such as { size: 20 } (or false for no subsetting)');
  }
  checkKnownKeys(option, value, subsetKeys, owner);
  const v = value as Partial<SubsetOptions>;
  const size = checkNumber(`${option}.size`, v.size, undefined, { integer: true, min: 1, max: MAX_SUBSET_SIZE });
  if (v.clientId !== undefined && (typeof v.clientId !== 'string' || v.clientId === '')) {
    throw new InvalidOptionError(`${option}.clientId`, v.clientId, 'must be a non-empty string (or left out for a random id)');
  }
  let coordinate: SubsetCoordinate | undefined;
  if (v.coordinate !== undefined) {
    if (typeof v.coordinate !== 'object' || v.coordinate === null) {
      throw new InvalidOptionError(`${option}.coordinate`, v.coordinate, 'must be { index, count } (this client\'s index among count peers)');
    }
    checkKnownKeys(`${option}.coordinate`, v.coordinate, coordinateKeys, owner);
    const count = checkNumber(`${option}.coordinate.count`, v.coordinate.count, undefined, { integer: true, min: 1 });
    const index = checkNumber(`${option}.coordinate.index`, v.coordinate.index, undefined, { integer: true, min: 0 });
    if (index >= count) throw new InvalidOptionError(`${option}.coordinate.index`, index, `must be < coordinate.count (${count}): indexes run 0 … count - 1`);
    coordinate = Object.freeze({ index, count });
  }
  const peers = v.peers === undefined ? undefined : checkPeers(`${option}.peers`, v.peers, owner);
  if (peers !== undefined && coordinate !== undefined) {
    throw new InvalidOptionError(`${option}.peers`, '{…}', 'and coordinate are alternatives: give the coordinate, or the peers to read it from');
  }
  return Object.freeze({
    mode: coordinate === undefined && peers === undefined ? 'rendezvous' : 'aperture',
    size,
    clientId: v.clientId ?? defaultClientId(),
    coordinate,
    peers,
  });
}

function checkPeers(option: string, value: unknown, owner: string): Readonly<SubsetPeers> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(option, value, "must be { service, id } (this process's own service and instance id)");
  }
  checkKnownKeys(option, value, peersKeys, owner);
  const p = value as Partial<SubsetPeers>;
  validateServiceName(p.service, `${option}.service`);
  if (typeof p.id !== 'string' || p.id === '') throw new InvalidOptionError(`${option}.id`, p.id, "must be this process's instance id in its own service (a non-empty string)");
  if (p.resolver !== undefined && (typeof p.resolver !== 'object' || p.resolver === null || typeof (p.resolver as Partial<Resolver>).watch !== 'function')) {
    throw new InvalidOptionError(`${option}.resolver`, p.resolver, 'must implement Resolver (watch()), or be left out for the client\'s resolver');
  }
  if (p.query !== undefined && (typeof p.query !== 'object' || p.query === null)) throw new InvalidOptionError(`${option}.query`, p.query, 'must be an object');
  const out: SubsetPeers = { service: p.service as string, id: p.id };
  if (p.resolver !== undefined) out.resolver = p.resolver;
  if (p.query !== undefined) out.query = p.query;
  return Object.freeze(out);
}

/**
 * A client's coordinate among its peers' instances: the rank of its own `id`
 * among their ids, sorted (every peer sorts the same list the same way);
 * while `id` is not among them (its registration is not there yet, or it
 * left), the place it will take, counting itself. Duplicate ids count once.
 */
export function coordinateOf(peers: readonly ServiceInstance[], id: string): SubsetCoordinate {
  const ids = new Set(peers.map((p) => p.id));
  ids.add(id);
  const sorted = [...ids].sort();
  return Object.freeze({ index: sorted.indexOf(id), count: sorted.length });
}

/** How many instances the base subset holds out of `n` (aperture widens to cover the ring). */
export function baseSubsetSize(n: number, subset: { readonly size: number; readonly coordinate: SubsetCoordinate | undefined }): number {
  const c = subset.coordinate;
  const size = c === undefined ? subset.size : Math.max(subset.size, Math.ceil(n / c.count));
  return Math.min(n, size);
}

function byKey(a: ServiceInstance, b: ServiceInstance): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/**
 * Every instance in this client's order of preference: the first
 * {@link baseSubsetSize} are its subset, the rest are the candidates that
 * back up unusable members, in order. Pure and deterministic: the same
 * instances (in any order) and options give the same ranking.
 * `hashOf` may cache the rendezvous hash per key (it must return
 * `hashKey32(clientId + '\0' + key)`).
 */
export function rankInstances(
  instances: readonly ServiceInstance[],
  subset: { readonly clientId: string; readonly coordinate: SubsetCoordinate | undefined },
  hashOf: (key: string) => number = (key) => hashKey32(`${subset.clientId}\0${key}`),
): ServiceInstance[] {
  const n = instances.length;
  const c = subset.coordinate;
  if (c === undefined) {
    const ranked = instances.map((instance) => ({ instance, h: hashOf(instance.key) }));
    // Ties (a 32-bit collision) broken by key, so the order stays total and the same everywhere.
    ranked.sort((a, b) => a.h - b.h || byKey(a.instance, b.instance));
    return ranked.map((r) => r.instance);
  }
  // The ring: every peer sorts the same instances the same way.
  const ring = [...instances].sort(byKey);
  const start = Math.floor((c.index * n) / c.count);
  const out = new Array<ServiceInstance>(n);
  for (let i = 0; i < n; i++) out[i] = ring[(start + i) % n] as ServiceInstance;
  return out;
}

/**
 * This client's subset of `instances`. Each member that `usable` rejects
 * (breaker open, ejected) is backed by the next instance of the ranking, at
 * most as many extra members as the base subset holds, so a client keeps
 * `size` usable members while the service has them and its connections stay
 * bounded (≤ 2 × size) when many fail at once. The unusable members stay in
 * the subset: their breakers and ejections need them there to recover.
 */
export function subsetInstances(
  instances: readonly ServiceInstance[],
  subset: { readonly size: number; readonly clientId: string; readonly coordinate: SubsetCoordinate | undefined },
  usable: (instance: ServiceInstance) => boolean = () => true,
  hashOf?: (key: string) => number,
): ServiceInstance[] {
  const ranked = rankInstances(instances, subset, hashOf);
  const base = baseSubsetSize(ranked.length, subset);
  const limit = Math.min(ranked.length, 2 * base);
  let wanted = base;
  let i = 0;
  for (; i < limit && wanted > 0; i++) if (usable(ranked[i] as ServiceInstance)) wanted--;
  // The base subset always, plus as many backups as unusable members needed.
  return ranked.slice(0, Math.max(base, i));
}
