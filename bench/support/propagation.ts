/**
 * What the propagation benchmarks (Consul, etcd) share: a subscriber's view of
 * one toggled instance, waiting for it, and the measuring loop.
 */
import { performance } from 'node:perf_hooks';
import type { ServiceWatch } from '@proxyless/core';

/** The port of the instance the benchmarks add and remove. */
export const TOGGLED_PORT = 9999;
/** Longest a phase may run, and longest one change may take to be seen. */
const PHASE_LIMIT_MS = 15 * 60_000;
const WAIT_LIMIT_MS = 30_000;

/** A subscriber's view: does it currently see the toggled instance, and since when. */
export interface View {
  readonly name: string;
  present(): boolean;
  /** performance.now() of the last event that changed `present()`. */
  changedAt: number;
  listeners: Set<() => void>;
  close(): Promise<void>;
  requests(): number;
}

/** A view fed by a resolver's watch. */
export function viewOfWatch(name: string, watch: ServiceWatch, requests: () => number): View {
  const view: View = {
    name,
    present: () => watch.current?.instances.some((i) => i.port === TOGGLED_PORT) ?? false,
    changedAt: 0,
    listeners: new Set(),
    close: () => watch.close(),
    requests,
  };
  let last = false;
  watch.on('update', () => {
    const now = view.present();
    if (now !== last) {
      last = now;
      view.changedAt = performance.now();
      for (const l of view.listeners) l();
    }
  });
  return view;
}

/** A view fed by a fixed-interval poll (confd-style): `read()` answers whether the toggled instance is there. */
export function pollingView(name: string, intervalMs: number, read: () => Promise<boolean>, requests: () => number, close: () => Promise<void>): View {
  let present = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const view: View = {
    name,
    present: () => present,
    changedAt: 0,
    listeners: new Set(),
    close: async () => {
      stopped = true;
      clearTimeout(timer);
      await close();
    },
    requests,
  };
  const tick = async (): Promise<void> => {
    if (stopped) return;
    try {
      const now = await read();
      if (now !== present) {
        present = now;
        view.changedAt = performance.now();
        for (const l of view.listeners) l();
      }
    } catch {
      // a failed poll is retried at the next tick
    }
    if (!stopped) timer = setTimeout(() => void tick(), intervalMs);
  };
  void tick();
  return view;
}

function waitFor(view: View, expected: boolean, deadline: number): Promise<number | undefined> {
  if (view.present() === expected) return Promise.resolve(view.changedAt);
  return new Promise((resolve) => {
    const done = (value: number | undefined): void => {
      clearTimeout(timer);
      view.listeners.delete(check);
      resolve(value);
    };
    const check = (): void => {
      if (view.present() === expected) done(view.changedAt);
    };
    const timer = setTimeout(() => done(undefined), Math.max(0, deadline - Date.now()));
    view.listeners.add(check);
  });
}

/** The p-th percentile of an ascending list (nearest rank). */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
}

/**
 * Toggles the instance `changes` times; records, per view, the time from just
 * before the toggle to the view's event. After every view has seen a change,
 * waits a uniform random delay up to `maxGapMs`, so changes fall at random
 * phases of the pollers' cycles. Bounded by count and time.
 */
export async function measure(
  label: string,
  views: View[],
  changes: number,
  maxGapMs: number,
  toggle: (present: boolean) => Promise<void>,
  samples: Map<string, number[]>,
  missed: Map<string, number>,
): Promise<void> {
  const phaseEnd = Date.now() + PHASE_LIMIT_MS;
  let present = views[0]?.present() ?? false;
  for (let i = 0; i < changes && Date.now() < phaseEnd; i++) {
    present = !present;
    const deadline = Date.now() + WAIT_LIMIT_MS;
    const waits = views.map((v) => waitFor(v, present, deadline));
    const t0 = performance.now();
    await toggle(present);
    const seen = await Promise.all(waits);
    seen.forEach((at, j) => {
      const name = views[j]?.name ?? '?';
      if (at === undefined) missed.set(name, (missed.get(name) ?? 0) + 1);
      else {
        const list = samples.get(name) ?? [];
        list.push(Math.max(0, at - t0));
        samples.set(name, list);
      }
    });
    await new Promise((r) => setTimeout(r, Math.random() * maxGapMs));
    if ((i + 1) % 10 === 0) process.stderr.write(`  ${label}: ${i + 1}/${changes} changes\n`);
  }
}
