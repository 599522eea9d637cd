/**
 * The live status page, in the spirit of HAProxy's stats page: one table per
 * service, one row per endpoint, and a line each for the routes key and the
 * TLS certificate when they are configured. Self-contained (no CDN): the page fetches
 * `status.json` every second and re-renders with `textContent` only.
 */
import type { TlsStatus } from './tls.js';

/** Upgrade counters on the status page. */
export interface UpgradeCounters {
  /** Upgrade requests received on routed paths. */
  readonly requests: number;
  /** Tunnels opened (the instance answered `101`). */
  readonly upgraded: number;
  /** Tunnels open now. */
  readonly open: number;
  /** Upgrades the gateway answered 502/503/504 (no instance, refused connection, handshake timeout). */
  readonly failed: number;
}

/** Live state of one endpoint of a service, as the status page shows it. */
export interface EndpointStatus {
  /** Instance identity (`<node>/<service id>`). */
  readonly key: string;
  /** Service instance ID. */
  readonly id: string;
  /** `address:port`. */
  readonly label: string;
  /** Always `passing`: the resolvers only return healthy instances (Consul: every check passing; etcd: not `critical`). */
  readonly health: string;
  /** Requests to this endpoint in progress now. */
  readonly inFlight: number;
  /**
   * The balancer's cost estimate for this endpoint, ms (0 when unknown):
   * the peak EWMA it ranks endpoints by, which jumps to a slow answer at once
   * and decays slowly, so it sits above the typical answer. Not a measured
   * latency (that is `latency`).
   */
  readonly costMs: number;
  /** Measured time from the gateway's request to this endpoint's response headers, over its recent answers. */
  readonly latency: MeasuredLatency;
  /** Answered tries since the endpoint appeared. */
  readonly successes: number;
  /** Failed tries (refused, reset, timed out, failure statuses) since the endpoint appeared. */
  readonly failures: number;
  /** Circuit breaker state. */
  readonly breaker: 'closed' | 'open' | 'halfOpen';
  /** Out of rotation by outlier ejection. */
  readonly ejected: boolean;
  /** What the endpoint last reported about its own load (ORCA `endpoint-load-metrics`); null when it does not report. */
  readonly reportedLoad: ReportedLoadStatus | null;
}

/** An endpoint's last load report, as the status page shows it. */
export interface ReportedLoadStatus {
  /** Utilisation (`application_utilization` when > 0, else `cpu_utilization`); null if the report has neither. */
  readonly utilization: number | null;
  /** Requests per second it reported; null if not reported. */
  readonly rps: number | null;
  /** Time since the report arrived, ms. */
  readonly ageMs: number;
  /** Past gRPC A58's 10 s blackout: a load-aware balancer may use it. */
  readonly usable: boolean;
}

/**
 * Measured latency of one endpoint: time from the gateway's request to the
 * response headers, over its last 512 answers that took one try (an answer
 * after a retry also holds the failed tries, so it is left out). Null with
 * no sample.
 */
export interface MeasuredLatency {
  /** Answers the figures are over (at most 512). */
  readonly samples: number;
  /** Median, ms. */
  readonly p50Ms: number | null;
  /** 99th percentile, ms. */
  readonly p99Ms: number | null;
  /** Mean, ms. */
  readonly meanMs: number | null;
}

/**
 * Outcome counters of one route. A request ends in exactly one of
 * `succeeded`, `clientErrors`, `rejected`, `clientHangups` or `upstreamFailures`.
 */
export interface RouteCounters {
  /** Requests that matched the route. */
  readonly requests: number;
  /** Answered with a status below 400. */
  readonly succeeded: number;
  /** Answered with 4xx: the client's request was refused (401 from the auth filter, 404 or 400 from the upstream…). */
  readonly clientErrors: number;
  /** Refused by the gateway's own limits and never forwarded: 429 (`rateLimit`) or 413 (body size). */
  readonly rejected: number;
  /** The client went away before its answer was complete. */
  readonly clientHangups: number;
  /**
   * The upstream side failed: the gateway answered 502/503/504 (refused,
   * reset, no healthy instance, timeout), the instance answered 5xx, or it
   * broke off its body mid-way.
   */
  readonly upstreamFailures: number;
}

/** A notable endpoint event, for the status page. */
export interface UpstreamEvent {
  /** When, ms since the epoch. */
  readonly at: number;
  /** The service the endpoint belongs to. */
  readonly service: string;
  /** What happened: `added`, `removed`, `breaker open`, `ejected`, `restored`… */
  readonly event: string;
  /** `address:port`. */
  readonly endpoint: string;
}

/** `routesSource` in `status.json`: the routes key and which routes are in use. */
export interface RoutesSourceStatus {
  /** The watched key. */
  readonly key: string;
  readonly registry: 'consul' | 'etcd';
  /** `key`: the key's routes are in use; `file`: the config file's (the key is absent, or no valid value was read yet). */
  readonly active: 'key' | 'file';
  /** The key's modify index (Consul) or mod revision (etcd) of the routes in use; null while the file's are. */
  readonly revision: number | null;
  /** Why the key's latest value was refused (not JSON, an invalid route: the last good routes stay), or the watch's last failure; null when neither. */
  readonly lastError: string | null;
  /** When the routes in use last changed, ms since the epoch; null before any change. */
  readonly updatedAt: number | null;
}

/** The JSON document served at `/_proxyless/status.json`. */
export interface GatewayStatus {
  /** The gateway process as a whole. */
  readonly gateway: {
    /** Its service name. */
    readonly name: string;
    /** Start time, ms since the epoch. */
    readonly startedAt: number;
    /** Time since start, ms. */
    readonly uptimeMs: number;
    /** Requests received (status page requests excluded). */
    readonly requests: number;
    /** Requests being forwarded now. */
    readonly inFlight: number;
    /** Requests that matched no route (answered 404 `no_route`). */
    readonly noRoute: number;
    /** Sums of the routes' counters. */
    readonly outcomes: RouteCounters;
    /** The last catalog watch error, or null. */
    readonly catalogError: string | null;
    /** True while services missing since a registry reset still route (the reset grace). */
    readonly catalogStale: boolean;
    /** Protocol upgrades (WebSocket): requests, tunnels opened, open now, failed. Absent from older workers. */
    readonly upgrades?: UpgradeCounters;
    /** With `tls`: the certificate served and its reloads (across workers: a refused reload shows, counts are summed). */
    readonly tls?: TlsStatus;
  };
  /** With `routesSource`: the routes key, the revision in use, the last refused value (across workers: the newest revision, any error). */
  readonly routesSource?: RoutesSourceStatus;
  /** Latest endpoint events (added, removed, breaker, ejection), newest first. */
  readonly events: readonly UpstreamEvent[];
  /** With `--workers`: each worker's share (the rest of the document sums or merges them). */
  readonly workers?: readonly {
    /** Process id. */
    readonly pid: number;
    /** Time since it started, ms. */
    readonly uptimeMs: number;
    /** Requests it received. */
    readonly requests: number;
    /** Requests it forwards now. */
    readonly inFlight: number;
  }[];
  /** Every route that has seen a request, with its counters. */
  readonly routes: readonly ({
    /** `<path> -> <service>`. */
    readonly id: string;
    /** The service it leads to. */
    readonly service: string;
  } & RouteCounters)[];
  /** Every routed service. */
  readonly services: readonly {
    /** Service name. */
    readonly name: string;
    /** The route paths leading to it. */
    readonly routes: readonly string[];
    /** Its endpoints, by key. */
    readonly endpoints: readonly EndpointStatus[];
  }[];
  /** When this document was made, ms since the epoch. */
  readonly generatedAt: number;
}

/** The status page (HTML, self-contained). @internal */
export const statusPageHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Proxyless gateway status</title>
<style>
  body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }
  h1 { font-size: 18px; margin: 0 0 4px; }
  h2 { font-size: 14px; margin: 18px 0 4px; }
  #summary { color: #555; margin-bottom: 8px; }
  table { border-collapse: collapse; min-width: 760px; background: #fff; }
  th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
  th { background: #dde6f0; }
  td:first-child, th:first-child { text-align: left; }
  tr.up td { background: #e6f6e6; }
  tr.open td, tr.ejected td { background: #fbe3e3; }
  tr.halfOpen td { background: #fff4d6; }
  .routes { color: #666; font-weight: normal; }
  .empty { color: #a00; }
  #error, .bad { color: #a00; }
  #sources p { margin: 2px 0; }
</style>
</head>
<body>
<h1>Proxyless gateway</h1>
<div id="summary">loading…</div>
<div id="error"></div>
<div id="sources"></div>
<h2>Routes</h2>
<table id="routes"></table>
<div id="services"></div>
<h2>Recent endpoint events</h2>
<ul id="events"></ul>
<script>
"use strict";
const cols = [
  ['endpoint', (e) => e.label],
  ['id', (e) => e.id],
  ['health', (e) => e.health],
  ['inFlight', (e) => String(e.inFlight)],
  ['p50Ms', (e) => (e.latency.p50Ms === null ? '–' : e.latency.p50Ms.toFixed(1))],
  ['p99Ms', (e) => (e.latency.p99Ms === null ? '–' : e.latency.p99Ms.toFixed(1))],
  ['costMs', (e) => e.costMs.toFixed(1)],
  ['successes', (e) => String(e.successes)],
  ['failures', (e) => String(e.failures)],
  ['breaker', (e) => e.breaker],
  ['ejected', (e) => (e.ejected ? 'yes' : 'no')],
  ['reportedLoad', (e) => {
    const r = e.reportedLoad;
    if (!r) return '–';
    const util = r.utilization === null ? '–' : Math.round(r.utilization * 100) + ' %';
    const rps = r.rps === null ? '–' : r.rps.toFixed(1) + ' rps';
    return util + ' · ' + rps + ' · ' + (r.ageMs / 1000).toFixed(1) + ' s ago' + (r.usable ? '' : ' (blackout)');
  }],
];
const titles = { endpoint: 'Endpoint', id: 'Instance', health: 'Health', inFlight: 'In flight', p50Ms: 'Latency p50 ms', p99Ms: 'Latency p99 ms',
  costMs: 'Balancer cost (peak EWMA) ms',
  successes: 'Successes', failures: 'Failures', breaker: 'Breaker', ejected: 'Ejected',
  reportedLoad: 'Reported load (utilisation · rps · age)' };
function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
// The routes key and the TLS certificate: one line each, one span per field (data-field), an error in red.
function line(source, title, fields) {
  const p = el('p', { 'data-source': source });
  p.appendChild(el('strong', {}, title + ': '));
  fields.forEach(([name, text, bad], i) => {
    if (i > 0) p.appendChild(document.createTextNode(' · '));
    p.appendChild(el('span', bad ? { 'data-field': name, class: 'bad' } : { 'data-field': name }, text));
  });
  return p;
}
function when(ms) {
  return new Date(ms).toLocaleString();
}
function renderSources(status) {
  const box = el('div', { id: 'sources' });
  const rs = status.routesSource;
  if (rs) {
    box.appendChild(line('routes', 'Routes source', [
      ['key', rs.registry + ' key ' + rs.key],
      ['active', rs.active === 'key' ? 'in use: revision ' + rs.revision : "in use: the config file's routes"],
      ['updatedAt', rs.updatedAt === null ? 'unchanged since start' : 'applied ' + when(rs.updatedAt)],
      ['lastError', rs.lastError === null ? 'no error' : 'last error: ' + rs.lastError, rs.lastError !== null],
    ]));
  }
  const tls = status.gateway.tls;
  if (tls) {
    box.appendChild(line('tls', 'TLS certificate', [
      ['subject', tls.subject],
      ['validTo', 'expires ' + tls.validTo],
      ['fingerprint256', 'SHA-256 ' + tls.fingerprint256],
      ['loadedAt', 'loaded ' + when(tls.loadedAt)],
      ['reloads', tls.reloads + ' reloads, ' + tls.failedReloads + ' refused', tls.failedReloads > 0],
      ['lastError', tls.lastError === null ? 'no error' : 'last reload refused: ' + tls.lastError, tls.lastError !== null],
    ]));
  }
  document.getElementById('sources').replaceWith(box);
}
function render(status) {
  const g = status.gateway;
  document.getElementById('summary').textContent = g.name + ' · up ' + Math.round(g.uptimeMs / 1000) + ' s · requests ' +
    g.requests + ' · in flight ' + g.inFlight + ' · upstream failures ' + g.outcomes.upstreamFailures + ' · client errors ' + g.outcomes.clientErrors +
    ' · client hang-ups ' + g.outcomes.clientHangups + ' · rejected (429/413) ' + g.outcomes.rejected + ' · no route ' + g.noRoute +
    (g.upgrades ? ' · websockets open ' + g.upgrades.open + ' (' + g.upgrades.upgraded + ' upgraded, ' + g.upgrades.failed + ' failed)' : '') + ' · updated ' + new Date(status.generatedAt).toLocaleTimeString();
  if (status.workers) document.getElementById('summary').textContent += ' · workers ' + status.workers.map((w) => w.pid + ' (' + w.requests + ' req)').join(', ');
  document.getElementById('error').textContent = g.catalogError ? 'catalog watch: ' + g.catalogError : '';
  renderSources(status);
  const root = document.getElementById('services');
  const next = document.createDocumentFragment();
  for (const svc of status.services) {
    const section = el('section', { 'data-service': svc.name });
    const h = el('h2', {}, svc.name + ' ');
    h.appendChild(el('span', { class: 'routes' }, svc.routes.join(', ')));
    section.appendChild(h);
    const table = el('table', { 'data-service': svc.name });
    const head = el('tr');
    for (const [name] of cols) head.appendChild(el('th', {}, titles[name]));
    table.appendChild(el('thead')).appendChild(head);
    const body = table.appendChild(el('tbody'));
    if (svc.endpoints.length === 0) {
      const row = el('tr', { class: 'empty' });
      row.appendChild(el('td', { colspan: String(cols.length), class: 'empty' }, 'no healthy endpoints'));
      body.appendChild(row);
    }
    for (const e of svc.endpoints) {
      const state = e.ejected ? 'ejected' : e.breaker !== 'closed' ? e.breaker : 'up';
      const row = el('tr', { 'data-endpoint': e.label, class: state });
      for (const [name, value] of cols) row.appendChild(el('td', { 'data-col': name }, value(e)));
      body.appendChild(row);
    }
    section.appendChild(table);
    next.appendChild(section);
  }
  root.replaceChildren(next);
  const routes = el('table', { id: 'routes' });
  const rhead = el('tr');
  for (const t of ['Route', 'Requests', 'Succeeded', 'Upstream failures', 'Client errors', 'Rejected (429/413)', 'Client hang-ups']) rhead.appendChild(el('th', {}, t));
  routes.appendChild(el('thead')).appendChild(rhead);
  const rbody = routes.appendChild(el('tbody'));
  for (const r of status.routes) {
    const row = el('tr', { 'data-route': r.id });
    row.appendChild(el('td', { 'data-col': 'route' }, r.id));
    for (const k of ['requests', 'succeeded', 'upstreamFailures', 'clientErrors', 'rejected', 'clientHangups']) row.appendChild(el('td', { 'data-col': k }, String(r[k])));
    rbody.appendChild(row);
  }
  document.getElementById('routes').replaceWith(routes);
  const log = el('ul', { id: 'events' });
  for (const ev of status.events) log.appendChild(el('li', {}, new Date(ev.at).toLocaleTimeString() + ' ' + ev.service + ' ' + ev.endpoint + ': ' + ev.event));
  document.getElementById('events').replaceWith(log);
  document.body.setAttribute('data-generated-at', String(status.generatedAt));
}
async function refresh() {
  try {
    const res = await fetch('status.json', { cache: 'no-store' });
    if (!res.ok) throw new Error('status.json answered ' + res.status);
    render(await res.json());
  } catch (error) {
    document.getElementById('error').textContent = 'refresh failed: ' + error.message;
  } finally {
    setTimeout(refresh, 1000);
  }
}
refresh();
</script>
</body>
</html>
`;
