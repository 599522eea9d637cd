/**
 * Profiling helper (not part of `npm run bench`): drives the proxyless client
 * or a raw Pool against trivial nginx backends for a few seconds, so it can be
 * run under `node --cpu-prof`.
 * Usage: npm run build && node --cpu-prof --import tsx bench/support/profile-client.ts [client|raw|dispatcher|traced] [ms]
 * (the built packages: through the sources, tsx's keepNames wrappers add ~3.5 µs per request)
 * (`traced`: client.request() with a no-op OpenTelemetry tracer provider registered.)
 */
import { Pool, request } from 'undici';
import { INVALID_SPAN_CONTEXT, trace, type Tracer } from '@opentelemetry/api';
import { StaticResolver } from '@proxyless/core';
import { createClient, createDispatcher, telemetryReady } from '@proxyless/http-client';
import { freePorts, startNginx, stop } from './processes.js';
import { requireBuilt } from './builds.js';

requireBuilt();

const mode = process.argv[2] ?? 'client';
const ms = Number(process.argv[3] ?? 4000);
const [a, b, c, p] = (await freePorts(4)) as [number, number, number, number];
const nginx = await startNginx([a, b, c], p, [a]);
const resolver = new StaticResolver({ services: { svc: [a, b, c].map((port) => ({ address: '127.0.0.1', port })) } });
if (mode === 'traced') {
  const noopTracer: Tracer = { startSpan: () => trace.wrapSpanContext(INVALID_SPAN_CONTEXT), startActiveSpan: () => { throw new Error('not used'); } };
  trace.setGlobalTracerProvider({ getTracer: () => noopTracer });
  await telemetryReady();
}
const client = createClient({ service: 'svc', resolver, logger: false });
const dispatcher = createDispatcher({ resolver, client: { logger: false } });
const pool = new Pool(`http://127.0.0.1:${a}`);
const call = mode === 'raw'
  ? async () => { const { body } = await pool.request({ path: '/', method: 'GET' }); await body.dump(); }
  : mode === 'dispatcher'
    ? async () => { const { body } = await request('http://svc.service.consul/', { dispatcher }); await body.dump(); }
    : async () => { const { body } = await client.request({ path: '/', method: 'GET' }); await body.dump(); };
let n = 0;
const end = performance.now() + ms;
const cpu0 = process.cpuUsage();
await Promise.all(Array.from({ length: 64 }, async () => {
  while (performance.now() < end) {
    await call();
    n++;
  }
}));
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`${mode}: ${n} requests, ${(n / ms * 1000).toFixed(0)} req/s, ${((cpu.user + cpu.system) / n).toFixed(1)} µs/req\n`);
await client.close();
await dispatcher.close();
await pool.close();
await stop(nginx.child);
