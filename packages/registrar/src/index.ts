/**
 * `@proxyless/registrar`: self-registration in the local Consul agent, TTL
 * heartbeats, re-registration when the agent forgets the instance, and an
 * ordered drain + deregistration on SIGTERM. The `proxyless-register` CLI
 * does the same for any process, Node or not.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { Registrar } from '@proxyless/registrar';
 *
 * const server = createServer((req, res) => res.end('ok'));
 * const registrar = new Registrar({ name: 'web', port: 8080, tags: ['v1'] });
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
} from './registrar.js';
export { validateMeta, parseDuration, MIN_DEREGISTER_AFTER_MS, MIN_TTL_MS, MAX_OUTPUT_BYTES } from './options.js';
export type {
  RegistrarOptions,
  RegistrarState,
  RegistrationWeights,
  RetryBackoffOptions,
  CheckStatus,
  HealthReport,
  HealthFunction,
  ResolvedRegistrarOptions,
} from './options.js';
export type { LostReason } from './heartbeat.js';
export type { RegistrarLogger } from './agent-report.js';
export { ShutdownCoordinator } from './shutdown.js';
export type { ShutdownOptions, ShutdownEvents, ShutdownHook, ShutdownStep, ShutdownParticipant } from './shutdown.js';
export { drainServer } from './server-drain.js';
export type { DrainableServer, DrainResult, DrainServerOptions } from './server-drain.js';
