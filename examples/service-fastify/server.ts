/**
 * The registering service of examples/service, on Fastify: it registers
 * itself with the local Consul agent (or, with REGISTRY=etcd, in etcd with a
 * lease) once it listens, heartbeats a TTL check
 * that follows the app's own readiness, and on SIGTERM/SIGINT leaves the
 * rotation, waits for watchers to notice, deregisters, drains and exits 0.
 *
 *   node --conditions=proxyless-source --import tsx examples/service-fastify/server.ts
 *
 * Environment: SERVICE_NAME (default hello), PORT (default 0: any free port),
 * HOST (default 127.0.0.1, also the address registered), CONSUL_HTTP_ADDR, or
 * REGISTRY=etcd and ETCDCTL_ENDPOINTS.
 *
 * GET /        → {"instance": "...", "port": ...}
 * GET /health  → 200 while serving
 */
import Fastify from 'fastify';
import { Registrar } from '@proxyless/registrar';
import { etcdRegistry } from '@proxyless/etcd';
import { registryFromEnv } from '../registry-env.js';

const name = process.env['SERVICE_NAME'] ?? 'hello';
const host = process.env['HOST'] ?? '127.0.0.1';
const instance = process.env['INSTANCE'] ?? `${name}-fastify-${String(process.pid)}`;

let port = 0;
const app = Fastify({ logger: false });
app.get('/', async (_req, reply) => {
  void reply.header('x-instance', instance);
  return { instance, port };
});
app.get('/health', async () => ({ status: 'ok' }));

await app.listen({ port: Number(process.env['PORT'] ?? 0), host });
port = (app.server.address() as { port: number }).port;

const registrar = new Registrar({
  name,
  id: instance,
  port,
  address: host,
  tags: ['fastify'],
  meta: { instance },
  ttlMs: Number(process.env['TTL_MS'] ?? 3000),
  ...(registryFromEnv() === 'etcd' ? { registry: etcdRegistry() } : {}),
});
registrar.on('error', (error) => process.stderr.write(`[${instance}] ${error.message}\n`));
registrar.on('registered', (info) => console.log(`READY ${info.id} ${info.address}:${String(info.port)}`));
registrar.on('deregistered', (info) => console.log(`DEREGISTERED ${info.id}`));
// Fastify's node server is app.server: the coordinator drains it (in-flight
// requests finish, idle keep-alive sockets close) after deregistering.
registrar.handleSignals({ servers: [app.server], drainDelayMs: Number(process.env['DRAIN_DELAY_MS'] ?? 500) });
await registrar.start();
