/**
 * `@proxyless/core/internal`: the helpers the Proxyless packages share (one
 * copy of each: validation, sleep, deadlines, undici timing, the shared-watch
 * machinery, the doctor's checks). Not a supported API: it changes without
 * notice, in any release, and is not in the API docs. Users import
 * `@proxyless/core`.
 * @internal
 * @packageDocumentation
 */
export { errorBrand } from './errors.js';
export { checkBackoff, checkBackoffSpelling, retryWithBackoff } from './backoff.js';
export type { BackoffRule, RetryWithBackoffOptions } from './backoff.js';
export { sleep } from './sleep.js';
export { withDeadline } from './deadline.js';
export type { DeadlineOptions } from './deadline.js';
export { checkKnownKeys, checkNumber, checkOptions, nearest, optionKeys } from './validate.js';
export type { NumberRule } from './validate.js';
export { checkBalancer } from './balancer-util.js';
export { debugEnvRead } from './env-debug.js';
export { consulConnectionKeys, describeBadAddress, envFlag, readPemFromEnv, tlsConnectOptions } from './consul-config.js';
export { readCappedText } from './consul-http.js';
export { describeConsulFailure } from './consul-failure.js';
export { closeUnusedConnector, preciseConnector, requestUntilAborted, unrefConnector } from './undici-timing.js';
export { checkHeartbeat, checkDnsTtl, checkLogger, formatConfigWarning } from './doctor.js';
export type { HeartbeatConfig, DnsTtlConfig } from './doctor.js';
// For resolver packages (e.g. @proxyless/etcd): the shared-watch machinery.
export { WatchHub } from './watch-hub.js';
export type { WatchSink, WatchRunner, PublishOptions } from './watch-hub.js';
export { defaultResetGraceMs } from './reset-grace.js';
export type { CatalogSink, CatalogRunner } from './consul-catalog-watch.js';
