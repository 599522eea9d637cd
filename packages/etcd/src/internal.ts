/**
 * `@proxyless/etcd/internal`: helpers shared with the other Proxyless
 * packages and the example gateway. Not a supported API: it changes without
 * notice, in any release, and is not in the API docs. Users import `@proxyless/etcd`.
 * @internal
 * @packageDocumentation
 */
export { describeEtcdFailure } from './etcd-failure.js';
