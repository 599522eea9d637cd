/**
 * `@proxyless/etcd/internal`: helpers shared with the other Proxyless
 * packages and the example gateway. Not a supported API: it changes without
 * notice, in any release, and is not in the API docs. Users import `@proxyless/etcd`.
 * @internal
 * @packageDocumentation
 */
export { describeEtcdFailure } from './etcd-failure.js';
// The one etcd watch loop (compaction, restored or wiped history, lost streams), for the gateway's routes key.
export { runPrefixWatch } from './prefix-watch.js';
export type { PrefixWatchTarget, PrefixWatchOptions } from './prefix-watch.js';
