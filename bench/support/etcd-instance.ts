/**
 * Bench helper, run as a child process: one instance of a service that
 * registers itself in etcd with @proxyless/registrar (a key with a lease) and
 * drains on SIGTERM (out of rotation → confirmed → drain delay → deregister →
 * close the server → exit).
 *
 * Env: ETCDCTL_ENDPOINTS, SERVICE_NAME, DRAIN_DELAY_MS (1000, the registrar's default).
 * It answers `ok` and notes, per value of the `x-bench-path` request header,
 * when the first and the last request arrived. JSON lines on stdout:
 *   {"event":"registered","id","port","t"}  t: when etcd confirmed the key's put
 *   {"event":"first","path","t"}            the first request from that path
 *   {"event":"shutdown","t"}                SIGTERM: the drain starts
 *   {"event":"last","path","t"}             at the end of the drain, the last request from each path
 *   {"event":"step","step","t"} / {"event":"done","code","t"}
 * Times are `performance.timeOrigin + performance.now()` (ms, sub-ms resolution),
 * taken in this one process, so registration → first request needs no cross-process clock.
 */
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { etcdRegistry } from '@proxyless/etcd';
import { Registrar } from '@proxyless/registrar';

const now = (): number => performance.timeOrigin + performance.now();
const say = (event: string, data: Record<string, unknown> = {}): void => {
  process.stdout.write(`${JSON.stringify({ event, t: now(), ...data })}\n`);
};

const name = process.env['SERVICE_NAME'] ?? 'app';
const last = new Map<string, number>();
const body = Buffer.from('ok');
const server = createServer((req, res) => {
  const path = req.headers['x-bench-path'];
  if (typeof path === 'string') {
    if (!last.has(path)) say('first', { path });
    last.set(path, now());
  }
  res.writeHead(200, { 'content-length': 2 }).end(body);
});
server.keepAliveTimeout = 60_000; // only the drain's idle sweep closes keep-alive sockets

server.listen(0, '127.0.0.1', () => {
  const port = (server.address() as { port: number }).port;
  const id = `${name}-${port}`;
  const etcd = etcdRegistry();
  const registrar = new Registrar({
    name,
    id,
    port,
    address: '127.0.0.1',
    ttlMs: 3000,
    logger: false,
    // The moment etcd acknowledged the key's put: the registration every path starts from.
    registry: (spec) => {
      const registry = etcd(spec);
      const register = registry.register.bind(registry);
      registry.register = async (report, options) => {
        await register(report, options);
        say('registered', { id, port: spec.port });
      };
      return registry;
    },
  });
  registrar.on('error', () => undefined); // reported by the shutdown steps when it matters
  const shutdown = registrar.handleSignals({
    servers: [server],
    drainDelayMs: Number(process.env['DRAIN_DELAY_MS'] ?? 1000),
    log: () => undefined,
  });
  shutdown.on('start', () => say('shutdown'));
  shutdown.on('step', (step) => say('step', { step }));
  shutdown.on('done', (code) => {
    for (const [path, t] of last) process.stdout.write(`${JSON.stringify({ event: 'last', path, t })}\n`);
    say('done', { code });
  });
  registrar.start({ timeoutMs: 20_000 }).catch((error: unknown) => {
    say('startFailed', { message: error instanceof Error ? error.message : String(error) });
    process.exit(3);
  });
});
