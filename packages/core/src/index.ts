/**
 * `@proxyless/core`: service instances, resolvers (Consul health API, DNS SRV,
 * static), shared watches, balancers, and the error family every Proxyless
 * package uses.
 *
 * @example
 * ```ts
 * import { ConsulHttpClient } from '@proxyless/core';
 * const consul = new ConsulHttpClient(); // CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, TLS from the environment
 * const { body } = await consul.request({ path: '/v1/status/leader' });
 * await consul.close();
 * ```
 * @packageDocumentation
 */
export {
  ProxylessError,
  InvalidOptionError,
  InvalidServiceNameError,
  ClosedError,
  AbortedError,
  TimeoutError,
  isProxylessError,
} from './errors.js';
export type { ProxylessErrorCode, ProxylessErrorOptions } from './errors.js';
export { consulOptionsFromEnv, resolveConsulConnection } from './consul-config.js';
export type { ConsulConnectionOptions, ConsulTlsOptions, ResolvedConsulConnection } from './consul-config.js';
export { ConsulHttpClient, ConsulApiError, ConsulUnreachableError, BadResponseError } from './consul-http.js';
export type { ConsulRequest, ConsulResponse } from './consul-http.js';
export { validateServiceName, validateTag, validateDatacenter, validateNamespace, validatePartition } from './validate.js';
export type { ServiceInstance, ServiceWeights, HealthStatus } from './service-instance.js';
export type {
  Resolver,
  ServiceWatch,
  ServiceWatchEvents,
  ServiceSnapshot,
  CallOptions,
} from './resolver.js';
export type { Balancer, Picker, PickContext, BalancerEndpoint, EndpointLoad, ReportedLoadView, PickSignal, PickerProbing, ProbeResult, ProbeSettings } from './balancer.js';
export { prequal, prequalDefaults } from './balancer-prequal.js';
export type { PrequalOptions } from './balancer-prequal.js';
export { roundRobin } from './balancer-round-robin.js';
export type { RoundRobinOptions } from './balancer-round-robin.js';
export { random } from './balancer-random.js';
export type { RandomOptions } from './balancer-random.js';
export { weightedRoundRobin, consulWeight } from './balancer-weighted.js';
export type { WeightedRoundRobinOptions } from './balancer-weighted.js';
export { loadWeightedRoundRobin, reportedLoadWeight, loadWeightedDefaults } from './balancer-load-weighted.js';
export type { LoadWeightedRoundRobinOptions } from './balancer-load-weighted.js';
export { leastRequest } from './balancer-least-request.js';
export type { LeastRequestOptions } from './balancer-least-request.js';
export { peakEwma } from './balancer-peak-ewma.js';
export { prequalWhenReported, prequalWhenReportedDefaults } from './balancer-prequal-when-reported.js';
export type { PrequalWhenReportedOptions } from './balancer-prequal-when-reported.js';
export type { PeakEwmaOptions } from './balancer-peak-ewma.js';
export { consistentHash, hashKey32 } from './balancer-hash.js';
export type { ConsistentHashOptions } from './balancer-hash.js';
export { subsetInstances, rankInstances, baseSubsetSize, resolveSubset, coordinateOf } from './subset.js';
export type { SubsetOptions, SubsetCoordinate, SubsetPeers, ResolvedSubset } from './subset.js';
export { locality } from './locality.js';
export type { LocalityOptions } from './locality.js';
export { slowStart } from './slow-start.js';
export type { SlowStartOptions } from './slow-start.js';
export {
  formatLoadReport,
  parseLoadReport,
  isLoadReportKey,
  loadReportHeader,
  loadReportFormatHeader,
  loadReportLimits,
  loadReportMetricNames,
} from './load-report.js';
export type { LoadReport, LoadReportFormat } from './load-report.js';
export { priorityHeader, shedHeader, requestPriorities, defaultRequestPriority, priorityLevel } from './priority.js';
export type { RequestPriority } from './priority.js';
export { NoHealthyInstancesError, ResolutionFailedError } from './errors.js';
export { createServiceInstance, diffInstances, sameInstance, isEmptyDiff, isConnectableAddress } from './service-instance.js';
export type { ServiceInstanceInit, InstanceDiff } from './service-instance.js';
export type { SnapshotSourceInfo } from './resolver.js';
export { backoffDelay } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
// The helpers the packages share (validation, sleep, deadlines, the watch
// machinery…) are on `@proxyless/core/internal`, not here: not a supported API.
export { RegistrationLostError } from './registry-port.js';
export type { RegistryPort, RegistryFactory, RegistrationSpec, RegistryReport, RegistryCallOptions, RegistrationLostReason } from './registry-port.js';
export { ConsulResolver } from './resolver-consul.js';
export { runBlockingQuery } from './consul-blocking-query.js';
export type { BlockingQuery, BlockingQueryOptions, BlockingRateLimit, ConsulAnswerInfo } from './consul-blocking-query.js';
export { CatalogWatch } from './consul-catalog-watch.js';
export type { CatalogWatchOptions, CatalogWatchEvents, CatalogServices } from './consul-catalog-watch.js';
export type { ConsulResolverOptions, ConsulQuery, ConsulConsistency } from './resolver-consul.js';
export { DnsTransport, DnsRcodeError } from './dns-transport.js';
export type { DnsTransportOptions, DnsServer, DnsQueryType, DnsAnswer, DnsMessage } from './dns-transport.js';
export { DnsSrvResolver, orderSrvRecords, decodeAddrTarget } from './resolver-dns-srv.js';
export type { DnsSrvResolverOptions, DnsSrvQuery, SrvRecord } from './resolver-dns-srv.js';
export { StaticResolver } from './resolver-static.js';
export type { StaticResolverOptions, StaticInstanceInit } from './resolver-static.js';
export { FallbackResolver } from './resolver-fallback.js';
export type { FallbackResolverOptions } from './resolver-fallback.js';
export type { ConfigWarning, ConfigLogger } from './doctor.js';
