/**
 * The undici Dispatcher path vs client.request() vs a raw undici Pool, and
 * tracing on (a registered no-op tracer provider) vs off — side by side in one
 * run, same trivial nginx backends, same concurrency (the harness of
 * http-client.bench.ts: interleaved runs, medians and [min–max]).
 *
 * Run: npm run bench -- bench/dispatcher.bench.ts
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Pool, request } from 'undici';
import { INVALID_SPAN_CONTEXT, trace, type Tracer, type TracerProvider } from '@opentelemetry/api';
import { StaticResolver } from '@proxyless/core';
import { createClient, createDispatcher, telemetryReady } from '@proxyless/http-client';
import { compare, med, targetVerdict, CONCURRENCY, RUNS, RUN_MS, MAX_REQUESTS, type Call, type Metric } from './http-client.bench.js';
import { freePorts, nginxVersion, startNginx, stop } from './support/processes.js';
import { requireBuilt } from './support/builds.js';

/** A tracer that records nothing (what the API's own no-op tracer does): the cost of tracing before any exporter. */
const noopTracer: Tracer = {
  startSpan: () => trace.wrapSpanContext(INVALID_SPAN_CONTEXT),
  startActiveSpan: (() => {
    throw new Error('not used');
  }),
};
const noop: TracerProvider = { getTracer: () => noopTracer };

let tracing = false;
/** Registers (or removes) the no-op tracer provider; called per request, so both sides pay the same check. */
function setTracing(on: boolean): void {
  if (on === tracing) return;
  tracing = on;
  if (on) trace.setGlobalTracerProvider(noop);
  else trace.disable();
}

export async function run(): Promise<void> {
  requireBuilt();
  const version = (p: string): string =>
    (JSON.parse(readFileSync(new URL(`../node_modules/${p}/package.json`, import.meta.url), 'utf8')) as { version: string }).version;
  process.stdout.write(
    `# dispatcher and tracing bench\ncommand: ${process.argv.map((a) => a.replace(/^.*node_modules\//, '')).join(' ')}\n` +
      `node ${process.version}, undici ${version('undici')}, @opentelemetry/api ${version('@opentelemetry/api')}, nginx ${nginxVersion() ?? 'absent'}\n` +
      `concurrency ${CONCURRENCY}, ${RUNS} interleaved runs × ${RUN_MS} ms (≤ ${MAX_REQUESTS} requests) per config; median [min–max]\n`,
  );
  if (!nginxVersion()) throw new Error('nginx is required (apt-get install -y nginx)');
  if (!(await telemetryReady())) throw new Error('@opentelemetry/api is required (a dev dependency)');
  const [t1, t2, t3, proxyPort] = (await freePorts(4)) as [number, number, number, number];
  const nginx = await startNginx([t1, t2, t3], proxyPort, [t1]); // the proxy server block is unused here
  const resolver = new StaticResolver({ services: { svc: [t1, t2, t3].map((port) => ({ address: '127.0.0.1', port })) } });
  const raw = new Pool(`http://127.0.0.1:${t1}`);
  const client = createClient({ service: 'svc', resolver, logger: false });
  const traced = createClient({ service: 'svc', resolver, logger: false });
  const dispatcher = createDispatcher({ resolver, client: { logger: false } });
  try {
    const poolCall: Call = async () => {
      const { body } = await raw.request({ path: '/', method: 'GET' });
      await body.dump();
    };
    // undici's top-level request(url) on the raw Pool: what that call form costs without Proxyless.
    const poolUrlCall: Call = async () => {
      const { body } = await request(`http://127.0.0.1:${t1}/`, { dispatcher: raw });
      await body.dump();
    };
    const poolFetchCall: Call = async () => {
      const res = await fetch(`http://127.0.0.1:${t1}/`, { dispatcher: raw } as unknown as RequestInit);
      await res.arrayBuffer();
    };
    const dispatcherFetchCall: Call = async () => {
      const res = await fetch('http://svc.service.consul/', { dispatcher } as unknown as RequestInit);
      await res.arrayBuffer();
    };
    const clientCall: Call = async () => {
      const { body } = await client.request({ path: '/', method: 'GET' });
      await body.dump();
    };
    const dispatcherCall: Call = async () => {
      const { body } = await request('http://svc.service.consul/', { dispatcher });
      await body.dump();
    };
    // The same path without undici's top-level request(url), which parses the URL and copies the options on every call.
    const dispatcherOwnCall: Call = async () => {
      const { body } = await dispatcher.request({ origin: 'http://svc.service.consul', path: '/', method: 'GET' });
      await body.dump();
    };
    const tracedCall: Call = async () => {
      const { body } = await traced.request({ path: '/', method: 'GET' });
      await body.dump();
    };
    const off = (call: Call): Call => () => {
      setTracing(false);
      return call();
    };
    const withProvider = (call: Call): Call => () => {
      setTracing(true);
      return call();
    };
    const results = await compare(
      'Dispatcher path vs client.request() vs raw undici Pool — 3 trivial nginx backends',
      [
        { name: 'raw undici Pool → 1 backend', call: off(poolCall) },
        { name: 'raw Pool via undici.request(url)', call: off(poolUrlCall) },
        { name: 'raw Pool via fetch()', call: off(poolFetchCall) },
        { name: 'client.request() ×3', call: off(clientCall) },
        { name: 'undici.request() via createDispatcher ×3', call: off(dispatcherCall) },
        { name: 'dispatcher.request({ origin, path }) ×3', call: off(dispatcherOwnCall) },
        { name: 'fetch() via createDispatcher ×3', call: off(dispatcherFetchCall) },
        { name: 'client.request() ×3, tracing on (no-op tracer)', call: withProvider(tracedCall) },
      ],
      'client.request() ×3',
    );
    setTracing(false);
    const m = (n: string, k: Metric): number => med(results.get(n), k);
    const c = 'client.request() ×3';
    const d = 'undici.request() via createDispatcher ×3';
    const o = 'dispatcher.request({ origin, path }) ×3';
    const t = 'client.request() ×3, tracing on (no-op tracer)';
    const p = 'raw undici Pool → 1 backend';
    const pu = 'raw Pool via undici.request(url)';
    const pf = 'raw Pool via fetch()';
    const f = 'fetch() via createDispatcher ×3';
    const ratio = (a: string, b: string, k: 'rps' | 'cpuUsPerReq'): string => (m(a, k) / m(b, k)).toFixed(2);
    // Each call form costs undici something before any dispatcher sees it: compare each form with itself on the raw Pool.
    const forms = [
      `- undici.request(url) on the raw Pool: ${ratio(pu, p, 'rps')}× pool.request()'s throughput, ${ratio(pu, p, 'cpuUsPerReq')}× its CPU/req; ` +
        `via createDispatcher: ${ratio(d, pu, 'rps')}× the raw Pool's throughput in the same form`,
      `- fetch() on the raw Pool: ${ratio(pf, p, 'rps')}× pool.request()'s throughput; via createDispatcher: ${ratio(f, pf, 'rps')}× the raw Pool's throughput in the same form, ${ratio(f, c, 'rps')}× client.request()`,
    ];
    const lines = [
      targetVerdict('dispatcher throughput ≥ 0.95× client.request()', m, d, c, 'rps', '≥', (x) => 0.95 * x),
      targetVerdict('dispatcher.request() throughput ≥ 0.95× client.request()', m, o, c, 'rps', '≥', (x) => 0.95 * x),
      targetVerdict('tracing on (no-op tracer) CPU/req ≤ 1.02× off', m, t, c, 'cpuUsPerReq', '≤', (x) => 1.02 * x, 3),
    ];
    process.stdout.write(`\n### Targets\n${lines.join('\n')}\n\n### Cost of the call form itself\n${forms.join('\n')}\n`);
  } finally {
    setTracing(false);
    await dispatcher.close();
    await client.close();
    await traced.close();
    await raw.close();
    await resolver.close();
    await stop(nginx.child);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
