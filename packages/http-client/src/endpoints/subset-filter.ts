import { baseSubsetSize, diffInstances, hashKey32, isEmptyDiff, subsetInstances, type ResolvedSubset, type ServiceInstance, type SubsetCoordinate } from '@proxyless/core';
import type { EndpointSet } from './endpoint-set.js';
import type { HealthState } from './health.js';

/**
 * Stands between the watch and the endpoint set when subsetting is on (as
 * A68's policy stands in front of its child policy): the set only ever sees
 * this client's subset of the service's instances.
 *
 * A member that is not `ready` (breaker open or probing, ejected) is backed
 * by the next candidate of the client's ranking, at most as many extra
 * members as the base subset holds (core's `subsetInstances`), so a client
 * keeps `size` usable members while the service has them. The member stays,
 * so its breaker or ejection can end; once it is `ready` again, its backup
 * leaves (and drains). Availability changes reach the filter through the
 * set's transition listener and are applied in a microtask, never inside a
 * pick or an attempt's bookkeeping.
 *
 * With `peers`, the coordinate comes from a watch of the client's own
 * service ({@link SubsetFilter.setCoordinate}); until it has one, rendezvous.
 * @internal
 */
export class SubsetFilter {
  readonly #subset: ResolvedSubset;
  readonly #set: EndpointSet;
  /** The coordinate in use: the configured one, or the one read from the peers (undefined: rendezvous). */
  #coordinate: SubsetCoordinate | undefined;
  /** Rendezvous hashes by instance key (the client id is fixed, so each key is hashed once while it exists). */
  #hashes = new Map<string, number>();
  /** Every instance of the service, as the watch last gave them. */
  #all: readonly ServiceInstance[] = [];
  /** What the set holds: the subset last applied. */
  #applied: readonly ServiceInstance[] = [];
  #scheduled = false;
  /** Members that joined and left the applied subset since the client started (backups included). */
  #joined = 0;
  #left = 0;
  readonly #hashOf = (key: string): number => {
    let h = this.#hashes.get(key);
    if (h === undefined) this.#hashes.set(key, (h = hashKey32(`${this.#subset.clientId}\0${key}`)));
    return h;
  };
  readonly #usable = (instance: ServiceInstance): boolean => {
    const ep = this.#set.get(instance.key);
    // An instance the set does not hold yet has no state against it.
    return ep === undefined || ep.health.state.kind === 'ready';
  };

  constructor(subset: ResolvedSubset, set: EndpointSet) {
    this.#subset = subset;
    this.#set = set;
    this.#coordinate = subset.coordinate;
    set.onTransition((_ep, from, to) => {
      if (isReady(from) !== isReady(to) && from.kind !== 'removed' && to.kind !== 'removed') this.#schedule();
    });
  }

  /** The subset's options. */
  get subset(): ResolvedSubset {
    return this.#subset;
  }

  /** The mode in use now (with `peers`: rendezvous until the first coordinate). */
  get mode(): 'rendezvous' | 'aperture' {
    return this.#coordinate === undefined ? 'rendezvous' : 'aperture';
  }

  /** The coordinate in use now. */
  get coordinate(): SubsetCoordinate | undefined {
    return this.#coordinate;
  }

  /** A coordinate read from the peers: when it moved, the subset is recomputed and its change applied. */
  setCoordinate(coordinate: SubsetCoordinate): void {
    const c = this.#coordinate;
    if (c !== undefined && c.index === coordinate.index && c.count === coordinate.count) return;
    this.#coordinate = coordinate;
    this.#reapply();
  }

  /** How many instances the service has (the candidates). */
  get candidates(): number {
    return this.#all.length;
  }

  /** Members that joined the subset since the client started (the first snapshot's members included). */
  get joined(): number {
    return this.#joined;
  }

  /** Members that left the subset since the client started (left the service, replaced, or a backup no longer needed). */
  get left(): number {
    return this.#left;
  }

  /** Members beyond the base subset, backing unusable ones. */
  get backups(): number {
    return Math.max(0, this.#applied.length - baseSubsetSize(this.#all.length, { size: this.#subset.size, coordinate: this.#coordinate }));
  }

  /** A new instance list from the watch: the subset is recomputed and its change applied to the set. */
  update(instances: readonly ServiceInstance[]): void {
    if (instances !== this.#all && this.#hashes.size > 2 * instances.length + 64) this.#hashes = new Map();
    this.#all = instances;
    // Always applied, even empty: the set's first apply marks its first snapshot.
    this.#set.apply(this.#next());
  }

  #next(): ReturnType<typeof diffInstances> {
    const spec = { size: this.#subset.size, clientId: this.#subset.clientId, coordinate: this.#coordinate };
    const next = subsetInstances(this.#all, spec, this.#usable, this.#hashOf);
    const change = diffInstances(this.#applied, next);
    this.#applied = next;
    this.#joined += change.added.length;
    this.#left += change.removed.length;
    return change;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#reapply();
    });
  }

  #reapply(): void {
    const change = this.#next();
    if (!isEmptyDiff(change)) this.#set.apply(change);
  }
}

function isReady(state: HealthState): boolean {
  return state.kind === 'ready';
}
