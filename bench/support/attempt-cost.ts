/**
 * Profiling helper (not part of `npm run bench`): one attempt's bookkeeping
 * on the client's endpoint set (pick + done, through endpoint-set-adapter.ts,
 * peak EWMA) at 100 and 10 000 endpoints, two ways: in a tight loop (the
 * figure pickers.bench.ts reports: code and data stay in the CPU caches) and
 * isolated, one attempt after each 1 ms sleep (as in a client, where each
 * attempt is separated by I/O and other work: the set's code and the picked
 * endpoints' objects are cold). Medians; `K` isolated attempts per size.
 * Usage (built packages): node --import tsx bench/support/attempt-cost.ts
 * Profile: add `--cpu-prof` before `--import` (the tight loop dominates the samples).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadavg } from 'node:os';
import type { ServiceInstance } from '@proxyless/core';
import { loadBuild, requireBuilt, THIS_TREE } from './builds.js';
import { openEndpointSet } from './endpoint-set-adapter.js';

const K = Number(process.env['K'] ?? 400);
const TIGHT = 200_000;

const instances = (n: number): ServiceInstance[] =>
  Array.from({ length: n }, (_, i) => Object.freeze({
    key: `node${i}/web-${i}`, id: `web-${i}`, service: 'web', address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 8080,
    tags: [], meta: {}, weights: { passing: 1, warning: 1 }, datacenter: 'dc1', health: 'passing' as const,
  }));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

requireBuilt();
const build = await loadBuild(THIS_TREE);
console.log(`load average at the start ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const n of [100, 10_000]) {
  const opened = await openEndpointSet(build, build.core.peakEwma(), instances(n));
  if ('none' in opened) throw new Error(opened.none);
  const { probe } = opened;
  for (let i = 0; i < 50_000; i++) probe.attempt(); // warm-up: optimised code
  const tight: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < TIGHT; i++) probe.attempt();
    tight.push(Number(process.hrtime.bigint() - t0) / TIGHT / 1e3);
  }
  const isolated: number[] = [];
  for (let k = 0; k < K; k++) {
    await sleep(1);
    const t0 = process.hrtime.bigint();
    probe.attempt();
    isolated.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  console.log(`n=${String(n).padStart(6)}: tight loop ${median(tight).toFixed(2)} µs/attempt; isolated (after a 1 ms sleep) ${median(isolated).toFixed(2)} µs, p90 ${[...isolated].sort((a, b) => a - b)[Math.floor(K * 0.9)]!.toFixed(2)}`);
  await probe.close();
}
console.log(`load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
