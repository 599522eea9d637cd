/**
 * Propagation latency: from a registration change in the Consul agent to the
 * subscriber's event, side by side in one run, for
 *   - the blocking-query watch (ConsulResolver.watch),
 *   - a fixed-interval poller, confd-style (1 s, and 10 s with fewer samples),
 *   - the DNS SRV watch at its TTL floor (1 s; Consul sends TTL 0);
 * plus Consul requests per minute per watched service at steady state.
 *
 * Each change toggles one instance (register / deregister) through the HTTP
 * API; t0 is taken just before the PUT is sent (so figures include the PUT).
 * After every subscriber has seen a change, the next one waits a uniform
 * random delay over the slowest poll period, so changes fall at random
 * phases of the pollers' cycles. Every loop is bounded by count and time.
 *
 * Run: npm run bench -- bench/propagation.bench.ts
 * Knobs: PROPAGATION_CHANGES (100), PROPAGATION_SLOW_CHANGES (10), PROPAGATION_STEADY_MS (60000).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { ConsulHttpClient, ConsulResolver, DnsSrvResolver, DnsTransport, type ConsulRequest, type ConsulResponse, type DnsQueryType, type DnsAnswer } from '@proxyless/core';
import { consulBinary, startConsulAgent } from '../test/support/consul.js';
import { measure, percentile, pollingView, viewOfWatch, type View } from './support/propagation.js';
import { requireBuilt } from './support/builds.js';

const CHANGES = Number(process.env['PROPAGATION_CHANGES'] ?? 100);
const SLOW_CHANGES = Number(process.env['PROPAGATION_SLOW_CHANGES'] ?? 10);
const STEADY_MS = Number(process.env['PROPAGATION_STEADY_MS'] ?? 60_000);
const SERVICE = 'propagation';
const TOGGLED = 'propagation-x';

class CountingClient extends ConsulHttpClient {
  requests = 0;
  override async request(req: ConsulRequest): Promise<ConsulResponse> {
    if (req.path.startsWith('/v1/health/service/')) this.requests++;
    return super.request(req);
  }
}

class CountingTransport extends DnsTransport {
  queries = 0;
  override async query(name: string, type: DnsQueryType, options?: { signal?: AbortSignal }): Promise<DnsAnswer> {
    this.queries++;
    return super.query(name, type, options);
  }
}

/** confd-style: a plain GET every `intervalMs`; an event when the set differs from the last poll. */
function fixedIntervalPoller(name: string, address: string, intervalMs: number): View {
  const client = new CountingClient({ address }, {});
  return pollingView(
    name,
    intervalMs,
    async () => {
      const { body } = await client.request({ path: `/v1/health/service/${SERVICE}`, query: { passing: true } });
      return Array.isArray(body) && body.some((e: { Service?: { ID?: string } }) => e.Service?.ID === TOGGLED);
    },
    () => client.requests,
    () => client.close(),
  );
}

function version(pkg: string): string {
  try {
    return (JSON.parse(readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

export async function run(): Promise<void> {
  requireBuilt();
  const agent = await startConsulAgent();
  const admin = new ConsulHttpClient({ address: agent.httpAddr }, {});
  const register = (id: string, port: number): Promise<ConsulResponse> =>
    admin.request({
      method: 'PUT',
      path: '/v1/agent/service/register',
      body: { Name: SERVICE, ID: id, Address: '127.0.0.1', Port: port, Check: { CheckID: `chk-${id}`, Name: 'ttl', TTL: '600s', Status: 'passing' } },
    });
  const toggle = async (present: boolean): Promise<void> => {
    if (present) await register(TOGGLED, 9999);
    else await admin.request({ method: 'PUT', path: `/v1/agent/service/deregister/${TOGGLED}` });
  };
  const watchClient = new CountingClient({ address: agent.httpAddr }, {});
  const consul = new ConsulResolver({ client: watchClient }); // defaults: wait 60 s, stale, token bucket (20 polls back to back, then one per 20 ms)
  const transport = new CountingTransport({ servers: [`127.0.0.1:${agent.ports.dns}`] });
  const dns = new DnsSrvResolver({ transport, minTtlMs: 1000 });
  const views: View[] = [];
  const samples = new Map<string, number[]>();
  const missed = new Map<string, number>();
  try {
    await register('propagation-base', 9000);
    const consulWatch = consul.watch(SERVICE);
    const dnsWatch = dns.watch(SERVICE);
    const blocking = viewOfWatch('blocking-query watch', consulWatch, () => watchClient.requests);
    const dnsView = viewOfWatch('DNS SRV watch (TTL floor 1 s)', dnsWatch, () => transport.queries);
    const poll1 = fixedIntervalPoller('fixed-interval poll 1 s', agent.httpAddr, 1000);
    views.push(blocking, poll1, dnsView);
    await Promise.all([consulWatch.ready({ timeoutMs: 20_000 }), dnsWatch.ready({ timeoutMs: 20_000 })]);
    await new Promise((r) => setTimeout(r, 1200)); // the 1 s poller has its first answer too

    process.stderr.write(`propagation: ${CHANGES} changes (blocking, 1 s poll, DNS)\n`);
    await measure('fast', [blocking, poll1, dnsView], CHANGES, 1000, toggle, samples, missed);

    process.stderr.write(`propagation: ${SLOW_CHANGES} changes (10 s poll)\n`);
    const poll10 = fixedIntervalPoller('fixed-interval poll 10 s', agent.httpAddr, 10_000);
    views.push(poll10);
    await new Promise((r) => setTimeout(r, 500));
    await measure('slow', [poll10], SLOW_CHANGES, 10_000, toggle, samples, missed);

    // Steady state: no changes; count each subscriber's Consul requests for one window.
    process.stderr.write(`propagation: steady state for ${STEADY_MS} ms\n`);
    const before = views.map((v) => v.requests());
    const t = performance.now();
    await new Promise((r) => setTimeout(r, STEADY_MS));
    const elapsedMin = (performance.now() - t) / 60_000;
    const perMinute = views.map((v, i) => (v.requests() - before[i]!) / elapsedMin);

    const cpu = (() => {
      try {
        return /Model name:\s*(.+)/.exec(execFileSync('lscpu', { encoding: 'utf8' }))?.[1]?.trim() ?? cpus()[0]?.model;
      } catch {
        return cpus()[0]?.model;
      }
    })();
    console.log('\nPropagation latency: registration change in the agent → subscriber event (ms; t0 before the PUT)');
    console.log('command: npm run bench -- bench/propagation.bench.ts');
    console.log(`node ${process.version}, Consul ${consulBinary().version} (-dev, loopback), undici ${version('undici')}, dns-packet ${version('dns-packet')}`);
    console.log(`machine: ${cpu ?? 'unknown CPU'} × ${cpus().length}`);
    const header = ['subscriber', 'samples', 'missed', 'p50', 'p90', 'p99', 'max', 'Consul req/min at steady state'];
    const rows = views.map((v, i) => {
      const s = [...(samples.get(v.name) ?? [])].sort((a, b) => a - b);
      return [v.name, String(s.length), String(missed.get(v.name) ?? 0), percentile(s, 50).toFixed(1), percentile(s, 90).toFixed(1), percentile(s, 99).toFixed(1), (s[s.length - 1] ?? Number.NaN).toFixed(1), perMinute[i]!.toFixed(1)];
    });
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (row: string[]): string => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    console.log(line(header));
    for (const row of rows) console.log(line(row));
    console.log(`(steady-state window ${(STEADY_MS / 1000).toFixed(0)} s; the blocking watch waits 60 s per query, the DNS watch counts DNS queries, the pollers HTTP GETs)`);
  } finally {
    for (const v of views) await v.close();
    await consul.close();
    await dns.close();
    await transport.close();
    await watchClient.close();
    await admin.close();
    await agent.stop();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run();
}
