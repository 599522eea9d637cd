/**
 * `@proxyless/registrar`: self-registration in a service registry (the local
 * Consul agent by default, etcd with `@proxyless/etcd`), heartbeats,
 * re-registration when the registry forgets the instance, and an ordered
 * drain + deregistration on SIGTERM. The `proxyless-register` CLI does the
 * same for any process, Node or not.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { Registrar } from '@proxyless/registrar';
 *
 * const server = createServer((req, res) => res.end('ok'));
 * const registrar = new Registrar({ name: 'web', port: 8080, tags: ['v1'] }); // registry: consulRegistry() by default
 * registrar.on('error', (error) => console.warn(error.message));
 * registrar.handleSignals({ servers: [server] }); // SIGTERM: drain, deregister, close, exit
 * server.listen(8080, () => void registrar.start()); // passing only once ready
 * ```
 * @packageDocumentation
 */
export { Registrar } from './registrar.js';
export type {
  RegistrarEvents,
  RegistrationInfo,
  HeartbeatInfo,
  RegistrarCallOptions,
  RegistrarState,
  LostReason,
} from './registrar-events.js';
export { consulRegistry, ConsulRegistry, MIN_DEREGISTER_AFTER_MS } from './registry-consul.js';
export type { ConsulRegistryOptions } from './registry-consul.js';
export { validateMeta, parseDuration, MIN_TTL_MS } from './options.js';
export type { RegistrarOptions, RegistrationWeights, RetryBackoffOptions, ResolvedRegistrarOptions } from './options.js';
export { MAX_OUTPUT_BYTES } from './health.js';
export type { CheckStatus, HealthReport, HealthFunction } from './health.js';
export type { RegistrarLogger } from './outage-log.js';
export { ShutdownCoordinator } from './shutdown.js';
export type { ShutdownOptions, ShutdownEvents, ShutdownHook, ShutdownStep, ShutdownParticipant } from './shutdown.js';
export { drainServer } from './server-drain.js';
export type { DrainableServer, DrainResult, DrainServerOptions } from './server-drain.js';
