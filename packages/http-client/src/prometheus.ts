/**
 * `@proxyless/http-client/prometheus`: exposes a client's state as Prometheus
 * metrics with prom-client. Everything is read from `client.stats()` at scrape
 * time (nothing is added to the request path); transitions are counted from
 * the client's events.
 *
 * @example
 * ```ts
 * import { Registry } from 'prom-client';
 * import { registerClientMetrics } from '@proxyless/http-client/prometheus';
 * const registry = new Registry();
 * const metrics = registerClientMetrics(client, { registry });
 * // GET /metrics → await registry.metrics()
 * metrics.unregister();
 * ```
 * @packageDocumentation
 */
import { Counter, Gauge, register as defaultRegistry, type Registry } from 'prom-client';
import type { ProxylessClient } from './client.js';
import type { BreakerState } from './breaker.js';
import type { EndpointInfo } from './endpoint.js';

/** Options of {@link registerClientMetrics}. */
export interface PrometheusOptions {
  /** Registry to register with. Default: prom-client's global registry. */
  registry?: Registry;
  /** Metric name prefix. Default `proxyless_http_client_`. */
  prefix?: string;
}

/** Handle returned by {@link registerClientMetrics}. */
export interface ClientMetrics {
  /** Removes the metrics from the registry and stops listening to the client. */
  unregister(): void;
}

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, halfOpen: 1, open: 2 };

/**
 * Registers gauges and counters for one client: per endpoint in-flight,
 * peak-EWMA latency, attempts by outcome, breaker state (0 closed, 1 half-open,
 * 2 open), ejection; per client ready endpoints, panic, retry budget; and
 * counters of ejections and breaker openings. Labels: `service`, `endpoint`.
 */
export function registerClientMetrics(client: ProxylessClient, options: PrometheusOptions = {}): ClientMetrics {
  const registry = options.registry ?? defaultRegistry;
  const prefix = options.prefix ?? 'proxyless_http_client_';
  const service = client.service;
  // Names of everything registered here, for unregister().
  const names: string[] = [];

  const perEndpoint = (name: string, help: string, read: (e: ReturnType<ProxylessClient['stats']>['endpoints'][number]) => number): void => {
    names.push(prefix + name);
    new Gauge({
      name: prefix + name,
      help,
      labelNames: ['service', 'endpoint'],
      registers: [registry],
      collect() {
        this.reset();
        for (const e of client.stats().endpoints) this.set({ service, endpoint: e.label }, read(e));
      },
    });
  };
  perEndpoint('endpoint_in_flight', 'Requests in flight per endpoint.', (e) => e.inFlight);
  perEndpoint('endpoint_ewma_latency_ms', 'Peak-EWMA latency estimate per endpoint, in ms.', (e) => e.ewmaMs);
  perEndpoint('endpoint_breaker_state', 'Circuit breaker state per endpoint (0 closed, 1 half-open, 2 open).', (e) => BREAKER_VALUE[e.breaker]);
  perEndpoint('endpoint_ejected', 'Whether outlier detection ejected the endpoint (1) or not (0).', (e) => (e.ejected ? 1 : 0));

  names.push(`${prefix}endpoint_attempts_total`, `${prefix}ejections_total`, `${prefix}breaker_opens_total`);
  new Counter({
    name: `${prefix}endpoint_attempts_total`,
    help: 'Attempts per endpoint by outcome, since the endpoint appeared.',
    labelNames: ['service', 'endpoint', 'outcome'],
    registers: [registry],
    collect() {
      this.reset();
      for (const e of client.stats().endpoints) {
        this.inc({ service, endpoint: e.label, outcome: 'success' }, e.successes);
        this.inc({ service, endpoint: e.label, outcome: 'failure' }, e.failures);
      }
    },
  });
  const clientGauge = (name: string, help: string, read: (s: ReturnType<ProxylessClient['stats']>) => number): void => {
    names.push(prefix + name);
    new Gauge({
      name: prefix + name,
      help,
      labelNames: ['service'],
      registers: [registry],
      collect() {
        this.set({ service }, read(client.stats()));
      },
    });
  };
  clientGauge('ready_endpoints', 'Endpoints in the pick set.', (s) => s.ready);
  clientGauge('panic', 'Panic mode (1: balancing over every endpoint).', (s) => (s.panic ? 1 : 0));
  clientGauge('retry_budget_available', 'Retries the budget allows now (-1: retries off).', (s) => s.retryBudget);

  const ejections = new Counter({ name: `${prefix}ejections_total`, help: 'Outlier ejections.', labelNames: ['service', 'endpoint'], registers: [registry] });
  const openings = new Counter({ name: `${prefix}breaker_opens_total`, help: 'Circuit breaker openings.', labelNames: ['service', 'endpoint'], registers: [registry] });
  const onEject = (e: EndpointInfo): void => ejections.inc({ service, endpoint: e.label });
  const onOpen = (e: EndpointInfo): void => openings.inc({ service, endpoint: e.label });
  client.on('eject', onEject);
  client.on('breakerOpen', onOpen);

  return {
    unregister() {
      client.off('eject', onEject);
      client.off('breakerOpen', onOpen);
      for (const name of names) registry.removeSingleMetric(name);
    },
  };
}
