/**
 * A minimal service that registers itself with the local Consul agent (or,
 * with REGISTRY=etcd, in etcd with a lease) and drains + deregisters on SIGTERM.
 *
 *   SERVICE_NAME=hello PORT=8080 CONSUL_HTTP_ADDR=127.0.0.1:8500 \
 *     node --conditions=proxyless-source --import tsx examples/service/server.ts
 *   REGISTRY=etcd ETCDCTL_ENDPOINTS=http://127.0.0.1:2379 SERVICE_NAME=hello \
 *     node --conditions=proxyless-source --import tsx examples/service/server.ts
 *
 * GET /            → {"instance": "...", "port": ...}
 * PUT /admin/delay?ms=50 → adds latency to every answer (used by the demo).
 */
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registrar } from '@proxyless/registrar';
import { etcdRegistry } from '@proxyless/etcd';
import { registryFromEnv } from '../registry-env.js';

const name = process.env['SERVICE_NAME'] ?? 'hello';
const instance = process.env['INSTANCE'] ?? `${name}-${String(process.pid)}`;
let delayMs = 0;

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/admin/delay') {
    delayMs = Math.max(0, Number(url.searchParams.get('ms') ?? 0));
    res.end(JSON.stringify({ instance, delayMs }));
    return;
  }
  const answer = (): void => {
    res.setHeader('content-type', 'application/json');
    res.setHeader('x-instance', instance);
    res.end(JSON.stringify({ instance, port: (server.address() as { port: number }).port }));
  };
  if (delayMs > 0) void sleep(delayMs).then(answer);
  else answer();
});

server.listen(Number(process.env['PORT'] ?? 0), '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  const registrar = new Registrar({
    name,
    id: instance,
    port,
    address: '127.0.0.1',
    ttlMs: Number(process.env['TTL_MS'] ?? 3000),
    meta: { instance },
    ...(registryFromEnv() === 'etcd' ? { registry: etcdRegistry() } : {}),
  });
  registrar.on('error', (error) => process.stderr.write(`[${instance}] ${error.message}\n`));
  // The READY line carries when registering began (epoch ms, the clock every process on the machine shares):
  // a watching client can see the instance before 'registered' fires (after the first heartbeat).
  let registeringAt = 0;
  registrar.on('stateChange', (state) => {
    if (state === 'registering' && registeringAt === 0) registeringAt = Date.now();
  });
  registrar.on('registered', () => process.stdout.write(`READY ${instance} ${String(port)} ${String(registeringAt)}\n`));
  // SIGTERM/SIGINT: out of rotation → wait until the agent no longer lists us as
  // passing → deregister → close the server (in-flight requests finish) → exit.
  registrar.handleSignals({ servers: [server], drainDelayMs: Number(process.env['DRAIN_DELAY_MS'] ?? 500) });
  void registrar.start();
});

// Under a supervisor (the demo), exit with it: a closed stdin means the parent is gone.
if (process.env['EXIT_WITH_PARENT'] === '1') {
  process.stdin.resume();
  process.stdin.on('close', () => process.kill(process.pid, 'SIGTERM'));
}
