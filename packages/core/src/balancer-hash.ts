import type { Balancer, BalancerEndpoint, PickContext, Picker } from './balancer.js';
import { InvalidOptionError } from './errors.js';
import { checkRandom, emptyPicker, hasExclude, nextAllowed, randomIndex } from './balancer-util.js';
import { checkNumber, checkOptions } from './validate.js';

/** Options of {@link consistentHash}. */
export interface ConsistentHashOptions {
  /**
   * `ring` (default): ring hash with virtual nodes; adding or removing an
   * endpoint moves only the keys that land on (or belonged to) it, and a key
   * never moves between two other endpoints. `maglev`: Google's Maglev
   * lookup table; O(1) picks and a more even spread, at the price of
   * moving a small fraction of unrelated keys on a change.
   */
  algorithm?: 'ring' | 'maglev';
  /**
   * Ring: virtual nodes per endpoint, integer 1–1000. Default 100 (about
   * ±10–25% load spread). Building a picker sorts n × replicas points:
   * ≈ 0.2 s at 10 000 endpoints, so use `maglev` for very large sets.
   */
  replicas?: number;
  /**
   * Maglev: lookup table size, a prime well above the endpoint count
   * (Maglev suggests 100×). Default 65 537. With more endpoints than slots
   * some endpoints get no slot and no traffic.
   */
  tableSize?: number;
  /** Random source in [0, 1) for picks without a hash key. Default `Math.random`. */
  random?: () => number;
}

/**
 * 32-bit FNV-1a over UTF-16 code units, finished with murmur3's fmix32 for
 * avalanche. Stable across processes and versions: clients that share a
 * hash key agree on the endpoint.
 */
export function hashKey32(key: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

function fmix32(input: number): number {
  let h = input;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/**
 * Consistent hashing for affinity: requests with the same
 * `PickContext.hashKey` (a user id, a session cookie…) go to the same
 * endpoint while the set is stable, and most keys stay put when it changes
 * (the endpoint identity is `instance.key`). A pick without a hash key falls
 * back to uniform random. An excluded endpoint is replaced by the next
 * distinct endpoint along the ring (or table), so retries of one key also
 * agree across clients.
 *
 * @example
 * ```ts
 * import { consistentHash } from '@proxyless/core';
 * const picker = consistentHash({ algorithm: 'ring', replicas: 100 }).createPicker(endpoints);
 * const endpoint = picker.pick({ hashKey: request.headers['x-user-id'] });
 * ```
 */
export function consistentHash(options: ConsistentHashOptions = {}): Balancer {
  checkOptions('consistentHash', options);
  const algorithm = options.algorithm ?? 'ring';
  if (algorithm !== 'ring' && algorithm !== 'maglev') {
    throw new InvalidOptionError('algorithm', algorithm, 'must be "ring" or "maglev"');
  }
  const replicas = checkNumber('replicas', options.replicas, 100, { min: 1, max: 1000, integer: true });
  const tableSize = checkNumber('tableSize', options.tableSize, 65_537, { min: 2, max: 16_777_259, integer: true });
  if (!isPrime(tableSize)) throw new InvalidOptionError('tableSize', tableSize, 'must be a prime');
  const random = checkRandom('random', options.random);
  return {
    name: algorithm === 'ring' ? 'ring-hash' : 'maglev',
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      const n = endpoints.length;
      if (n === 0) return emptyPicker(endpoints);
      // Owner tables: slot → endpoint index. Ring slots are sorted points, Maglev slots the table.
      const { points, owners } = algorithm === 'ring' ? buildRing(endpoints, replicas) : buildMaglev(endpoints, tableSize);
      const slots = owners.length;
      const slotOf =
        points === undefined
          ? (h: number): number => h % slots
          : (h: number): number => {
              // First point ≥ h, wrapping to 0.
              let lo = 0;
              let hi = slots;
              while (lo < hi) {
                const mid = (lo + hi) >>> 1;
                if ((points[mid] as number) < h) lo = mid + 1;
                else hi = mid;
              }
              return lo === slots ? 0 : lo;
            };
      return {
        endpoints,
        pick(context?: PickContext): E | undefined {
          const key = context?.hashKey;
          const exclude = context?.exclude;
          if (key === undefined) {
            const i = randomIndex(random, n);
            if (!hasExclude(exclude)) return endpoints[i];
            const allowed = nextAllowed(endpoints, i, exclude);
            return endpoints[allowed >= 0 ? allowed : i];
          }
          const slot = slotOf(hashKey32(key));
          const chosen = endpoints[owners[slot] as number] as E;
          if (!hasExclude(exclude) || !exclude.has(chosen)) return chosen;
          // Walk on to the next slot owned by an endpoint not excluded.
          for (let k = 1, s = slot + 1; k < slots; k++, s++) {
            if (s === slots) s = 0;
            const candidate = endpoints[owners[s] as number] as E;
            if (!exclude.has(candidate)) return candidate;
          }
          return chosen;
        },
      };
    },
  };
}

/** Endpoint indices ordered by instance key, so tables do not depend on snapshot order. */
function orderByKey(endpoints: readonly BalancerEndpoint[]): number[] {
  const order = endpoints.map((_, i) => i);
  order.sort((a, b) => {
    const ka = (endpoints[a] as BalancerEndpoint).instance.key;
    const kb = (endpoints[b] as BalancerEndpoint).instance.key;
    return ka < kb ? -1 : ka > kb ? 1 : a - b;
  });
  return order;
}

const RANK_BITS = 2 ** 21; // endpoints per ring ≤ 2M; hash·2^21 + rank < 2^53

function buildRing(endpoints: readonly BalancerEndpoint[], replicas: number): { points: Uint32Array; owners: Int32Array } {
  const order = orderByKey(endpoints);
  const n = order.length;
  // Pack (point hash, key rank) into one float so a typed-array sort orders
  // points by hash with ties broken by key: no per-point objects.
  const packed = new Float64Array(n * replicas);
  let p = 0;
  for (let rank = 0; rank < n; rank++) {
    const base = hashKey32((endpoints[order[rank] as number] as BalancerEndpoint).instance.key);
    for (let r = 0; r < replicas; r++) {
      const point = fmix32((base + Math.imul(r + 1, 0x9e3779b9)) >>> 0);
      packed[p++] = point * RANK_BITS + rank;
    }
  }
  packed.sort();
  const points = new Uint32Array(packed.length);
  const owners = new Int32Array(packed.length);
  for (let i = 0; i < packed.length; i++) {
    const v = (packed[i] as number);
    const rank = v % RANK_BITS;
    points[i] = (v - rank) / RANK_BITS;
    owners[i] = (order[rank] as number);
  }
  return { points, owners };
}

function buildMaglev(endpoints: readonly BalancerEndpoint[], m: number): { points: undefined; owners: Int32Array } {
  const order = orderByKey(endpoints);
  const n = order.length;
  const offset = new Uint32Array(n);
  const skip = new Uint32Array(n);
  const next = new Uint32Array(n);
  for (let rank = 0; rank < n; rank++) {
    const key = (endpoints[order[rank] as number] as BalancerEndpoint).instance.key;
    offset[rank] = hashKey32(key, 0x5bd1e995) % m;
    skip[rank] = (hashKey32(key, 0x27d4eb2f) % (m - 1)) + 1;
  }
  const owners = new Int32Array(m).fill(-1);
  let filled = 0;
  for (;;) {
    for (let rank = 0; rank < n; rank++) {
      let c = ((offset[rank] as number) + (next[rank] as number) * (skip[rank] as number)) % m;
      while (owners[c] !== -1) {
        next[rank] = (next[rank] as number) + 1;
        c = ((offset[rank] as number) + (next[rank] as number) * (skip[rank] as number)) % m;
      }
      owners[c] = (order[rank] as number);
      next[rank] = (next[rank] as number) + 1;
      if (++filled === m) return { points: undefined, owners };
    }
  }
}
