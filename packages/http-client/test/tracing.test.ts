import assert from 'node:assert/strict';
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createClient, telemetryReady, type ProxylessClient } from '@proxyless/http-client';
import { FakeResolver, instance, startServer, type TestServer } from './helpers.js';

describe('http-client: OpenTelemetry (spans, events, propagation, metrics)', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  let servers: TestServer[] = [];
  let client: ProxylessClient | undefined;
  const traceparents: string[] = [];

  before(async () => {
    assert.equal(await telemetryReady(), true, '@opentelemetry/api is installed (dev dependency)');
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(provider);
    metrics.setGlobalMeterProvider(meterProvider);
  });
  after(async () => {
    trace.disable();
    metrics.disable();
    propagation.disable();
    context.disable();
    await provider.shutdown();
    await meterProvider.shutdown();
  });
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
    exporter.reset();
    traceparents.length = 0;
  });

  it('makes a span per request and one per attempt, with resend count, server, service, endpoint and why it was picked; propagates the trace context', async () => {
    const failing = await startServer((req, res) => {
      traceparents.push(String(req.headers.traceparent));
      res.writeHead(503).end();
    });
    const good = await startServer((req, res) => {
      traceparents.push(String(req.headers.traceparent));
      res.end('ok');
    });
    servers = [failing, good];
    const resolver = new FakeResolver();
    resolver.set([instance(failing.port), instance(good.port)]);
    client = createClient({ service: 'users', resolver, retry: { maxRetries: 3, initialMs: 0 }, outlierDetection: false, breaker: false, logger: false });
    const parent = trace.getTracer('test').startSpan('caller');
    // Until a request meets the 503 endpoint first: then it has two attempts.
    let attempts = 0;
    for (let i = 0; i < 50 && attempts < 2; i++) {
      exporter.reset();
      traceparents.length = 0;
      const res = await context.with(trace.setSpan(context.active(), parent), () => client!.request('/users/42'));
      await res.body.dump();
      attempts = res.attempts;
    }
    parent.end();
    assert.equal(attempts, 2, 'a request was retried');
    const spans = exporter.getFinishedSpans();
    const logical = spans.find((s) => s.name === 'GET users');
    assert.ok(logical, `spans: ${spans.map((s) => s.name).join(', ')}`);
    assert.equal(logical.parentSpanContext?.spanId, parent.spanContext().spanId, 'the request span is a child of the caller');
    const tries: ReadableSpan[] = spans.filter((s) => s.parentSpanContext?.spanId === logical.spanContext().spanId);
    assert.equal(tries.length, 2);
    const [first, second] = tries.sort((a, b) => Number(a.attributes['http.request.resend_count'] ?? 0) - Number(b.attributes['http.request.resend_count'] ?? 0));
    assert.equal(first!.attributes['http.request.resend_count'], undefined);
    assert.equal(second!.attributes['http.request.resend_count'], 1);
    assert.equal(first!.attributes['server.port'], failing.port);
    assert.equal(first!.attributes['server.address'], '127.0.0.1');
    assert.equal(first!.attributes['http.response.status_code'], 503);
    assert.equal(second!.attributes['server.port'], good.port);
    assert.equal(second!.attributes['proxyless.service'], 'users');
    assert.equal(second!.attributes['proxyless.endpoint'], `127.0.0.1:${good.port}`);
    assert.equal(first!.attributes['proxyless.pick.strategy'], 'prequal-when-reported');
    const candidates = first!.attributes['proxyless.pick.candidates'] as string[];
    const scores = first!.attributes['proxyless.pick.scores'] as number[];
    assert.equal(candidates.length, 2);
    assert.equal(scores.length, 2);
    assert.ok(candidates.includes(`127.0.0.1:${failing.port}`));
    assert.ok(logical.events.some((e) => e.name === 'proxyless.retry'));
    assert.equal(logical.attributes['proxyless.attempts'], 2);
    // Each attempt's own span context went to the backend.
    assert.equal(traceparents.length, 2);
    for (const [i, t] of tries.entries()) {
      assert.ok(traceparents.includes(`00-${t.spanContext().traceId}-${t.spanContext().spanId}-01`), `attempt ${i} traceparent`);
    }
  });

  it('records breaker transitions, ejections and retry-budget refusals as span events', async () => {
    const failing = await startServer((_req, res) => res.writeHead(500).end());
    servers = [failing];
    const resolver = new FakeResolver();
    resolver.set([instance(failing.port)]);
    const events = (): string[] => exporter.getFinishedSpans().flatMap((s) => s.events.map((e) => e.name));
    const withBreaker = createClient({ service: 'users', resolver, outlierDetection: false, breaker: { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeoutMs: 60_000 }, retry: false, logger: false });
    for (let i = 0; i < 2; i++) await withBreaker.request('/').then((r) => r.body.dump(), () => undefined);
    await withBreaker.close();
    assert.ok(events().includes('proxyless.breaker.open'), events().join(', '));
    exporter.reset();
    client = createClient({
      service: 'users',
      resolver,
      breaker: false,
      outlierDetection: { consecutiveFailures: 1 },
      failureStatuses: [500],
      retry: { maxRetries: 2, initialMs: 0, retryOnStatuses: [500], budget: { ratio: 0, minRetriesPerSecond: 0 } },
      logger: false,
    });
    const res = await client.request('/');
    await res.body.dump();
    assert.equal(res.statusCode, 500);
    assert.ok(events().includes('proxyless.eject'), events().join(', '));
    assert.ok(events().includes('proxyless.retry_budget.refused'), events().join(', '));
  });

  it('reports request duration and attempts through the OTel metrics API', async () => {
    servers = [await startServer((_req, res) => res.end('ok'))];
    const resolver = new FakeResolver();
    resolver.set([instance(servers[0]!.port)]);
    client = createClient({ service: 'users', resolver, logger: false });
    for (let i = 0; i < 5; i++) await (await client.request('/')).body.dump();
    await reader.forceFlush();
    const names = metricExporter.getMetrics().flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics.map((m) => m.descriptor.name)));
    assert.ok(names.includes('http.client.request.duration'), names.join(', '));
    assert.ok(names.includes('proxyless.client.attempts'), names.join(', '));
  });

  it('observes what each server reports about its load as gauges, read live at each collection', async () => {
    servers = [
      await startServer((_req, res) => {
        res.setHeader('endpoint-load-metrics', 'TEXT application_utilization=0.75, rps_fractional=120, eps=3, named_metrics.rif=4');
        res.end('ok');
      }),
      await startServer((_req, res) => res.end('silent')),
    ];
    const resolver = new FakeResolver();
    resolver.set(servers.map((s) => instance(s.port)));
    client = createClient({ service: 'users', resolver, logger: false });
    for (let i = 0; i < 4; i++) await (await client.request('/')).body.dump();
    const points = async (): Promise<Map<string, { value: number; endpoint: unknown; usable: unknown }[]>> => {
      metricExporter.reset();
      await reader.forceFlush();
      const out = new Map<string, { value: number; endpoint: unknown; usable: unknown }[]>();
      for (const rm of metricExporter.getMetrics()) {
        for (const sm of rm.scopeMetrics) {
          for (const m of sm.metrics) {
            if (!m.descriptor.name.startsWith('proxyless.client.endpoint.')) continue;
            out.set(m.descriptor.name, m.dataPoints.map((p) => ({ value: p.value as number, endpoint: p.attributes['proxyless.endpoint'], usable: p.attributes['proxyless.load_report.usable'] })));
          }
        }
      }
      return out;
    };
    const seen = await points();
    const label = `127.0.0.1:${servers[0]!.port}`;
    assert.deepEqual(seen.get('proxyless.client.endpoint.reported_utilization'), [{ value: 0.75, endpoint: label, usable: false }], 'one point: the silent endpoint has none');
    assert.deepEqual(seen.get('proxyless.client.endpoint.reported_rps')?.map((p) => p.value), [120]);
    assert.deepEqual(seen.get('proxyless.client.endpoint.reported_eps')?.map((p) => p.value), [3]);
    assert.deepEqual(seen.get('proxyless.client.endpoint.reported_requests_in_flight')?.map((p) => p.value), [4]);
    const age = seen.get('proxyless.client.endpoint.load_report_age')?.[0]?.value;
    assert.ok(age !== undefined && age >= 0 && age < 10, `age ${age} s`);
    await new Promise((resolve) => setTimeout(resolve, 30));
    const later = (await points()).get('proxyless.client.endpoint.load_report_age')?.[0]?.value;
    assert.ok(later !== undefined && later > age, 'read live at each collection');
  });

  it('costs nothing and changes nothing with no provider registered', async () => {
    trace.disable();
    metrics.disable();
    try {
      servers = [await startServer((req, res) => res.end(String(req.headers.traceparent)))];
      const resolver = new FakeResolver();
      resolver.set([instance(servers[0]!.port)]);
      client = createClient({ service: 'users', resolver, logger: false });
      const res = await client.text('/');
      assert.equal(res.body, 'undefined');
      assert.equal(exporter.getFinishedSpans().length, 0);
    } finally {
      trace.setGlobalTracerProvider(provider);
      metrics.setGlobalMeterProvider(meterProvider);
    }
  });
});
