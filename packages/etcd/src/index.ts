/**
 * `@proxyless/etcd`: Proxyless on etcd. An {@link EtcdResolver} (the same
 * `Resolver` contract as `ConsulResolver`, so the balancing HTTP client takes
 * it unchanged), key layouts for Proxyless JSON values and for confd-era
 * `"host:port"` keys, and a strict etcd v3 client on undici (etcd's JSON
 * gateway) with leases, watches, TLS and authentication.
 *
 * A separate package so that Consul-only users never install it.
 *
 * @example
 * ```ts
 * import { EtcdResolver, confdLayout } from '@proxyless/etcd';
 * // ETCDCTL_ENDPOINTS, ETCDCTL_CACERT/CERT/KEY and ETCDCTL_USER are read by default.
 * const resolver = new EtcdResolver({ layout: confdLayout({ prefix: '/{service}/servers' }) });
 * const watch = resolver.watch('app'); // /app/servers/<name> → "host:port"
 * watch.on('update', (snapshot) => console.log(snapshot.instances.length));
 * await resolver.close();
 * ```
 * @packageDocumentation
 */
export { EtcdClient, EtcdApiError, EtcdUnreachableError } from './etcd-client.js';
export type { EtcdCallOptions, EtcdKeyValue, EtcdHeader, EtcdWatchEvent, EtcdWatchResponse } from './etcd-client.js';
export { etcdOptionsFromEnv, resolveEtcdConnection } from './etcd-config.js';
export type { EtcdConnectionOptions, EtcdTlsOptions, ResolvedEtcdConnection } from './etcd-config.js';
export { proxylessLayout, confdLayout, validateInstanceName, validatePrefix, MalformedValueError } from './key-layout.js';
export type { EtcdKeyLayout, ServiceLocator, EtcdInstanceValue, ProxylessLayoutOptions, ConfdLayoutOptions } from './key-layout.js';
export { EtcdResolver } from './resolver-etcd.js';
export type { EtcdResolverOptions, EtcdResolverEvents, EtcdQuery, DroppedEntry } from './resolver-etcd.js';
export type { ResyncReason } from './prefix-watch.js';
export { EtcdRegistry, etcdRegistry } from './registry-etcd.js';
export type { EtcdRegistryOptions } from './registry-etcd.js';
