/**
 * `@proxyless/gateway`: a Zuul-style edge gateway on Proxyless. It routes
 * `/<service>/**` to every service in the registry (Consul's catalog or etcd)
 * and explicit routes to theirs, through pre/route/post filters, balancing
 * each service with `@proxyless/http-client`; a live status page at
 * `/_proxyless/status`. Run it with the `proxyless-gateway` command, or embed
 * it with {@link createGateway}.
 * @example
 * ```ts
 * import { createGateway } from '@proxyless/gateway';
 *
 * const gateway = createGateway({ consulAddress: '127.0.0.1:8500', port: 8080 });
 * await gateway.listen();
 * ```
 * @packageDocumentation
 */
export { createGateway } from './gateway.js';
export type { CloseOptions, Gateway, GatewayHttpServer, GatewayOptions } from './gateway.js';
export type { BackendsConfig, TlsConfig, TlsStatus } from './tls.js';
export { loadConfigFile } from './config.js';
export type { GatewayConfig, ResolvedRoute, RouteConfig, RoutePolicy, RoutesSourceConfig, StickyConfig, WeightedService } from './config.js';
export type { RateLimitConfig, ResolvedRateLimit } from './rate-limit.js';
export type { AccessLogConfig, AccessLogEntry, AccessLogOutcome } from './access-log.js';
export type { AuthorizeHook, Filter, FilterContext, FilterResponse } from './filters.js';
export type { EndpointStatus, GatewayStatus, MeasuredLatency, ReportedLoadStatus, RouteCounters, RoutesSourceStatus, UpgradeCounters, UpstreamEvent } from './status-page.js';
