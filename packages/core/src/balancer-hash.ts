import type { Balancer, BalancerEndpoint, PickContext, Picker } from './balancer.js';
import { InvalidOptionError } from './errors.js';
import { checkRandom, emptyPicker, hasExclude, pickRandom } from './balancer-util.js';
import { checkNumber, checkOptions, optionKeys } from './validate.js';

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
   * Ring: virtual nodes per endpoint, integer 1–1000, lowered when
   * `maxRingSize` requires. Default 100 (about ±10–25% load spread).
   */
  replicas?: number;
  /**
   * Ring: most points on the ring (as Envoy's `maximum_ring_size`), at least
   * one per endpoint: sets above `maxRingSize / replicas` endpoints (655 by
   * default) get fewer virtual nodes per endpoint, so that a build, which
   * hashes and sorts every point, stays within a few ms (65 536 points: 6 per
   * endpoint at 10 000 endpoints, a spread of about ±40%).
   * Integer 1–8 388 608. Default 65 536. When the endpoint count crosses
   * `maxRingSize / v` for a whole `v`, every endpoint's last virtual node goes
   * (or comes back), moving about 1/v of the keys. For an even spread over
   * very large sets use `maglev`.
   */
  maxRingSize?: number;
  /**
   * Maglev: lookup table size, a prime well above the endpoint count
   * (Maglev suggests 100×). Default 65 537. With more endpoints than slots
   * some endpoints get no slot and no traffic.
   */
  tableSize?: number;
  /** Random source in [0, 1) for picks without a hash key. Default `Math.random`. */
  random?: () => number;
}

/** FNV-1a's 32-bit offset basis and prime. */
const FNV_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * 32-bit FNV-1a over UTF-16 code units, finished with murmur3's fmix32 for
 * avalanche. Stable across processes and versions: clients that share a
 * hash key agree on the endpoint.
 */
export function hashKey32(key: string, seed = 0): number {
  let h = (FNV_BASIS ^ seed) >>> 0;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
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
 * back to uniform random. An unavailable or excluded endpoint is replaced by
 * the next usable endpoint along the ring (or table), so retries of one key
 * also agree across clients; on a ring that is exactly where the key would go
 * with the endpoint removed, and no other key moves (a picker is built only
 * when the set changes).
 *
 * @example
 * ```ts
 * import { consistentHash } from '@proxyless/core';
 * const picker = consistentHash({ algorithm: 'ring', replicas: 100 }).createPicker(endpoints);
 * const endpoint = picker.pick({ hashKey: request.headers['x-user-id'] });
 * ```
 */
export function consistentHash(options: ConsistentHashOptions = {}): Balancer {
  checkOptions('consistentHash', options, optionKeys<ConsistentHashOptions>({ algorithm: true, replicas: true, maxRingSize: true, tableSize: true, random: true }));
  const algorithm = options.algorithm ?? 'ring';
  if (algorithm !== 'ring' && algorithm !== 'maglev') {
    throw new InvalidOptionError('algorithm', algorithm, 'must be "ring" or "maglev"');
  }
  const replicas = checkNumber('replicas', options.replicas, 100, { min: 1, max: 1000, integer: true });
  const maxRingSize = checkNumber('maxRingSize', options.maxRingSize, 65_536, { min: 1, max: MAX_RING, integer: true });
  const tableSize = checkNumber('tableSize', options.tableSize, 65_537, { min: 2, max: 16_777_259, integer: true });
  if (!isPrime(tableSize)) throw new InvalidOptionError('tableSize', tableSize, 'must be a prime');
  const random = checkRandom('random', options.random);
  return {
    name: algorithm === 'ring' ? 'ring-hash' : 'maglev',
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      const n = endpoints.length;
      if (n === 0) return emptyPicker(endpoints);
      // Owner tables: slot → endpoint index. Ring slots are sorted points, Maglev slots the table.
      const { points, owners, index, shift } =
        algorithm === 'ring' ? buildRing(endpoints, vnodesPerEndpoint(n, replicas, maxRingSize)) : buildMaglev(endpoints, tableSize);
      const slots = owners.length;
      const slotOf =
        points === undefined
          ? (h: number): number => h % slots
          : (h: number): number => {
              // First point ≥ h, wrapping to 0: the bucket of h's top bits narrows the search to a few points.
              const b = h >>> shift;
              let lo = index[b] as number;
              let hi = index[b + 1] as number;
              while (lo < hi) {
                const mid = (lo + hi) >>> 1;
                if ((points[mid] as number) < h) lo = mid + 1;
                else hi = mid;
              }
              return lo === slots ? 0 : lo;
            };
      /** The first slot from `slot` on whose owner is available and not excluded; -1 if none. */
      const walk = (slot: number, exclude: ReadonlySet<BalancerEndpoint> | undefined): number => {
        for (let k = 0, s = slot; k < slots; k++, s++) {
          if (s === slots) s = 0;
          const candidate = endpoints[owners[s] as number] as E;
          if (candidate.available !== false && (exclude === undefined || !exclude.has(candidate))) return s;
        }
        return -1;
      };
      return {
        endpoints,
        pick(context?: PickContext): E | undefined {
          const key = context?.hashKey;
          const exclude = context?.exclude;
          if (key === undefined) return pickRandom(endpoints, random, exclude);
          const slot = slotOf(hashKey32(key));
          const chosen = endpoints[owners[slot] as number] as E;
          const excluding = hasExclude(exclude);
          if (chosen.available !== false && (!excluding || !exclude.has(chosen))) return chosen;
          // Walk on to the next slot whose owner is usable: on a ring, exactly where the key
          // would land if the unusable endpoints were removed, so agreeing clients agree here too.
          let s = walk(slot, excluding ? exclude : undefined);
          if (s < 0 && excluding) s = walk(slot, undefined);
          return s < 0 ? undefined : endpoints[owners[s] as number];
        },
      };
    },
  };
}

/** Largest ring the options accept (2^23 points: 64 MiB of build scratch at most). */
const MAX_RING = 8_388_608;

/**
 * Virtual nodes per endpoint: `replicas`, lowered to fit `maxRingSize` (at least 1). It does not
 * depend on the set's size below `maxRingSize / replicas` endpoints, so there a change of
 * membership moves only the keys of the endpoint that came or went. (Envoy also raises small
 * rings to a minimum size; that would make every membership change of a small set move keys
 * between unaffected endpoints, so there is no such floor here.)
 */
function vnodesPerEndpoint(n: number, replicas: number, maxRingSize: number): number {
  return Math.max(1, Math.min(replicas, Math.floor(maxRingSize / n)));
}

/**
 * Endpoint indices in a fixed order of their instance keys (by `hash`, a hash of each key, then by
 * the key), so tables do not depend on snapshot order; a radix sort of numbers is several times
 * faster than comparing strings.
 */
function orderByKey(endpoints: readonly BalancerEndpoint[], hash: Uint32Array<ArrayBuffer>): Int32Array {
  const n = endpoints.length;
  const index = new Uint32Array(n);
  for (let i = 0; i < n; i++) index[i] = i;
  const sorted = radixSort(hash, index);
  const order = new Int32Array(sorted[1]);
  breakTiesByKey(endpoints, sorted[0], order);
  return order;
}

/**
 * Stable LSD radix sort of (hash, payload) pairs by hash: O(n). Returns the sorted pair. A pass
 * costs a counter per digit value plus two visits per pair, so small sets take three 11-bit
 * digits (2 048 counters) and large ones two 16-bit digits (65 536 counters).
 */
function radixSort(keys: Uint32Array<ArrayBuffer>, values: Uint32Array<ArrayBuffer>): [Uint32Array<ArrayBuffer>, Uint32Array<ArrayBuffer>] {
  const size = keys.length;
  let hash = keys;
  let rank = values;
  let hashOut = new Uint32Array(size);
  let rankOut = new Uint32Array(size);
  const bits = size < 62_000 ? 11 : 16;
  const digits = 1 << bits;
  const mask = digits - 1;
  const count = new Uint32Array(digits);
  for (let digitShift = 0; digitShift < 32; digitShift += bits) {
    count.fill(0);
    for (let i = 0; i < size; i++) {
      const d = ((hash[i] as number) >>> digitShift) & mask;
      count[d] = (count[d] as number) + 1;
    }
    for (let d = 0, sum = 0; d < digits; d++) {
      const c = count[d] as number;
      count[d] = sum;
      sum += c;
    }
    for (let i = 0; i < size; i++) {
      const h = hash[i] as number;
      const d = (h >>> digitShift) & mask;
      const at = count[d] as number;
      count[d] = at + 1;
      hashOut[at] = h;
      rankOut[at] = rank[i] as number;
    }
    [hash, hashOut] = [hashOut, hash];
    [rank, rankOut] = [rankOut, rank];
  }
  return [hash, rank];
}

/** Within runs of equal `hash`, orders the endpoint indices in `owners` by instance key (runs are rare). */
function breakTiesByKey(endpoints: readonly BalancerEndpoint[], hash: Uint32Array, owners: Int32Array): void {
  const size = hash.length;
  for (let i = 1; i < size; i++) {
    if (hash[i] !== hash[i - 1]) continue;
    let end = i + 1;
    while (end < size && hash[end] === hash[i]) end++;
    const run = Array.from(owners.subarray(i - 1, end)).sort((a, b) => compareKeys(endpoints, a, b));
    owners.set(run, i - 1);
    i = end - 1;
  }
}

function compareKeys(endpoints: readonly BalancerEndpoint[], a: number, b: number): number {
  const ka = (endpoints[a] as BalancerEndpoint).instance.key;
  const kb = (endpoints[b] as BalancerEndpoint).instance.key;
  return ka < kb ? -1 : ka > kb ? 1 : a - b;
}

interface OwnerTable {
  /** Ring: sorted point hashes; Maglev: none (the slot is the hash mod the table size). */
  points: Uint32Array | undefined;
  /** Slot → endpoint index. */
  owners: Int32Array;
  /** Ring: first point of each bucket of hashes sharing their top bits (one extra entry at the end). */
  index: Int32Array;
  /** Ring: 32 − bits of a bucket number. */
  shift: number;
}

function buildRing(endpoints: readonly BalancerEndpoint[], vnodes: number): OwnerTable {
  const n = endpoints.length;
  const size = n * vnodes;
  // Points in snapshot order, then a stable LSD radix sort on the hash (two 16-bit digits): O(size).
  // Points of different endpoints with equal hashes (rare) are then put in key order, so the ring
  // does not depend on snapshot order. `rank` holds each point's endpoint index.
  let hash = new Uint32Array(size);
  let rank = new Uint32Array(size);
  let p = 0;
  for (let r = 0; r < n; r++) {
    const base = hashKey32((endpoints[r] as BalancerEndpoint).instance.key);
    for (let v = 0; v < vnodes; v++) {
      hash[p] = fmix32((base + Math.imul(v + 1, 0x9e3779b9)) >>> 0);
      rank[p++] = r;
    }
  }
  [hash, rank] = radixSort(hash, rank);
  const owners = new Int32Array(rank);
  breakTiesByKey(endpoints, hash, owners);
  // Bucket index over the top bits: about one point per bucket, at most 2^16 buckets.
  const bits = Math.min(16, Math.max(1, Math.floor(Math.log2(size))));
  const shift = 32 - bits;
  const buckets = 1 << bits;
  const index = new Int32Array(buckets + 1);
  for (let b = 0, i = 0; b <= buckets; b++) {
    while (i < size && (hash[i] as number) >>> shift < b) i++;
    index[b] = i;
  }
  return { points: hash, owners, index, shift };
}

/** Seeds of {@link hashKey32} for the three hashes Maglev takes of each instance key. */
const ORDER_SEED = 0x3c6ef372;
const OFFSET_SEED = 0x5bd1e995;
const SKIP_SEED = 0x27d4eb2f;

/**
 * `hashKey32(key, seed)` of each endpoint's key for Maglev's three seeds, in snapshot order and in
 * one pass over each key's characters: reading the characters (of strings often built by
 * concatenation) costs more than the arithmetic, and visiting endpoints in snapshot order keeps
 * the reads close to allocation order.
 */
function maglevHashes(endpoints: readonly BalancerEndpoint[]): [Uint32Array<ArrayBuffer>, Uint32Array, Uint32Array] {
  const n = endpoints.length;
  const order = new Uint32Array(n);
  const offset = new Uint32Array(n);
  const skip = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const key = (endpoints[i] as BalancerEndpoint).instance.key;
    let a = (FNV_BASIS ^ ORDER_SEED) >>> 0;
    let b = (FNV_BASIS ^ OFFSET_SEED) >>> 0;
    let c = (FNV_BASIS ^ SKIP_SEED) >>> 0;
    for (let j = 0; j < key.length; j++) {
      const code = key.charCodeAt(j);
      a = Math.imul(a ^ code, FNV_PRIME);
      b = Math.imul(b ^ code, FNV_PRIME);
      c = Math.imul(c ^ code, FNV_PRIME);
    }
    order[i] = fmix32(a);
    offset[i] = fmix32(b);
    skip[i] = fmix32(c);
  }
  return [order, offset, skip];
}

function buildMaglev(endpoints: readonly BalancerEndpoint[], m: number): OwnerTable {
  const [orderHash, offsetHash, skipHash] = maglevHashes(endpoints);
  const order = orderByKey(endpoints, orderHash);
  const n = order.length;
  // Each endpoint's preference list is offset, offset + skip, offset + 2·skip… (mod m); `position`
  // holds where its list stands, advanced by one addition instead of a multiply and a modulo.
  const position = new Int32Array(n);
  const skip = new Int32Array(n);
  for (let rank = 0; rank < n; rank++) {
    const i = order[rank] as number;
    position[rank] = modulo(offsetHash[i] as number, m);
    skip[rank] = modulo(skipHash[i] as number, m - 1) + 1;
  }
  const owners = new Int32Array(m);
  // Endpoints take turns (in key order), each taking the first free slot of its list. Probing finds
  // it in about m / free tries, so the last √m slots alone cost half of all tries (at m = 65 537:
  // 326 000 of 684 000); they are found from the list of free slots instead.
  const tail = Math.min(m, Math.ceil(Math.sqrt(m)));
  const taken = new Int32Array((m + 31) >>> 5); // a bitmap, so the tail can skip full words
  let rank = 0;
  for (let filled = m - tail; filled > 0; filled--) {
    let c = position[rank] as number;
    const step = skip[rank] as number;
    while (((taken[c >>> 5] as number) & (1 << (c & 31))) !== 0) {
      c += step;
      if (c >= m) c -= m;
    }
    taken[c >>> 5] = (taken[c >>> 5] as number) | (1 << (c & 31));
    owners[c] = order[rank] as number;
    c += step;
    position[rank] = c >= m ? c - m : c;
    if (++rank === n) rank = 0;
  }
  fillTail(m, tail, taken, owners, order, position, skip, rank);
  return { points: undefined, owners, index: EMPTY_INDEX, shift: 0 };
}

/**
 * `x % d` for 0 ≤ x < 2^48 and 0 < d < 2^24 (the quotient's floor is then exact): a uint32 above
 * 2^31 is a double to V8, and `%` on doubles is a call to fmod, several times slower.
 */
function modulo(x: number, d: number): number {
  return x - Math.floor(x / d) * d;
}

/**
 * Fills the last `free` slots with the same turns and the same choices as probing: slot s is
 * step ((s − position) · skip⁻¹ mod m) of an endpoint's list (m is prime, so skip has an inverse),
 * and every slot before its current position is taken, so its next slot is the free one with the
 * fewest steps to go. A turn scans the `free` slots left: with √m of them, about as many steps as
 * probing would take at that point, and fewer and fewer after it.
 */
function fillTail(
  m: number,
  free: number,
  taken: Int32Array,
  owners: Int32Array,
  order: Int32Array,
  position: Int32Array,
  skip: Int32Array,
  firstRank: number,
): void {
  const slots = new Int32Array(free);
  // Free slots in order (bits past m in the last word come after them all): skip full words.
  for (let w = 0, k = 0; k < free; w++) {
    const bits = taken[w] as number;
    if (bits === -1) continue;
    for (let b = 0; b < 32 && k < free; b++) if ((bits & (1 << b)) === 0) slots[k++] = (w << 5) | b;
  }
  const n = order.length;
  const inverse = new Int32Array(n); // 0: not computed yet
  for (let rank = firstRank, left = free; left > 0; left--) {
    const c = position[rank] as number;
    let inv = inverse[rank] as number;
    if (inv === 0) inverse[rank] = inv = inverseMod(skip[rank] as number, m);
    let best = m;
    let at = 0;
    for (let k = 0; k < left; k++) {
      let d = (slots[k] as number) - c;
      if (d < 0) d += m;
      const steps = modulo(d * inv, m); // d · inv < 2^48: exact in a double
      if (steps < best) {
        best = steps;
        at = k;
      }
    }
    const s = slots[at] as number;
    slots[at] = slots[left - 1] as number;
    owners[s] = order[rank] as number;
    const next = s + (skip[rank] as number);
    position[rank] = next >= m ? next - m : next;
    if (++rank === n) rank = 0;
  }
}

/** a⁻¹ mod m for a prime m and 0 < a < m (extended Euclid). */
function inverseMod(a: number, m: number): number {
  let t = 0;
  let nextT = 1;
  let r = m;
  let nextR = a;
  while (nextR !== 0) {
    const q = Math.floor(r / nextR);
    [t, nextT] = [nextT, t - q * nextT];
    [r, nextR] = [nextR, r - q * nextR];
  }
  return t < 0 ? t + m : t;
}

const EMPTY_INDEX = new Int32Array(0);
