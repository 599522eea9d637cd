/**
 * Test support: restart an agent and time its return precisely.
 */
import { performance } from 'node:perf_hooks';
import type { ConsulAgent } from './consul.js';

/**
 * Starts a stopped agent and resolves (once it is fully up) with the
 * `performance.now()` of its first successful answer to `path`: a fresh probe
 * goes out every 10 ms without waiting for the previous one, since a
 * half-started agent may accept a connection and stall. Bounded: 6,000 probes.
 */
export async function startAndTimeFirstAnswer(agent: ConsulAgent, path: string): Promise<number> {
  let backAt: number | undefined;
  const starting = agent.start();
  const probes: Promise<void>[] = [];
  while (backAt === undefined && probes.length < 6000) {
    probes.push(fetch(`${agent.httpUrl}${path}`, { signal: AbortSignal.timeout(5000) }).then(async (res) => {
      await res.arrayBuffer();
      const at = performance.now();
      if (res.ok && (backAt === undefined || at < backAt)) backAt = at;
    }, () => undefined));
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(probes);
  await starting;
  if (backAt === undefined) throw new Error(`${agent.httpUrl}${path} never answered`);
  return backAt;
}
