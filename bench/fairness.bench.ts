/**
 * Fairness at low concurrency (issue 22): one request at a time (a script, a
 * cron job, a gateway under light traffic) over 2 and over 5 healthy
 * endpoints for SECONDS, per balancer: each endpoint's share of the requests
 * ÷ its fair share (1/2, 1/5). Target: every endpoint ≥ 1/3 of its fair share.
 *
 * The endpoints are testbed backends (testbed-backend.ts, reporting through
 * `@proxyless/load-report`) that are healthy but not identical, as a real
 * set is: service time 2 ms + 0.5 ms per index + exponential(0.5 ms), and a
 * first request 20 ms slower (a cold start; the starvation issue 22 measured
 * began with one cold first answer). The 2- and 5-endpoint sets run at the
 * same time on disjoint backends, each with a client of its own, one request
 * at a time each; the balancers one after another, a fresh client each.
 *
 * Run (after `npm run build`; ~6 × SECONDS):
 *   flock -x /tmp/proxyless-heavy.lock npm run bench -- bench/fairness.bench.ts
 * Knobs: BENCH_SECONDS=60 (FAIRNESS_SECONDS overrides it for this bench
 * alone), BENCH_BALANCERS='peak EWMA,client default'.
 */
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { loadBuild, describeCheckout, THIS_TREE, type Build } from './support/builds.js';
import { selectBalancers, type BalancerChoice } from './support/balancers.js';
import { freePorts } from './support/processes.js';
import { startTestbed, type TestbedBackend } from './support/testbed.js';

const SECONDS = Number(process.env['FAIRNESS_SECONDS'] ?? process.env['BENCH_SECONDS'] ?? 60);
const SETS = [2, 5];
const MAX_REQUESTS = 1_000_000;

interface SetResult {
  endpoints: number;
  requests: number;
  errors: number;
  /** Share ÷ fair share per endpoint, in the set's order. */
  ratios: number[];
}

/** One request at a time over `backends` for `ms` with a fresh client: requests per endpoint. */
async function oneAtATime(build: Build, backends: TestbedBackend[], choice: BalancerChoice, ms: number): Promise<SetResult> {
  const ports = backends.map((b) => b.spec.port);
  const resolver = new build.core.StaticResolver({ services: { svc: ports.map((port) => ({ address: '127.0.0.1', port })) } });
  const balancer = choice.make();
  const client = build.http.createClient({ service: 'svc', resolver, timeoutMs: 2_000, logger: false, ...(balancer !== undefined ? { balancer } : {}) });
  const counts = new Map<string, number>(ports.map((p) => [`127.0.0.1:${p}`, 0]));
  let requests = 0;
  let errors = 0;
  const stopAt = performance.now() + ms;
  try {
    while (performance.now() < stopAt && requests < MAX_REQUESTS) {
      requests++;
      try {
        const res = await client.request('/');
        await res.body.dump();
        if (res.statusCode !== 200) errors++;
        counts.set(res.endpoint.label, (counts.get(res.endpoint.label) ?? 0) + 1);
      } catch {
        errors++;
      }
    }
  } finally {
    await client.destroy();
    await resolver.close();
  }
  const served = [...counts.values()].reduce((s, n) => s + n, 0);
  return { endpoints: ports.length, requests, errors, ratios: [...counts.values()].map((n) => (n / Math.max(1, served)) * ports.length) };
}

export async function run(): Promise<void> {
  const build = await loadBuild(THIS_TREE);
  console.log('# fairness at one request at a time (npm run bench -- bench/fairness.bench.ts)');
  console.log(`FAIRNESS_SECONDS=${SECONDS}; ${describeCheckout(THIS_TREE)}; ${build.versions}; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const choices = selectBalancers(build, process.env['BENCH_BALANCERS']);
  const total = SETS.reduce((s, n) => s + n, 0);
  const ports = await freePorts(total);
  const backends = await startTestbed(
    ports.map((port, i) => {
      const index = i < SETS[0]! ? i : i - SETS[0]!;
      return { port, slots: 8, baseMs: 2 + 0.5 * index, expMs: 0.5, queueMax: 64, sampleMs: 1_000, firstExtraMs: 20 };
    }),
  );
  const sets = [backends.slice(0, SETS[0]), backends.slice(SETS[0])];
  const rows: { name: string; results: SetResult[] }[] = [];
  try {
    for (const choice of choices) {
      // Both sets at once, disjoint backends: one request at a time each.
      rows.push({ name: choice.name, results: await Promise.all(sets.map((set) => oneAtATime(build, set, choice, SECONDS * 1000))) });
    }
  } finally {
    await Promise.all(backends.map((b) => b.stop()));
  }
  console.log(`load average at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
  console.log(`| balancer | endpoints | requests | errors | share ÷ fair share, per endpoint (fastest first) | min | ≥ 1/3 |`);
  console.log('|---|---|---|---|---|---|---|');
  for (const row of rows) {
    for (const r of row.results) {
      const min = Math.min(...r.ratios);
      console.log(
        `| ${row.name} | ${r.endpoints} | ${r.requests} | ${r.errors} | ${r.ratios.map((x) => x.toFixed(2)).join(' / ')} | ${min.toFixed(2)} | ${min >= 1 / 3 ? 'yes' : '**no**'} |`,
      );
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
