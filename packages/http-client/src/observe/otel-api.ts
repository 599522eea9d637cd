/**
 * Loads the optional peer `@opentelemetry/api` once, if installed, and
 * declares the small part of it the client uses as structural types of our
 * own. The tracing code names only these, so no published `.d.ts` imports
 * `@opentelemetry/api`: a TypeScript user who does not trace installs nothing
 * more, even with `skipLibCheck: false`. The `satisfies` below (in a function
 * body, so it never reaches a `.d.ts`) checks them against the real API when
 * this package is built.
 * @module
 */

/** Span and metric attribute values the client records. @internal */
export type OtelAttributes = Record<string, string | number | boolean | string[] | number[] | undefined>;

/** An OpenTelemetry context (the client only passes it along). @internal */
export interface OtelContext {
  getValue(key: symbol): unknown;
  setValue(key: symbol, value: unknown): OtelContext;
  deleteValue(key: symbol): OtelContext;
}

/** The part of an OpenTelemetry `Span` the client uses. @internal */
export interface OtelSpan {
  addEvent(name: string, attributes?: OtelAttributes): unknown;
  setAttribute(key: string, value: string | number | boolean | string[] | number[]): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  recordException(exception: Error): void;
  isRecording(): boolean;
  spanContext(): { traceId: string; spanId: string; traceFlags: number };
  end(): void;
}

/** The part of an OpenTelemetry `Tracer` the client uses. @internal */
export interface OtelTracer {
  startSpan(name: string, options: { kind: number; attributes: OtelAttributes }, context: OtelContext): OtelSpan;
}

/** An OpenTelemetry counter. @internal */
export interface OtelCounter {
  add(value: number, attributes?: OtelAttributes): void;
}

/** An OpenTelemetry histogram. @internal */
export interface OtelHistogram {
  record(value: number, attributes?: OtelAttributes): void;
}

/** An OpenTelemetry observable (asynchronous) instrument, e.g. a gauge read at collection. @internal */
export type OtelObservable = object;

/** What a batch observable callback reports through. @internal */
export interface OtelBatchObservableResult {
  observe(observable: OtelObservable, value: number, attributes?: OtelAttributes): void;
}

/** A batch observable callback. @internal */
export type OtelBatchObservableCallback = (result: OtelBatchObservableResult) => void;

/** The part of the `@opentelemetry/api` module the client uses. @internal */
export interface OtelApi {
  readonly context: { active(): OtelContext };
  readonly trace: {
    getTracer(name: string): OtelTracer;
    setSpan(context: OtelContext, span: OtelSpan): OtelContext;
    isSpanContextValid(spanContext: ReturnType<OtelSpan['spanContext']>): boolean;
  };
  readonly propagation: { inject(context: OtelContext, carrier: Record<string, string | string[] | undefined>): void };
  readonly metrics: {
    getMeter(name: string): {
      createHistogram(name: string, options: { unit?: string; description?: string }): OtelHistogram;
      createCounter(name: string, options: { description?: string }): OtelCounter;
      createObservableGauge(name: string, options: { unit?: string; description?: string }): OtelObservable;
      addBatchObservableCallback(callback: OtelBatchObservableCallback, observables: OtelObservable[]): void;
      removeBatchObservableCallback(callback: OtelBatchObservableCallback, observables: OtelObservable[]): void;
    };
  };
  readonly SpanKind: { readonly INTERNAL: number; readonly CLIENT: number };
  readonly SpanStatusCode: { readonly ERROR: number };
}

let loaded: OtelApi | undefined;
const loading: Promise<boolean> = import('@opentelemetry/api').then(
  (m) => {
    loaded = m satisfies OtelApi;
    return true;
  },
  () => false,
);

/**
 * Resolves once the optional peer `@opentelemetry/api` was looked for: `true`
 * when it is installed (clients then trace whenever a tracer or meter
 * provider is registered, and cost nothing otherwise). A client traces from
 * this point on; await it before the first request you want traced.
 * @example
 * ```ts
 * import { telemetryReady } from '@proxyless/http-client';
 * if (!(await telemetryReady())) console.warn('install @opentelemetry/api to trace requests');
 * ```
 */
export function telemetryReady(): Promise<boolean> {
  return loading;
}

/** The `@opentelemetry/api` module once loaded, else undefined. @internal */
export function otelApi(): OtelApi | undefined {
  return loaded;
}
