/**
 * Bench helper, called in a build worker (build-process.ts) by
 * pickers.bench.ts: one round of picker measurements with that build's core
 * (its public balancers: `createPicker`, `pick`, `availabilityChanged`), and
 * of its client's endpoint set through endpoint-set-adapter.ts. The first
 * call builds everything and warms up; every call then takes one sample per
 * cell, so rounds can be interleaved with another build's.
 */
import type { Balancer, BalancerEndpoint, PickContext, Picker, ServiceInstance } from '@proxyless/core';
import type { Build } from './builds.js';
import { openEndpointSet, type EndpointSetProbe } from './endpoint-set-adapter.js';

export interface RoundArgs {
  sizes: number[];
  maxPicks: number;
  maxMs: number;
  /** Availability changes per round per strategy (the round's sample is their median). */
  changes: number;
}

/** Samples of one round, by cell key (see `keys` in pickers.bench.ts); NaN: not available in this build. */
export interface RoundResult {
  samples: Record<string, number>;
  /** The endpoint-set adapter used, or why none. */
  setLayout: string;
}

export const STRATEGIES = [
  'round-robin',
  'random',
  'weighted-round-robin',
  'least-request (P2C)',
  'peak-ewma (P2C)',
  'ring-hash (keyed)',
  'maglev (keyed)',
  'locality(peak-ewma)',
  'slow-start(peak-ewma)',
  'load-weighted-round-robin',
  'peak-ewma+reported (P2C)',
] as const;
/** Strategies also measured through the client's endpoint set: the default, and a keyed one. */
export const SET_STRATEGIES = ['peak-ewma (P2C)', 'maglev (keyed)'] as const;

const BATCH = 1024;

function balancer(core: Build['core'], label: string): Balancer | undefined {
  switch (label) {
    case 'round-robin': return core.roundRobin?.();
    case 'random': return core.random?.();
    case 'weighted-round-robin': return core.weightedRoundRobin?.();
    case 'least-request (P2C)': return core.leastRequest?.();
    case 'peak-ewma (P2C)': return core.peakEwma?.();
    case 'ring-hash (keyed)': return core.consistentHash?.({ algorithm: 'ring' });
    case 'maglev (keyed)': return core.consistentHash?.({ algorithm: 'maglev' });
    case 'locality(peak-ewma)': return core.locality?.(core.peakEwma(), { zone: 'z0' });
    case 'slow-start(peak-ewma)': return core.slowStart?.(core.peakEwma());
    // Issue 22: balancers that read the servers' reports (load.reported below); absent from older builds.
    case 'load-weighted-round-robin': return (core as { loadWeightedRoundRobin?: () => Balancer }).loadWeightedRoundRobin?.();
    case 'peak-ewma+reported (P2C)': return optional(() => core.peakEwma({ reportedLoad: true }));
    default: return undefined;
  }
}

/** A balancer an older build refuses (an option it does not know): left out. */
function optional(make: () => Balancer): Balancer | undefined {
  try {
    return make();
  } catch {
    return undefined;
  }
}

interface BenchEndpoint extends BalancerEndpoint {
  available: boolean;
}

function instances(n: number): ServiceInstance[] {
  return Array.from({ length: n }, (_, i) =>
    Object.freeze({
      key: `node${i}/web-${i}`,
      id: `web-${i}`,
      service: 'web',
      address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      port: 8080,
      tags: [],
      meta: {},
      weights: { passing: 1 + (i % 3), warning: 1 },
      datacenter: 'dc1',
      zone: `z${i % 3}`,
      health: 'passing' as const,
    }),
  );
}

function endpoints(n: number, unavailableEvery = 0): BenchEndpoint[] {
  return instances(n).map((instance, i) => ({
    instance,
    // A report per endpoint (utilisation 0.1–0.9, 50–500 rps, rif 0–9), as the http-client hands usable ones to balancers; older builds ignore it.
    load: { inFlight: i % 7, ewmaMs: 1 + (i % 11), readySince: 0, reported: { utilization: 0.1 + (i % 9) / 10, rps: 50 + (i % 10) * 50, eps: i % 5, rif: i % 10, latencyMs: 1 + (i % 11), ageMs: 5, report: {} } },
    available: unavailableEvery === 0 || i % unavailableEvery !== 0,
  }));
}

const contexts: PickContext[] = Array.from({ length: BATCH }, (_, i) => ({ hashKey: `user-${i * 7919}` }));
let sink = 0;

/** One bounded loop: ns per pick. */
function measurePicks(picker: Picker, keyed: boolean, maxPicks: number, maxMs: number): number {
  const deadline = process.hrtime.bigint() + BigInt(maxMs * 1e6);
  const first = picker.endpoints[0];
  let picks = 0;
  const start = process.hrtime.bigint();
  let now = start;
  while (picks < maxPicks && now < deadline) {
    if (keyed) {
      for (let i = 0; i < BATCH; i++) if (picker.pick(contexts[i]) === first) sink++;
    } else {
      for (let i = 0; i < BATCH; i++) if (picker.pick() === first) sink++;
    }
    picks += BATCH;
    now = process.hrtime.bigint();
  }
  return Number(now - start) / picks;
}

/** One bounded loop of attempts through the endpoint set: ns per attempt. */
function measureAttempts(probe: EndpointSetProbe, maxPicks: number, maxMs: number): number {
  const deadline = process.hrtime.bigint() + BigInt(maxMs * 1e6);
  let n = 0;
  const start = process.hrtime.bigint();
  let now = start;
  while (n < maxPicks && now < deadline) {
    for (let i = 0; i < BATCH; i++) probe.attempt();
    n += BATCH;
    now = process.hrtime.bigint();
  }
  return Number(now - start) / n;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};

interface State {
  cells: { key: string; picker: Picker; keyed: boolean }[];
  big: BenchEndpoint[];
  strategies: { label: string; balancer: Balancer; keyed: boolean; changePicker: Picker }[];
  sets: { label: string; probe: EndpointSetProbe }[];
  setLayout: string;
  round: number;
}

let state: State | undefined;

async function setup(build: Build, args: RoundArgs): Promise<State> {
  const big = args.sizes[args.sizes.length - 1]!;
  const sets = [...args.sizes.map((n) => ({ n: String(n), eps: endpoints(n) })), { n: `${big}/10`, eps: endpoints(big, 10) }];
  const bigSet = sets[args.sizes.length - 1]!.eps;
  const strategies: State['strategies'] = [];
  const cells: State['cells'] = [];
  for (const label of STRATEGIES) {
    const b = balancer(build.core, label);
    if (b === undefined) continue;
    const keyed = label.includes('keyed');
    strategies.push({ label, balancer: b, keyed, changePicker: b.createPicker(bigSet) });
    for (const s of sets) cells.push({ key: `pick|${label}|${s.n}`, picker: b.createPicker(s.eps), keyed });
  }
  const probes: State['sets'] = [];
  let setLayout = '';
  for (const label of SET_STRATEGIES) {
    const b = balancer(build.core, label);
    if (b === undefined) continue;
    const opened = await openEndpointSet(build, b, instances(big));
    if ('none' in opened) {
      setLayout = opened.none;
      break;
    }
    setLayout = opened.layout;
    probes.push({ label, probe: opened.probe });
  }
  return { cells, big: bigSet, strategies, sets: probes, setLayout, round: 0 };
}

/** One availability change at the picker: flip an endpoint, `availabilityChanged()`, one pick (µs); flipped back untimed. */
function pickerChange(picker: Picker, set: BenchEndpoint[], keyed: boolean, which: number): number {
  const e = set[which % set.length]!;
  const t0 = process.hrtime.bigint();
  e.available = !e.available;
  picker.availabilityChanged?.();
  if (picker.pick(keyed ? contexts[which % BATCH] : undefined) === undefined) sink++;
  const us = Number(process.hrtime.bigint() - t0) / 1e3;
  e.available = !e.available;
  picker.availabilityChanged?.();
  return us;
}

/** One availability change in the endpoint set: endpoint i's breaker opens, then one attempt (µs); restored untimed. */
async function setChange(probe: EndpointSetProbe, i: number): Promise<number> {
  probe.prepare(i);
  const t0 = process.hrtime.bigint();
  probe.open(i);
  probe.attempt();
  const us = Number(process.hrtime.bigint() - t0) / 1e3;
  if (probe.available(i)) throw new Error(`endpoint ${i} is still available after its breaker opened: fix the adapter`);
  await probe.restore(i);
  return us;
}

export async function round(build: Build, args: RoundArgs): Promise<RoundResult> {
  if (state === undefined) {
    state = await setup(build, args);
    // Warm-up: every loop and every change path once.
    for (const c of state.cells) measurePicks(c.picker, c.keyed, args.maxPicks, args.maxMs);
    for (const s of state.strategies) {
      s.balancer.createPicker(state.big);
      pickerChange(s.changePicker, state.big, s.keyed, 0);
    }
    for (const s of state.sets) {
      measureAttempts(s.probe, args.maxPicks, args.maxMs);
      await setChange(s.probe, 1);
    }
  }
  const st = state;
  const r = ++st.round;
  const samples: Record<string, number> = {};
  for (const c of st.cells) samples[c.key] = measurePicks(c.picker, c.keyed, args.maxPicks, args.maxMs);
  for (const s of st.strategies) {
    const t0 = process.hrtime.bigint();
    s.balancer.createPicker(st.big);
    samples[`build|${s.label}`] = Number(process.hrtime.bigint() - t0) / 1e6;
    const us: number[] = [];
    for (let k = 0; k < args.changes; k++) us.push(pickerChange(s.changePicker, st.big, s.keyed, 7919 * (r * args.changes + k + 1)));
    samples[`change|${s.label}`] = median(us);
  }
  for (const s of st.sets) {
    samples[`setAttempt|${s.label}`] = measureAttempts(s.probe, args.maxPicks, args.maxMs);
    const us: number[] = [];
    for (let k = 0; k < args.changes; k++) us.push(await setChange(s.probe, 7919 * (r * args.changes + k + 1)));
    samples[`setChange|${s.label}`] = median(us);
  }
  if (sink === -1) console.log(sink); // keep picks observable
  return { samples, setLayout: st.setLayout };
}

export async function close(): Promise<void> {
  for (const s of state?.sets ?? []) await s.probe.close();
  state = undefined;
}
