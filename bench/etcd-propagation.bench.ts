/**
 * etcd propagation: from a change in etcd (a put or delete of an instance key)
 * to the subscriber's event, side by side in one run, for
 *   - the etcd watch (EtcdResolver.watch: one watch stream per service),
 *   - confd-style polling of the same prefix (a range read every 1 s, and every 10 s with fewer samples),
 * then a burst of back-to-back changes seen by the watch, and etcd requests per
 * minute per watched service at steady state.
 *
 * t0 is taken just before the put/delete is sent (figures include it). After
 * every subscriber has seen a change, the next waits a uniform random delay over
 * the slowest poll period, so changes fall at random phases of the pollers'
 * cycles. Every loop is bounded by count and time.
 *
 * Run: npm run bench -- bench/etcd-propagation.bench.ts
 * Knobs: ETCD_PROPAGATION_CHANGES (100), ETCD_PROPAGATION_SLOW_CHANGES (10), ETCD_PROPAGATION_BURST (200), ETCD_PROPAGATION_STEADY_MS (60000).
 */
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { EtcdClient, EtcdResolver, type EtcdCallOptions } from '@proxyless/etcd';
import type { ServiceWatch } from '@proxyless/core';
import { etcdBinary, startEtcd } from '../test/support/etcd.js';
import { TOGGLED_PORT, measure, percentile, pollingView, viewOfWatch, type View } from './support/propagation.js';
import { requireBuilt } from './support/builds.js';

const CHANGES = Number(process.env['ETCD_PROPAGATION_CHANGES'] ?? 100);
const SLOW_CHANGES = Number(process.env['ETCD_PROPAGATION_SLOW_CHANGES'] ?? 10);
const BURST = Number(process.env['ETCD_PROPAGATION_BURST'] ?? 200);
const STEADY_MS = Number(process.env['ETCD_PROPAGATION_STEADY_MS'] ?? 60_000);
const WAIT_LIMIT_MS = 30_000;
const SERVICE = 'propagation';
const PREFIX = `/proxyless/services/${SERVICE}/`;
const TOGGLED = `${PREFIX}x`;
const value = (port: number): string => JSON.stringify({ address: '127.0.0.1', port });

/** Counts every call that reaches etcd (a watch stream counts once, when opened). */
class CountingClient extends EtcdClient {
  requests = 0;
  override async request(path: string, body: unknown, options?: EtcdCallOptions): Promise<Record<string, unknown>> {
    this.requests++;
    return super.request(path, body, options);
  }
  override async *watch(...args: Parameters<EtcdClient['watch']>): ReturnType<EtcdClient['watch']> {
    this.requests++;
    yield* super.watch(...args);
  }
}

/** confd-style: a range read of the prefix every `intervalMs`; an event when the toggled key appears or leaves. */
function poller(name: string, endpoint: string, intervalMs: number): View {
  const client = new CountingClient({ endpoints: endpoint }, {});
  return pollingView(
    name,
    intervalMs,
    async () => (await client.range(PREFIX, { prefix: true })).kvs.some((kv) => kv.key.toString() === TOGGLED),
    () => client.requests,
    () => client.close(),
  );
}

/** `BURST` puts of distinct keys sent back to back (8 in flight); latency of each until the watch shows it. */
async function burst(admin: EtcdClient, watch: ServiceWatch): Promise<{ latencies: number[]; missed: number; wallMs: number }> {
  const sentAt = new Map<number, number>();
  const seenAt = new Map<number, number>();
  const onUpdate = (): void => {
    const now = performance.now();
    for (const i of watch.current?.instances ?? []) if (i.port >= 20_000 && !seenAt.has(i.port)) seenAt.set(i.port, now);
  };
  watch.on('update', onUpdate);
  const start = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < BURST) {
      const n = next++;
      const port = 20_000 + n;
      sentAt.set(port, performance.now());
      await admin.put(`${PREFIX}burst-${n}`, value(port));
    }
  };
  await Promise.all(Array.from({ length: 8 }, () => worker()));
  const deadline = Date.now() + WAIT_LIMIT_MS;
  while (seenAt.size < BURST && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const wallMs = performance.now() - start;
  watch.off('update', onUpdate);
  const latencies = [...sentAt].filter(([p]) => seenAt.has(p)).map(([p, t]) => (seenAt.get(p) ?? t) - t);
  await admin.delete(`${PREFIX}burst-`, { prefix: true });
  return { latencies, missed: BURST - latencies.length, wallMs };
}

export async function run(): Promise<void> {
  requireBuilt();
  const etcd = await startEtcd();
  const admin = new EtcdClient({ endpoints: etcd.clientUrl }, {});
  // How long etcd itself takes to commit each change (until the put/delete is acknowledged; a WAL fsync):
  // the part of the figures below that no subscriber can beat.
  const commits: number[] = [];
  const toggle = async (present: boolean): Promise<void> => {
    const t0 = performance.now();
    if (present) await admin.put(TOGGLED, value(TOGGLED_PORT));
    else await admin.delete(TOGGLED);
    commits.push(performance.now() - t0);
  };
  const watchClient = new CountingClient({ endpoints: etcd.clientUrl }, {});
  const resolver = new EtcdResolver({ client: watchClient });
  const views: View[] = [];
  const samples = new Map<string, number[]>();
  const missed = new Map<string, number>();
  try {
    await admin.put(`${PREFIX}base`, value(9000));
    const watch = resolver.watch(SERVICE);
    const watched = viewOfWatch('etcd watch (EtcdResolver)', watch, () => watchClient.requests);
    const poll1 = poller('confd-style poll 1 s', etcd.clientUrl, 1000);
    views.push(watched, poll1);
    await watch.ready({ timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 1200));

    process.stderr.write(`etcd propagation: ${CHANGES} changes (watch, 1 s poll)\n`);
    await measure('fast', [watched, poll1], CHANGES, 1000, toggle, samples, missed);

    process.stderr.write(`etcd propagation: ${SLOW_CHANGES} changes (10 s poll)\n`);
    const poll10 = poller('confd-style poll 10 s (confd default)', etcd.clientUrl, 10_000);
    views.push(poll10);
    await new Promise((r) => setTimeout(r, 500));
    await measure('slow', [poll10], SLOW_CHANGES, 10_000, toggle, samples, missed);

    process.stderr.write(`etcd propagation: burst of ${BURST} changes\n`);
    const burstResult = await burst(admin, watch);

    process.stderr.write(`etcd propagation: steady state for ${STEADY_MS} ms\n`);
    const before = views.map((v) => v.requests());
    const t = performance.now();
    await new Promise((r) => setTimeout(r, STEADY_MS));
    const minutes = (performance.now() - t) / 60_000;
    const perMinute = views.map((v, i) => (v.requests() - (before[i] ?? 0)) / minutes);

    console.log('\netcd propagation latency: change in etcd → subscriber event (ms; t0 before the put/delete)');
    console.log('command: npm run bench -- bench/etcd-propagation.bench.ts');
    console.log(`node ${process.version}, etcd ${etcdBinary().version} (single member, loopback), machine: ${cpus()[0]?.model ?? '?'} × ${cpus().length}`);
    const header = ['subscriber', 'samples', 'missed', 'p50', 'p90', 'p99', 'max', 'etcd req/min at steady state'];
    const rows = views.map((v, i) => {
      const s = [...(samples.get(v.name) ?? [])].sort((a, b) => a - b);
      return [v.name, String(s.length), String(missed.get(v.name) ?? 0), percentile(s, 50).toFixed(1), percentile(s, 90).toFixed(1), percentile(s, 99).toFixed(1), (s[s.length - 1] ?? Number.NaN).toFixed(1), (perMinute[i] ?? Number.NaN).toFixed(1)];
    });
    const b = [...burstResult.latencies].sort((x, y) => x - y);
    rows.push([`etcd watch, burst of ${BURST} puts (8 in flight)`, String(b.length), String(burstResult.missed), percentile(b, 50).toFixed(1), percentile(b, 90).toFixed(1), percentile(b, 99).toFixed(1), (b[b.length - 1] ?? Number.NaN).toFixed(1), '']);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const line = (row: string[]): string => row.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
    console.log(line(header));
    for (const row of rows) console.log(line(row));
    const p99 = percentile([...(samples.get(watched.name) ?? [])].sort((x, y) => x - y), 99);
    const c = [...commits].sort((x, y) => x - y);
    console.log(`etcd's own commit of the toggles (put/delete until acknowledged, ${c.length}): p50 ${percentile(c, 50).toFixed(1)}, p90 ${percentile(c, 90).toFixed(1)}, p99 ${percentile(c, 99).toFixed(1)}, max ${(c[c.length - 1] ?? Number.NaN).toFixed(1)} ms (the watch event usually arrives before the acknowledgement)`);
    console.log(`target p99 < 50 ms on loopback: ${p99 < 50 ? 'met' : 'MISSED'} (${p99.toFixed(1)} ms); burst wall time ${burstResult.wallMs.toFixed(0)} ms`);
    console.log(`(steady-state window ${(STEADY_MS / 1000).toFixed(0)} s; the watch holds one stream per service and, at rest, checks its member with one read per 30 s of silence per endpoint (watchIdleMs), however many services; the pollers send one range read per tick)`);
  } finally {
    for (const v of views) await v.close();
    await resolver.close();
    await watchClient.close();
    await admin.close();
    await etcd.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run();
}
