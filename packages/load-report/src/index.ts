/**
 * `@proxyless/load-report`: a server reports its own load in ORCA's
 * `endpoint-load-metrics` response header (TEXT or JSON, the field names of
 * `xds.data.orca.v3.OrcaLoadReport`), for node:http, Fastify and Express, and
 * answers probes of it cheaply. Envoy's and gRPC's client-side weighted round
 * robin, Prequal-style probing and Proxyless clients read it.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { LoadReporter, loadReportListener } from '@proxyless/load-report';
 * const load = new LoadReporter();
 * load.setNamedMetric('queue_depth', 0);
 * createServer(loadReportListener(load, (req, res) => res.end('ok'))).listen(8080);
 * ```
 * @packageDocumentation
 */
export { LoadReporter, loadReporterDefaults, reporterMetricNames } from './load-reporter.js';
export type { LoadReporterOptions, LoadReportRequest, SheddingStats } from './load-reporter.js';
export { sheddingDefaults, sheddingBands, shedShare, shouldShed } from './shedding.js';
export type { SheddingOptions } from './shedding.js';
export { loadReportListener, attachLoadReport } from './node-http.js';
export { loadReportFastify } from './fastify.js';
export type { LoadReportFastifyPlugin, FastifyInstanceLike, FastifyReplyLike, FastifyRequestLike } from './fastify.js';
export { loadReportExpress } from './express.js';
export type { LoadReportMiddleware } from './express.js';
