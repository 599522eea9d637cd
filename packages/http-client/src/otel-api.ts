/**
 * Loads the optional peer `@opentelemetry/api` once, if installed. Kept apart
 * from the tracing code so that the public type declarations never name the
 * OpenTelemetry types (a TypeScript user who does not trace needs none).
 * @module
 */

let loaded: unknown;
const loading: Promise<boolean> = import('@opentelemetry/api').then(
  (m: unknown) => {
    loaded = m;
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
export function otelApi(): unknown {
  return loaded;
}
