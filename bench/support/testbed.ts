/**
 * Bench helpers for the balancer testbed and the fairness bench: backends of
 * known capacity in child processes (testbed-backend.ts, one per process),
 * each reporting its utilisation on stdout; an open-loop Poisson load; exact
 * percentiles.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { stop } from './processes.js';

const here = dirname(fileURLToPath(import.meta.url));

export interface BackendSpec {
  port: number;
  /** Worker slots: requests served at once; the rest wait in a queue of `queueMax` (then 503). */
  slots: number;
  /** Service time: `baseMs` + an exponential of mean `expMs` (a timer). */
  baseMs: number;
  expMs: number;
  queueMax: number;
  /** Period of the utilisation samples the backend prints. */
  sampleMs: number;
  /** Added to the first request's service time only (a cold start). */
  firstExtraMs?: number;
  /** What the backend reports as `application_utilization`: (busy + queued) ÷ slots (default), or busy ÷ slots. */
  utilization?: 'occupancy' | 'busy';
}

/** One utilisation sample: epoch ms at its end, busy slots ÷ slots averaged over it, queue length, requests served. */
export interface UtilSample {
  t: number;
  u: number;
  q: number;
  n: number;
}

/** A backend in a child process of its own; its samples accumulate in `samples`. */
export class TestbedBackend {
  readonly samples: UtilSample[] = [];
  private constructor(
    readonly spec: BackendSpec,
    private readonly child: ChildProcess,
  ) {}

  static async start(spec: BackendSpec, timeoutMs = 60_000): Promise<TestbedBackend> {
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'testbed-backend.ts'), JSON.stringify(spec)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const backend = new TestbedBackend(spec, child);
    const ready = new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`testbed backend on port ${spec.port} exited (${String(code)}) before it was ready`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (line === 'ready') return resolve();
        if (line.startsWith('{')) backend.samples.push(JSON.parse(line) as UtilSample);
      });
    });
    try {
      await Promise.race([ready, sleep(timeoutMs, undefined, { ref: false }).then(() => Promise.reject(new Error(`testbed backend on port ${spec.port} not ready within ${timeoutMs} ms`)))]);
    } catch (e) {
      await stop(child);
      throw e;
    }
    return backend;
  }

  /** Capacity now: `slots` worker slots and `extraMs` added to every service time. */
  set(change: { slots?: number; extraMs?: number }): void {
    this.child.stdin?.write(`${JSON.stringify(change)}\n`);
  }

  /** Requests per second it serves at full use, at its spec's capacity. */
  get capacity(): number {
    return (this.spec.slots * 1000) / (this.spec.baseMs + this.spec.expMs);
  }

  stop(): Promise<void> {
    return stop(this.child);
  }
}

/** Starts every backend (stops those started if one fails). */
export async function startTestbed(specs: BackendSpec[]): Promise<TestbedBackend[]> {
  const settled = await Promise.allSettled(specs.map((s) => TestbedBackend.start(s)));
  const started = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(started.map((b) => b.stop()));
    throw (failed).reason;
  }
  return started;
}

/** Epoch ms with sub-ms precision (the backends stamp their samples the same way). */
export const epochNow = (): number => performance.timeOrigin + performance.now();

/**
 * Open loop: Poisson arrivals at `rate` per second for `ms` (at most `max`
 * arrivals), each handed to `fire` with its scheduled time (performance.now()
 * ms), so a late tick does not hide queueing (no coordinated omission).
 * Resolves when the last arrival is issued, not answered.
 */
export async function poissonArrivals(rate: number, ms: number, max: number, fire: (scheduledAt: number) => void): Promise<number> {
  const start = performance.now();
  const gap = (): number => (-Math.log(1 - Math.random()) * 1000) / rate;
  let next = start + gap();
  let issued = 0;
  while (issued < max) {
    const now = performance.now();
    if (now - start >= ms) break;
    while (next <= now && issued < max) {
      fire(next);
      issued++;
      next += gap();
    }
    await sleep(1);
  }
  return issued;
}

/** The p-th percentile (0–100) of ascending `sorted` values, by nearest rank; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** The p-th percentile (0–100) of ascending `sorted` values, interpolated between ranks (for a few values, e.g. one per backend); NaN when empty. */
export function percentileInterpolated(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const at = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

/** Waits until `pending` is empty or `ms` passed. */
export async function settle(pending: Set<Promise<unknown>>, ms: number): Promise<void> {
  await Promise.race([Promise.allSettled([...pending]), sleep(ms, undefined, { ref: false })]);
}
