/**
 * OpenTelemetry for the client, through the optional peer `@opentelemetry/api`
 * only: a span per logical request and one per attempt, events for
 * retries, ejections, breaker transitions and retry-budget refusals, trace
 * context injected into each attempt's headers, and metrics through the OTel
 * metrics API.
 *
 * Nil cost without a tracer: the API is loaded once (if installed), and each
 * request checks whether a tracer provider is registered (one property read)
 * before doing anything else.
 * @internal
 * @module
 */
import type { Endpoint } from '../endpoints/endpoint.js';
import type { TransitionListener } from '../endpoints/endpoint-set.js';
import { healthEvent, type HealthEvent, type HealthState, type HealthTransition } from '../endpoints/health.js';
import type { IncomingHttpHeaders } from 'node:http';
import { loadReportMetricNames } from '@proxyless/core';
import type { EndpointLoadReport } from '../shared/load-report-types.js';
import {
  otelApi,
  type OtelApi,
  type OtelAttributes,
  type OtelBatchObservableCallback,
  type OtelContext,
  type OtelCounter,
  type OtelHistogram,
  type OtelObservable,
  type OtelSpan,
  type OtelTracer,
} from './otel-api.js';

/** The API's global registry (`@opentelemetry/api` keeps its providers here, keyed by major version). */
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1');
const SCOPE = '@proxyless/http-client';

interface OtelGlobal {
  trace?: unknown;
  metrics?: unknown;
}

function registered(): OtelGlobal | undefined {
  return (globalThis as Record<symbol, OtelGlobal | undefined>)[OTEL_GLOBAL];
}

type Headers = Record<string, string | string[] | undefined>;

/** Request headers as an object (undici also takes flat arrays and iterables of pairs). @internal */
export function headerObject(headers: unknown): Headers {
  if (headers === undefined || headers === null) return {};
  if (Array.isArray(headers)) {
    const out: Headers = {};
    if (headers.length > 0 && Array.isArray(headers[0])) for (const [k, v] of headers as [string, string][]) out[k.toLowerCase()] = v;
    else for (let i = 0; i + 1 < headers.length; i += 2) out[String(headers[i]).toLowerCase()] = String(headers[i + 1]);
    return out;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    const out: Headers = {};
    for (const [k, v] of headers as Iterable<[string, string]>) out[k.toLowerCase()] = v;
    return out;
  }
  return { ...(headers as Headers) };
}

/** The client's metric instruments. */
interface Instruments {
  duration: OtelHistogram;
  attempts: OtelCounter;
  retries: OtelCounter;
  events: OtelCounter;
}

/** What a trace reads of a request (the request loop's `RequestOptions` has these): declared here so tracing does not import the request layer above it. */
export interface TracedRequest {
  method?: string;
  path: string;
}

/** Request headers as a trace sees them. */
export type TracedHeaders = IncomingHttpHeaders | Record<string, string | string[] | undefined>;

/** The span and metric event name of each health transition's public event. */
const SPAN_EVENT: Record<HealthEvent, string> = {
  breakerOpen: 'proxyless.breaker.open',
  breakerHalfOpen: 'proxyless.breaker.half_open',
  breakerClose: 'proxyless.breaker.close',
  eject: 'proxyless.eject',
  restore: 'proxyless.restore',
};

/** Where the client's health transitions are reported (the endpoint set). */
export interface TransitionSource {
  onTransition(listener: TransitionListener): void;
}

/**
 * What the client's telemetry keeps per client (tracer, meter instruments).
 * It subscribes to the endpoint set's transition reports for the event
 * counter; an attempt's own transition (the one its outcome caused) comes
 * back from `done()` and is handed to {@link RequestTrace.attemptEnd}, which
 * puts it on that attempt's span — no "current span" slot.
 */
export class ClientTelemetry {
  readonly #service: string;
  readonly #reports: LoadReportSource | undefined;
  #tracer: OtelTracer | undefined;
  #instruments: Instruments | undefined;
  /** The reported-load gauges and their callback, while registered with the meter. */
  #gauges: { readonly observables: OtelObservable[]; readonly callback: OtelBatchObservableCallback } | undefined;
  #closed = false;

  /** @param reports - each endpoint's last load report, observed as gauges at each metric collection. */
  constructor(service: string, transitions: TransitionSource, reports?: LoadReportSource) {
    this.#service = service;
    this.#reports = reports;
    transitions.onTransition((ep: Endpoint, from: HealthState, to: HealthState) => {
      const event = healthEvent(from, to);
      // Restores are counted per endpoint (they come from the set's timer, never from an attempt).
      if (event !== undefined) this.#count(SPAN_EVENT[event], event === 'restore' ? ep.info.label : undefined);
    });
  }

  #count(event: string, endpoint?: string): void {
    if (registered()?.metrics === undefined) return;
    const i = this.#meter();
    i?.events.add(1, endpoint === undefined ? { 'proxyless.service': this.#service, 'proxyless.event': event } : { 'proxyless.service': this.#service, 'proxyless.event': event, 'proxyless.endpoint': endpoint });
  }

  #meter(): Instruments | undefined {
    const api = otelApi();
    if (this.#instruments !== undefined || api === undefined) return this.#instruments;
    const meter = api.metrics.getMeter(SCOPE);
    this.#instruments = {
      duration: meter.createHistogram('http.client.request.duration', { unit: 's', description: 'Duration of HTTP client requests (each attempt).' }),
      attempts: meter.createCounter('proxyless.client.attempts', { description: 'Attempts sent, by outcome.' }),
      retries: meter.createCounter('proxyless.client.retries', { description: 'Retries, by the failure that caused them.' }),
      events: meter.createCounter('proxyless.client.events', { description: 'Endpoint state changes: ejections, restores, breaker transitions.' }),
    };
    if (this.#reports !== undefined && !this.#closed) this.#observeReports(meter, this.#reports);
    return this.#instruments;
  }

  /** Gauges of what each server last reported about its load (ORCA), read at each collection; no point for an endpoint that does not report. */
  #observeReports(meter: ReturnType<OtelApi['metrics']['getMeter']>, reports: LoadReportSource): void {
    const gauge = (name: string, unit: string, description: string): OtelObservable => meter.createObservableGauge(name, { unit, description });
    const utilization = gauge('proxyless.client.endpoint.reported_utilization', '1', 'Utilisation the endpoint last reported (application_utilization when > 0, else cpu_utilization).');
    const rps = gauge('proxyless.client.endpoint.reported_rps', '{request}/s', 'Requests per second the endpoint last reported (rps_fractional).');
    const eps = gauge('proxyless.client.endpoint.reported_eps', '{error}/s', 'Errors per second the endpoint last reported (eps).');
    const rif = gauge('proxyless.client.endpoint.reported_requests_in_flight', '{request}', 'Requests in flight the endpoint last reported (named metric rif).');
    const age = gauge('proxyless.client.endpoint.load_report_age', 's', "Age of the endpoint's last load report.");
    const service = this.#service;
    const callback: OtelBatchObservableCallback = (result) => {
      for (const { label, loadReport: r } of reports()) {
        if (r === undefined) continue;
        const attributes = { 'proxyless.service': service, 'proxyless.endpoint': label, 'proxyless.load_report.usable': r.usable };
        if (r.utilization !== undefined) result.observe(utilization, r.utilization, attributes);
        if (r.rps !== undefined) result.observe(rps, r.rps, attributes);
        if (r.eps !== undefined) result.observe(eps, r.eps, attributes);
        const inFlight = r.report.named_metrics?.[loadReportMetricNames.requestsInFlight];
        if (inFlight !== undefined) result.observe(rif, inFlight, attributes);
        result.observe(age, r.ageMs / 1000, attributes);
      }
    };
    const observables = [utilization, rps, eps, rif, age];
    meter.addBatchObservableCallback(callback, observables);
    this.#gauges = { observables, callback };
  }

  /** The client closed: its gauges stop reporting (the meter keeps no reference to it). */
  close(): void {
    this.#closed = true;
    const g = this.#gauges;
    if (g === undefined) return;
    this.#gauges = undefined;
    otelApi()?.metrics.getMeter(SCOPE).removeBatchObservableCallback(g.callback, g.observables);
  }

  /** Starts the trace of one request, or returns undefined (nil cost) when no tracer or meter provider is registered. */
  start(req: TracedRequest): RequestTrace | undefined {
    const g = registered();
    const api = otelApi();
    if (g === undefined || api === undefined || (g.trace === undefined && g.metrics === undefined)) return undefined;
    const tracer = g.trace === undefined ? undefined : (this.#tracer ??= api.trace.getTracer(SCOPE));
    const meter = g.metrics === undefined ? undefined : this.#meter();
    const trace = new RequestTrace(api, tracer, meter, req, this.#service);
    // A no-op tracer (nothing recorded, nothing to propagate) and no meter: drop the trace now, so the attempts pay nothing.
    return meter === undefined && !trace.live ? undefined : trace;
  }
}

/** Each endpoint's label and last load report (the client's stats), for the reported-load gauges. @internal */
export type LoadReportSource = () => Iterable<{ readonly label: string; readonly loadReport: EndpointLoadReport | undefined }>;

/** Why an attempt was sent where it was: for span attributes. @internal */
export interface PickFacts {
  strategy: string;
  candidates: readonly Endpoint[];
  score: ((e: Endpoint) => number) | undefined;
}

/** The trace of one logical request: its span, its attempts' spans, and its metrics. @internal */
export class RequestTrace {
  readonly #api: OtelApi;
  readonly #meter: Instruments | undefined;
  readonly #method: string;
  readonly #service: string;
  readonly #tracer: OtelTracer | undefined;
  readonly #span: OtelSpan | undefined;
  readonly #parent: OtelContext;
  #context: OtelContext | undefined;

  constructor(
    otel: OtelApi,
    tracer: OtelTracer | undefined,
    meter: Instruments | undefined,
    req: TracedRequest,
    service: string,
  ) {
    this.#api = otel;
    this.#meter = meter;
    this.#method = req.method ?? 'GET';
    this.#service = service;
    this.#tracer = tracer;
    const parent = otel.context.active();
    this.#span = tracer?.startSpan(
      `${this.#method} ${service}`,
      { kind: otel.SpanKind.INTERNAL, attributes: { 'http.request.method': this.#method, 'proxyless.service': service, 'url.path': req.path } },
      parent,
    );
    this.#parent = parent;
  }

  /** The context of the request span (made on first use: a dropped no-op trace never needs it). */
  #ctx(): OtelContext {
    return (this.#context ??= this.#span === undefined ? this.#parent : this.#api.trace.setSpan(this.#parent, this.#span));
  }

  /** Whether the request span records or carries a context worth propagating (a sampled-out span still propagates). */
  get live(): boolean {
    const span = this.#span;
    return span !== undefined && (span.isRecording() || this.#api.trace.isSpanContextValid(span.spanContext()));
  }

  /**
   * Starts one attempt's span; returns it with the headers to send (trace context injected).
   * @param hedgeCopy - for a copy of a hedged request: 0 for the first copy, 1 for the first hedge…
   */
  attempt(ep: Endpoint, attempt: number, pick: PickFacts | undefined, headers: TracedHeaders | undefined, hedgeCopy?: number): AttemptTrace {
    const otel = this.#api;
    const attributes: OtelAttributes = {
      'http.request.method': this.#method,
      'server.address': ep.info.address,
      'server.port': ep.info.port,
      'proxyless.service': this.#service,
      'proxyless.endpoint': ep.info.label,
    };
    if (attempt > 1) attributes['http.request.resend_count'] = attempt - 1;
    if (hedgeCopy !== undefined) {
      attributes['proxyless.hedge.copy'] = hedgeCopy;
      attributes['proxyless.hedge'] = hedgeCopy > 0;
    }
    if (pick !== undefined) {
      attributes['proxyless.pick.strategy'] = pick.strategy;
      attributes['proxyless.pick.candidates'] = pick.candidates.map((c) => c.info.label);
      const score = pick.score;
      if (score !== undefined) attributes['proxyless.pick.scores'] = pick.candidates.map((c) => score(c));
    }
    const span = this.#tracer?.startSpan(this.#method, { kind: otel.SpanKind.CLIENT, attributes }, this.#ctx());
    const out = headerObject(headers);
    if (span !== undefined) otel.propagation.inject(otel.trace.setSpan(this.#ctx(), span), out);
    return { span, headers: out, startedAt: performance.now(), ep };
  }

  /**
   * Ends an attempt: status or failure on its span, the health transition its outcome caused (as a span event), and the duration metric.
   * @param hedge - for a copy of a hedged request: `won` (its answer was kept) or `lost` (cancelled because another copy answered; not an error).
   */
  attemptEnd(a: AttemptTrace, statusCode: number | undefined, failure: string | undefined, transition: HealthTransition | undefined, hedge?: 'won' | 'lost'): void {
    if (transition !== undefined) this.#transitionEvent(a, transition);
    const attrs: OtelAttributes = { 'http.request.method': this.#method, 'server.address': a.ep.info.address, 'server.port': a.ep.info.port, 'proxyless.service': this.#service };
    if (statusCode !== undefined) attrs['http.response.status_code'] = statusCode;
    if (failure !== undefined) attrs['error.type'] = failure;
    this.#meter?.duration.record((performance.now() - a.startedAt) / 1000, attrs);
    this.#meter?.attempts.add(1, { 'proxyless.service': this.#service, 'proxyless.outcome': failure ?? 'success' });
    const span = a.span;
    if (span === undefined) return;
    if (statusCode !== undefined) span.setAttribute('http.response.status_code', statusCode);
    if (hedge !== undefined) span.setAttribute('proxyless.hedge.result', hedge);
    if (failure !== undefined && hedge !== 'lost') {
      span.setAttribute('error.type', failure);
      span.setStatus({ code: this.#api.SpanStatusCode.ERROR });
    }
    span.end();
  }

  #transitionEvent(a: AttemptTrace, t: HealthTransition): void {
    const event = healthEvent(t.from, t.to);
    if (event === undefined || a.span === undefined) return;
    const attributes: OtelAttributes = { 'proxyless.endpoint': a.ep.info.label };
    if (t.to.kind === 'ejected') attributes['proxyless.ejection_ms'] = t.to.durationMs;
    a.span.addEvent(SPAN_EVENT[event], attributes);
  }

  /** A retry is about to wait `delayMs`. */
  retry(attempt: number, delayMs: number, reason: string): void {
    this.#span?.addEvent('proxyless.retry', { 'proxyless.attempt': attempt, 'proxyless.delay_ms': delayMs, 'proxyless.reason': reason });
    this.#meter?.retries.add(1, { 'proxyless.service': this.#service, 'proxyless.reason': reason });
  }

  /** A hedged request sent copy `copy` (1 for the first hedge) `afterMs` after its first copy. */
  hedge(copy: number, afterMs: number): void {
    this.#span?.addEvent('proxyless.hedge', { 'proxyless.hedge.copy': copy, 'proxyless.hedge.after_ms': afterMs });
    this.#meter?.events.add(1, { 'proxyless.service': this.#service, 'proxyless.event': 'proxyless.hedge' });
  }

  /** A hedged request's answer came from copy `copy` (0 the first) of `copies` sent. */
  hedgeWinner(copy: number, copies: number): void {
    this.#span?.setAttribute('proxyless.hedge.winner', copy);
    this.#span?.setAttribute('proxyless.hedge.copies', copies);
  }

  /** The retry budget refused a retry the policy allowed. */
  budgetRefused(attempt: number): void {
    this.#span?.addEvent('proxyless.retry_budget.refused', { 'proxyless.attempt': attempt });
    this.#meter?.events.add(1, { 'proxyless.service': this.#service, 'proxyless.event': 'proxyless.retry_budget.refused' });
  }

  /** Ends the logical request. */
  end(statusCode: number | undefined, error: unknown, attempts: number | undefined): void {
    const span = this.#span;
    if (span === undefined) return;
    if (attempts !== undefined) span.setAttribute('proxyless.attempts', attempts);
    if (statusCode !== undefined) span.setAttribute('http.response.status_code', statusCode);
    if (error !== undefined) {
      const code = (error as { code?: unknown }).code;
      span.setAttribute('error.type', typeof code === 'string' ? code : 'other');
      if (error instanceof Error) span.recordException(error);
      span.setStatus({ code: this.#api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : 'non-Error thrown' });
    } else if (statusCode !== undefined && statusCode >= 500) {
      span.setStatus({ code: this.#api.SpanStatusCode.ERROR });
    }
    span.end();
  }
}

/** One attempt's span and the headers it sends. @internal */
export interface AttemptTrace {
  span: OtelSpan | undefined;
  headers: Headers;
  startedAt: number;
  ep: Endpoint;
}

/** The pick facts of one attempt, for its span. @internal */
export function pickFacts(balancer: { name: string; score?(e: Endpoint): number }, compared: readonly Endpoint[], chosen: Endpoint): PickFacts {
  return {
    strategy: balancer.name,
    candidates: compared.length > 0 ? compared : [chosen],
    score: balancer.score === undefined ? undefined : (e: Endpoint): number => balancer.score?.(e) ?? 0,
  };
}
