/**
 * Bench helper: the balancer testbed's lower bound, by simulation. A discrete-event model of the
 * testbed (no sockets, no timers: pure computation, seeded) dispatched by an ideal balancer with
 * perfect, instant knowledge of every backend: join the shortest expected wait,
 * (queued + busy + 1) ÷ current slots × mean service time (the antagonist's extra delay included),
 * ties at random (or, for comparison, a uniform random split). The backends are modelled as `testbed-backend.ts` runs them: slots, a queue of
 * `queueMax` then 503, service time `baseMs + extraMs + exp(expMs)` drawn when a request starts,
 * busy ÷ slots integrated over time and emitted as `UtilSample`s every `sampleMs`, so the bench
 * measures the oracle with the same code as its real rows.
 */
import type { UtilSample } from './testbed.js';

export interface OracleBackend {
  slots: number;
  baseMs: number;
  expMs: number;
  queueMax: number;
}

/** A capacity change at `at` ms (from the recorded start): as `TestbedBackend.set`. */
export interface OracleChange {
  at: number;
  backends: number[];
  slots?: number[];
  extraMs?: number;
}

export interface OracleOptions {
  backends: readonly OracleBackend[];
  /** Arrivals per second (Poisson). */
  rate: number;
  /** Unrecorded warm-up before 0, ms (arrivals at the same rate). */
  warmMs: number;
  /** Recorded arrivals in [0, durationMs). */
  durationMs: number;
  changes: OracleChange[];
  sampleMs: number;
  /** A request slower than this fails with this time (the client's deadline). */
  deadlineMs: number;
  seed: number;
  /** `jsq` (default): the oracle; `random`: a uniform random split (each backend a fair share, no knowledge). */
  dispatch?: 'jsq' | 'random';
}

export interface OracleRequest {
  /** Arrival, ms from the recorded start. */
  at: number;
  latencyMs: number;
  error: string | undefined;
}

export interface OracleResult {
  /** Recorded requests (arrival in [0, durationMs)), in arrival order. */
  requests: OracleRequest[];
  /** Per backend: samples stamped at their end, ms from the recorded start (epoch 0). */
  samples: UtilSample[][];
  /**
   * Offered base work ÷ capacity over the recorded arrivals: Σ (service time − antagonist delay)
   * ÷ (Σ slots × duration). ≈ the configured load if the model draws what the testbed draws.
   */
  offeredLoad: number;
}

/** mulberry32: a small seeded PRNG in [0, 1). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Server {
  spec: OracleBackend;
  slots: number;
  extraMs: number;
  busy: number;
  queue: number[];
  lastChange: number;
  utilArea: number;
  sampleStart: number;
  served: number;
}

type EventBody = { t: number } & ({ kind: 'arrive' } | { kind: 'done'; server: number; arrival: number } | { kind: 'change'; change: OracleChange } | { kind: 'sample' });
type Event = EventBody & { seq: number };

/** A binary min-heap of events by time, then insertion order (deterministic). */
class Events {
  private readonly heap: Event[] = [];
  private seq = 0;
  push(e: EventBody): void {
    const h = this.heap;
    h.push({ ...e, seq: this.seq++ });
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!Events.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): Event | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && Events.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && Events.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
  private static less(a: Event, b: Event): boolean {
    return a.t < b.t || (a.t === b.t && a.seq < b.seq);
  }
}

export function simulateOracle(o: OracleOptions): OracleResult {
  const random = seeded(o.seed);
  const servers: Server[] = o.backends.map((spec) => ({ spec, slots: spec.slots, extraMs: 0, busy: 0, queue: [], lastChange: -o.warmMs, utilArea: 0, sampleStart: -o.warmMs, served: 0 }));
  const samples: UtilSample[][] = servers.map(() => []);
  const requests: OracleRequest[] = [];
  const events = new Events();
  let baseWork = 0;

  const account = (s: Server, now: number): void => {
    s.utilArea += (Math.min(s.busy, s.slots) / s.slots) * (now - s.lastChange);
    s.lastChange = now;
  };
  const record = (arrival: number, latencyMs: number, error: string | undefined): void => {
    if (arrival < 0 || arrival >= o.durationMs) return;
    requests.push(latencyMs > o.deadlineMs ? { at: arrival, latencyMs: o.deadlineMs, error: 'ERR_DEADLINE_EXCEEDED' } : { at: arrival, latencyMs, error });
  };
  const start = (i: number, arrival: number, now: number): void => {
    const s = servers[i]!;
    account(s, now);
    s.busy++;
    const base = s.spec.baseMs - s.spec.expMs * Math.log(1 - random());
    if (arrival >= 0 && arrival < o.durationMs) baseWork += base;
    events.push({ t: now + base + s.extraMs, kind: 'done', server: i, arrival });
  };
  const next = (i: number, now: number): void => {
    const s = servers[i]!;
    while (s.busy < s.slots && s.queue.length > 0) start(i, s.queue.shift()!, now);
  };
  /** Shortest expected wait, ties at random (reservoir over the tied). */
  const pick = (): number => {
    if (o.dispatch === 'random') {
      const i = Math.floor(random() * servers.length);
      return servers[i]!.queue.length >= servers[i]!.spec.queueMax ? -1 : i;
    }
    let best = -1;
    let bestCost = Infinity;
    let ties = 0;
    servers.forEach((s, i) => {
      if (s.queue.length >= s.spec.queueMax) return;
      const cost = ((s.queue.length + s.busy + 1) / s.slots) * (s.spec.baseMs + s.spec.expMs + s.extraMs);
      if (cost < bestCost) {
        best = i;
        bestCost = cost;
        ties = 1;
      } else if (cost === bestCost && random() * ++ties < 1) best = i;
    });
    return best;
  };

  for (let t = -o.warmMs - (Math.log(1 - random()) * 1000) / o.rate; t < o.durationMs; t -= (Math.log(1 - random()) * 1000) / o.rate) events.push({ t, kind: 'arrive' });
  for (const change of o.changes) events.push({ t: change.at, kind: 'change', change });
  for (let t = -o.warmMs + o.sampleMs; t <= o.durationMs + o.sampleMs; t += o.sampleMs) events.push({ t, kind: 'sample' });

  for (let e = events.pop(); e !== undefined; e = events.pop()) {
    if (e.kind === 'arrive') {
      const i = pick();
      if (i < 0) {
        record(e.t, 0, 'HTTP 503');
        continue;
      }
      const s = servers[i]!;
      if (s.busy < s.slots) start(i, e.t, e.t);
      else s.queue.push(e.t);
    } else if (e.kind === 'done') {
      const s = servers[e.server]!;
      account(s, e.t);
      s.busy--;
      s.served++;
      record(e.arrival, e.t - e.arrival, undefined);
      next(e.server, e.t);
    } else if (e.kind === 'change') {
      e.change.backends.forEach((i, k) => {
        const s = servers[i]!;
        account(s, e.t);
        const slots = e.change.slots?.[k];
        if (slots !== undefined) s.slots = slots;
        if (e.change.extraMs !== undefined) s.extraMs = e.change.extraMs;
        next(i, e.t);
      });
    } else {
      servers.forEach((s, i) => {
        account(s, e.t);
        const dt = s.lastChange - s.sampleStart;
        samples[i]!.push({ t: e.t, u: dt > 0 ? s.utilArea / dt : 0, q: s.queue.length, n: s.served });
        s.utilArea = 0;
        s.served = 0;
        s.sampleStart = s.lastChange;
      });
    }
  }
  requests.sort((a, b) => a.at - b.at);
  const slotMs = o.backends.reduce((sum, b) => sum + b.slots, 0) * o.durationMs;
  return { requests, samples, offeredLoad: baseWork / slotMs };
}
