/**
 * Subsetting at fleet scale, simulated in process (no sockets): C clients ×
 * N backends, subset size k, through core's public `subsetInstances()`.
 *
 * Per mode:
 * - `full mesh`: no subsetting (every client connects to every backend);
 * - `rendezvous`: gRPC A68 random subsetting (what a client does with
 *   `subset: { size }` alone);
 * - `aperture`: deterministic aperture (`subset: { size, coordinate }`,
 *   client i of C);
 * - `SRE ch.20`: the SRE book's deterministic subsetting (rounds of seeded
 *   shuffles), written here as the reference it is, not offered by the client.
 *
 * Figures per mode: connections per backend max/avg (and min/avg); load per
 * backend max/avg, each client spreading equal load evenly over its members
 * (what round robin, P2C or peak EWMA do over equal backends); and churn: the
 * share of clients whose subset changes when one backend joins (at a random
 * place in the key order) or leaves, averaged over CHURN_TRIALS joins and
 * leaves, next to the minimum possible (a joiner must gain ≈ k/(N+1) of the
 * clients to carry its share; a leaver's clients, ≈ k/N, must all change),
 * and the most members one client swapped; and the share of clients whose
 * subset changes when one more client joins (at a random index among its
 * peers, sorted by id: the ones after it move up by one).
 *
 * Run (seconds; built packages): npm run build && flock -x /tmp/proxyless-heavy.lock node --import tsx bench/subsetting.bench.ts
 * Knobs: SUBSET_CLIENTS (1000), SUBSET_BACKENDS (300), SUBSET_SIZE (20), CHURN_TRIALS (20).
 */
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { createServiceInstance, hashKey32, resolveSubset, subsetInstances, type ResolvedSubset, type ServiceInstance } from '@proxyless/core';
import { requireBuilt } from './support/builds.js';

const CLIENTS = Number(process.env['SUBSET_CLIENTS'] ?? 1000);
const BACKENDS = Number(process.env['SUBSET_BACKENDS'] ?? 300);
const SIZE = Number(process.env['SUBSET_SIZE'] ?? 20);
const TRIALS = Number(process.env['CHURN_TRIALS'] ?? 20);

/** `id`: the client's own stable id; `index` of `clients`: its place among its peers (sorted by id). */
type Subsetter = (backends: readonly ServiceInstance[], id: number, index: number, clients: number) => readonly ServiceInstance[];

/** A seeded PRNG (mulberry32), for the SRE book's per-round shuffle. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** SRE book ch. 20, "Deterministic subsetting": clients in rounds; each round shuffles the backends with the round as seed. */
function sreSubset(backends: readonly ServiceInstance[], client: number, size: number): ServiceInstance[] {
  const sorted = [...backends].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const subsetCount = Math.max(1, Math.floor(sorted.length / size));
  const round = Math.floor(client / subsetCount);
  const random = mulberry32(round);
  for (let i = sorted.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [sorted[i], sorted[j]] = [sorted[j]!, sorted[i]!];
  }
  const start = (client % subsetCount) * size;
  return sorted.slice(start, start + size);
}

const rendezvousOf = new Map<number, ResolvedSubset>();
const modes: Record<string, Subsetter> = {
  'full mesh': (backends) => backends,
  rendezvous: (backends, id) => {
    let s = rendezvousOf.get(id);
    if (s === undefined) rendezvousOf.set(id, (s = resolveSubset('subset', { size: SIZE, clientId: `client-${id}` }, () => '')));
    return subsetInstances(backends, s);
  },
  aperture: (backends, _id, index, clients) => subsetInstances(backends, resolveSubset('subset', { size: SIZE, coordinate: { index, count: clients } }, () => '')),
  'SRE ch.20': (backends, _id, index) => sreSubset(backends, index, SIZE),
};

function backend(i: number): ServiceInstance {
  // Keys as a registry would give them; their order is not their creation order.
  const h = hashKey32(`backend-${i}`);
  return createServiceInstance({ service: 'api', address: `10.${(h >>> 16) & 255}.${(h >>> 8) & 255}.${h & 255}`, port: 8080 + (i % 7), id: `api-${i}` });
}

interface Balance {
  connMax: number;
  connMin: number;
  loadMax: number;
}

function balance(subsets: readonly (readonly ServiceInstance[])[], backends: readonly ServiceInstance[]): Balance {
  const conns = new Map<string, number>(backends.map((b) => [b.key, 0]));
  const load = new Map<string, number>(backends.map((b) => [b.key, 0]));
  for (const s of subsets) {
    for (const b of s) {
      conns.set(b.key, (conns.get(b.key) ?? 0) + 1);
      load.set(b.key, (load.get(b.key) ?? 0) + 1 / s.length);
    }
  }
  const c = [...conns.values()];
  const l = [...load.values()];
  const avgC = c.reduce((a, b) => a + b, 0) / c.length;
  const avgL = l.reduce((a, b) => a + b, 0) / l.length;
  return { connMax: Math.max(...c) / avgC, connMin: Math.min(...c) / avgC, loadMax: Math.max(...l) / avgL };
}

interface Churn {
  fraction: number;
  maxSwapped: number;
}

function churn(before: readonly (readonly ServiceInstance[])[], after: readonly (readonly ServiceInstance[])[]): Churn {
  let changed = 0;
  let maxSwapped = 0;
  for (let i = 0; i < before.length; i++) {
    const was = new Set(before[i]!.map((b) => b.key));
    const swapped = after[i]!.filter((b) => !was.has(b.key)).length;
    if (swapped > 0 || after[i]!.length !== was.size) changed++;
    maxSwapped = Math.max(maxSwapped, swapped);
  }
  return { fraction: changed / before.length, maxSwapped };
}

const subsetsOf = (mode: Subsetter, backends: readonly ServiceInstance[], clients: number): ServiceInstance[][] =>
  Array.from({ length: clients }, (_, i) => [...mode(backends, i, i, clients)]);

const pct = (x: number): string => `${(100 * x).toFixed(1)} %`;

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function scenario(clients: number, backendCount: number): void {
  const backends = Array.from({ length: backendCount }, (_, i) => backend(i));
  const random = mulberry32(42);
  const rows: string[][] = [];
  for (const [name, mode] of Object.entries(modes)) {
    const base = subsetsOf(mode, backends, clients);
    const b = balance(base, backends);
    let join = 0;
    let leave = 0;
    let peer = 0;
    let joinSwap = 0;
    let leaveSwap = 0;
    for (let t = 0; t < TRIALS; t++) {
      const joined = [...backends, backend(backendCount + 1 + t)];
      const j = churn(base, subsetsOf(mode, joined, clients));
      join += j.fraction / TRIALS;
      joinSwap = Math.max(joinSwap, j.maxSwapped);
      const gone = Math.floor(random() * backendCount);
      const l = churn(base, subsetsOf(mode, backends.filter((_, i) => i !== gone), clients));
      leave += l.fraction / TRIALS;
      leaveSwap = Math.max(leaveSwap, l.maxSwapped);
      // A client joins at a random index (peers sorted by id): the ones after it move up by one.
      const at = Math.floor(random() * (clients + 1));
      const grown = Array.from({ length: clients }, (_, i) => [...mode(backends, i, i < at ? i : i + 1, clients + 1)]);
      peer += churn(base, grown).fraction / TRIALS;
    }
    const conns = base.reduce((a, s) => a + s.length, 0);
    rows.push([name, String(conns), b.connMax.toFixed(3), b.connMin.toFixed(3), b.loadMax.toFixed(3), pct(join), String(joinSwap), pct(leave), String(leaveSwap), pct(peer)]);
  }
  const k = Math.min(SIZE, backendCount);
  console.log(`\n${clients} clients × ${backendCount} backends, subset ${SIZE}; churn over ${TRIALS} joins and ${TRIALS} leaves;` +
    ` minimum possible: join ${pct(k / (backendCount + 1))}, leave ${pct(k / backendCount)} of the clients\n`);
  console.log(table(['mode', 'connections', 'conn max/avg', 'conn min/avg', 'load max/avg', 'join: clients changed', 'max swapped', 'leave: clients changed', 'max swapped', 'a client joins: clients changed'], rows));
}

export async function run(): Promise<void> {
  requireBuilt();
  const started = performance.now();
  console.log(`# subsetting.bench.ts — Node ${process.version}, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  scenario(CLIENTS, BACKENDS);
  // A small fleet: fewer clients than backends/size, where aperture widens to cover every backend.
  scenario(Math.max(1, Math.floor(CLIENTS / 100)), BACKENDS);
  console.log(`\n(${((performance.now() - started) / 1000).toFixed(1)} s)`);
  await Promise.resolve();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
