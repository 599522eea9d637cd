/**
 * `@proxyless/http-client/prometheus`: exposes the state of any number of
 * clients as Prometheus metrics with prom-client. Every client registered on
 * one registry adds its series (labelled by `service`) to the same metrics;
 * everything is read from `client.stats()` at scrape time (nothing is added
 * to the request path); transitions are counted from the clients' events. A
 * closed or unregistered client's series disappear.
 *
 * @example
 * ```ts
 * import { Registry } from 'prom-client';
 * import { registerClientMetrics } from '@proxyless/http-client/prometheus';
 * const registry = new Registry();
 * registerClientMetrics(users, { registry });
 * registerClientMetrics(orders, { registry }); // same metrics, service="orders"
 * // GET /metrics → await registry.metrics()
 * ```
 * @packageDocumentation
 */
import { Counter, Gauge, register as defaultRegistry, type Registry } from 'prom-client';
import { InvalidOptionError, loadReportMetricNames } from '@proxyless/core';
import type { ProxylessClient } from '../client.js';
import type { BreakerState } from '../endpoints/health.js';
import type { EndpointInfo } from '../shared/endpoint-info.js';
import type { ClientStats, EndpointStats } from '../request/request-types.js';

/** Options of {@link registerClientMetrics}. */
export interface PrometheusOptions {
  /** Registry to register with. Default: prom-client's global registry. */
  registry?: Registry;
  /** Metric name prefix. Default `proxyless_http_client_`. */
  prefix?: string;
}

/** Handle returned by {@link registerClientMetrics}. */
export interface ClientMetrics {
  /** Removes this client's series and stops listening to it; the metrics leave the registry with the last client. */
  unregister(): void;
}

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, halfOpen: 1, open: 2 };

/** What one registered client needs at scrape time and for clean-up. */
interface Member {
  readonly client: ProxylessClient;
  /** Endpoint labels its event counters used (to remove those series). */
  readonly endpoints: Set<string>;
  detach(): void;
}

/** The metrics of one (registry, prefix), shared by every client registered there. */
class SharedMetrics {
  readonly members = new Map<ProxylessClient, Member>();
  readonly names: string[] = [];
  readonly ejections: Counter;
  readonly openings: Counter;

  constructor(
    readonly registry: Registry,
    readonly prefix: string,
    readonly onEmpty: () => void,
  ) {
    const live = (): IterableIterator<Member> => this.live();
    /** A gauge per endpoint; an endpoint for which `read` gives undefined (e.g. no load report) has no series. */
    const perEndpoint = (name: string, help: string, read: (e: EndpointStats) => number | undefined): void => {
      this.names.push(prefix + name);
      new Gauge({
        name: prefix + name,
        help,
        labelNames: ['service', 'endpoint'],
        registers: [registry],
        collect() {
          this.reset();
          for (const m of live()) {
            for (const e of m.client.stats().endpoints) {
              const value = read(e);
              if (value !== undefined) this.set({ service: m.client.service, endpoint: e.label }, value);
            }
          }
        },
      });
    };
    perEndpoint('endpoint_in_flight', 'Requests in flight per endpoint.', (e) => e.inFlight);
    perEndpoint('endpoint_ewma_latency_ms', 'Peak-EWMA latency estimate per endpoint, in ms.', (e) => e.ewmaMs);
    perEndpoint('endpoint_breaker_state', 'Circuit breaker state per endpoint (0 closed, 1 half-open, 2 open).', (e) => BREAKER_VALUE[e.breaker]);
    perEndpoint('endpoint_ejected', 'Whether outlier detection ejected the endpoint (1) or not (0).', (e) => (e.ejected ? 1 : 0));
    // What each server last reported about its own load (ORCA endpoint-load-metrics); no series for an endpoint that does not report.
    perEndpoint('endpoint_reported_utilization', 'Utilisation the endpoint last reported (application_utilization when > 0, else cpu_utilization).', (e) => e.loadReport?.utilization);
    perEndpoint('endpoint_reported_rps', 'Requests per second the endpoint last reported (rps_fractional).', (e) => e.loadReport?.rps);
    perEndpoint('endpoint_reported_eps', 'Errors per second the endpoint last reported (eps).', (e) => e.loadReport?.eps);
    perEndpoint('endpoint_reported_requests_in_flight', 'Requests in flight the endpoint last reported (named metric rif).', (e) => e.loadReport?.report.named_metrics?.[loadReportMetricNames.requestsInFlight]);
    perEndpoint('endpoint_load_report_age_seconds', 'Age of the endpoint\'s last load report, in seconds.', (e) => (e.loadReport === undefined ? undefined : e.loadReport.ageMs / 1000));
    perEndpoint('endpoint_load_report_usable', 'Whether balancers may use the last report (1: past gRPC A58\'s 10 s blackout) or not yet (0).', (e) => (e.loadReport === undefined ? undefined : e.loadReport.usable ? 1 : 0));

    this.names.push(`${prefix}endpoint_attempts_total`);
    new Counter({
      name: `${prefix}endpoint_attempts_total`,
      help: 'Attempts per endpoint by outcome, since the endpoint appeared.',
      labelNames: ['service', 'endpoint', 'outcome'],
      registers: [registry],
      collect() {
        this.reset();
        for (const m of live()) {
          for (const e of m.client.stats().endpoints) {
            this.inc({ service: m.client.service, endpoint: e.label, outcome: 'success' }, e.successes);
            this.inc({ service: m.client.service, endpoint: e.label, outcome: 'failure' }, e.failures);
            this.inc({ service: m.client.service, endpoint: e.label, outcome: 'shed' }, e.shed);
          }
        }
      },
    });
    this.names.push(`${prefix}endpoint_malformed_load_reports_total`);
    new Counter({
      name: `${prefix}endpoint_malformed_load_reports_total`,
      help: 'endpoint-load-metrics values that did not parse (ignored), per endpoint, since the endpoint appeared.',
      labelNames: ['service', 'endpoint'],
      registers: [registry],
      collect() {
        this.reset();
        for (const m of live()) for (const e of m.client.stats().endpoints) this.inc({ service: m.client.service, endpoint: e.label }, e.malformedLoadReports);
      },
    });
    /** A gauge per client; a client for which `read` gives `undefined` has no series. */
    const perClient = (name: string, help: string, read: (s: ClientStats) => number | undefined): void => {
      this.names.push(prefix + name);
      new Gauge({
        name: prefix + name,
        help,
        labelNames: ['service'],
        registers: [registry],
        collect() {
          this.reset();
          for (const m of live()) {
            const value = read(m.client.stats());
            if (value !== undefined) this.set({ service: m.client.service }, value);
          }
        },
      });
    };
    this.names.push(`${prefix}hedges_total`);
    new Counter({
      name: `${prefix}hedges_total`,
      help: 'Hedged requests: hedges sent, requests a hedge answered (won), copies cancelled, hedges the retry budget refused.',
      labelNames: ['service', 'result'],
      registers: [registry],
      collect() {
        this.reset();
        for (const m of live()) {
          const h = m.client.stats().hedges;
          for (const result of ['sent', 'won', 'cancelled', 'refused'] as const) this.inc({ service: m.client.service, result }, h[result]);
        }
      },
    });
    // Probing balancers (prequal()): no series for a client whose balancer does not probe.
    this.names.push(`${prefix}probes_total`);
    new Counter({
      name: `${prefix}probes_total`,
      help: 'Probes of a probing balancer (prequal()): sent, failed (no answer by the deadline, or a connection error), answered without a report carrying rif (unreported).',
      labelNames: ['service', 'result'],
      registers: [registry],
      collect() {
        this.reset();
        for (const m of live()) {
          const p = m.client.stats().probes;
          if (p === undefined) continue;
          for (const result of ['sent', 'failed', 'unreported'] as const) this.inc({ service: m.client.service, result }, p[result]);
        }
      },
    });
    perClient('probes_in_flight', 'Probes of a probing balancer (prequal()) in flight now.', (s) => s.probes?.inFlight);
    perClient('probe_pool_size', 'Probe answers in the probing balancer\'s (prequal()) pool now.', (s) => s.probes?.poolSize);
    perClient('ready_endpoints', 'Endpoints in the pick set.', (s) => s.ready);
    perClient('panic', 'Panic mode (1: balancing over every endpoint).', (s) => (s.panic ? 1 : 0));
    perClient('retry_budget_available', 'Retries the budget allows now.', (s) => s.retryBudget);
    perClient('discovery_stale', 'Discovery is stale (1: serving the last known endpoints; the registry is unreachable, silent or reset).', (s) => (s.discovery.stale ? 1 : 0));

    // Subsetting (the `subset` option): no series for a client that uses every instance.
    perClient('subset_size', 'The configured subset size (subset.size).', (s) => s.subset?.size);
    perClient('subset_members', 'Instances the client holds endpoints for: its subset, plus backups of members not ready.', (s) => s.subset?.members);
    perClient('subset_backups', 'Members beyond the base subset, backing members whose breaker is open or that are ejected.', (s) => s.subset?.backups);
    perClient('subset_candidates', 'Instances of the service the subset is chosen from.', (s) => s.subset?.candidates);
    this.names.push(`${prefix}subset_member_changes_total`);
    new Counter({
      name: `${prefix}subset_member_changes_total`,
      help: 'Members that joined or left the subset since the client started (change="joined" counts the first snapshot\'s members too); its rate is the subset\'s churn.',
      labelNames: ['service', 'change'],
      registers: [registry],
      collect() {
        this.reset();
        for (const m of live()) {
          const subset = m.client.stats().subset;
          if (subset === undefined) continue;
          this.inc({ service: m.client.service, change: 'joined' }, subset.joined);
          this.inc({ service: m.client.service, change: 'left' }, subset.left);
        }
      },
    });

    this.names.push(`${prefix}ejections_total`, `${prefix}breaker_opens_total`);
    this.ejections = new Counter({ name: `${prefix}ejections_total`, help: 'Outlier ejections.', labelNames: ['service', 'endpoint'], registers: [registry] });
    this.openings = new Counter({ name: `${prefix}breaker_opens_total`, help: 'Circuit breaker openings.', labelNames: ['service', 'endpoint'], registers: [registry] });
  }

  /** The members whose client is still open; closed clients are dropped (with their series) on the way. */
  *live(): IterableIterator<Member> {
    for (const m of [...this.members.values()]) {
      if (m.client.closed) this.remove(m);
      else yield m;
    }
  }

  add(client: ProxylessClient): Member {
    const endpoints = new Set<string>();
    const onEject = (e: EndpointInfo): void => {
      endpoints.add(e.label);
      this.ejections.inc({ service: client.service, endpoint: e.label });
    };
    const onOpen = (e: EndpointInfo): void => {
      endpoints.add(e.label);
      this.openings.inc({ service: client.service, endpoint: e.label });
    };
    client.on('eject', onEject);
    client.on('breakerOpen', onOpen);
    const member: Member = {
      client,
      endpoints,
      detach: () => {
        client.off('eject', onEject);
        client.off('breakerOpen', onOpen);
      },
    };
    this.members.set(client, member);
    return member;
  }

  remove(member: Member): void {
    if (this.members.get(member.client) !== member) return;
    this.members.delete(member.client);
    member.detach();
    for (const endpoint of member.endpoints) {
      this.ejections.remove({ service: member.client.service, endpoint });
      this.openings.remove({ service: member.client.service, endpoint });
    }
    if (this.members.size === 0) {
      for (const name of this.names) this.registry.removeSingleMetric(name);
      this.onEmpty();
    }
  }
}

const sharedByRegistry = new WeakMap<Registry, Map<string, SharedMetrics>>();

/**
 * Registers a client's metrics: per endpoint in-flight, peak-EWMA latency,
 * attempts by outcome, breaker state (0 closed, 1 half-open, 2 open),
 * ejection; per client ready endpoints, panic, retry budget; with `subset`,
 * its size, members, backups, candidates and member changes; with a probing
 * balancer (`prequal()`), probes by result, in flight and pooled; counters of
 * ejections and breaker openings. Labels: `service`, `endpoint`. Any number of
 * clients (one per service) share one registry's metrics.
 * @throws `InvalidOptionError` when a client for the same service is already registered there.
 */
export function registerClientMetrics(client: ProxylessClient, options: PrometheusOptions = {}): ClientMetrics {
  const registry = options.registry ?? defaultRegistry;
  const prefix = options.prefix ?? 'proxyless_http_client_';
  let byPrefix = sharedByRegistry.get(registry);
  if (!byPrefix) {
    byPrefix = new Map();
    sharedByRegistry.set(registry, byPrefix);
  }
  let shared = byPrefix.get(prefix);
  if (shared) {
    for (const m of shared.live()) {
      if (m.client.service === client.service && m.client !== client) {
        throw new InvalidOptionError('client', client.service, 'is a service that already has a client registered on this registry (series would collide)');
      }
    }
  }
  if (!shared) {
    const map = byPrefix;
    shared = new SharedMetrics(registry, prefix, () => map.delete(prefix));
    byPrefix.set(prefix, shared);
  }
  const existing = shared.members.get(client);
  const member = existing ?? shared.add(client);
  const owner = shared;
  return { unregister: () => owner.remove(member) };
}
