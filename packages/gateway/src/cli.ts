#!/usr/bin/env node
/**
 * `proxyless-gateway`: runs the gateway. It registers itself in the registry
 * it discovers services in (Consul with a TTL check, or etcd with a lease)
 * and, on SIGTERM/SIGINT, leaves rotation, drains, deregisters and exits 0,
 * like any Proxyless service.
 *
 * Exit codes: 0 after a drain, 1 when the registry cannot be reached at
 * start, 2 for a bad command line or config (one line naming the option).
 * @internal
 * @module
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { isProxylessError } from '@proxyless/core';
import { Registrar } from '@proxyless/registrar';
import { ClusterPrimary, reportToPrimary, serveAsWorker } from './cluster.js';
import { loadConfigFile, type GatewayConfig } from './config.js';
import { GatewayServer, gatewayRegistry } from './gateway.js';
import { Upstreams } from './upstreams.js';

const usage = `Usage: proxyless-gateway [--config <file>] [--workers <n>]

Routes /<service>/** to every service in the registry, and the config's routes.
Status page: /_proxyless/status.

Options:
  --config <file>  JSON config (default: GATEWAY_CONFIG; none: every default)
  --workers <n>    Worker processes under node:cluster, sharing the port (default: available parallelism)
  --help           Show this text

Signals: SIGTERM/SIGINT leave rotation, drain every worker, deregister and exit 0;
SIGHUP restarts the workers one by one (a new one listens before an old one drains);
SIGUSR2 reopens the access log file (after logrotate moved it).
TLS certificates (config "tls") are reloaded by every worker when their files change.

Environment:
  REGISTRY           consul (default) or etcd
  CONSUL_HTTP_ADDR   Consul address (default 127.0.0.1:8500); CONSUL_HTTP_TOKEN and TLS variables apply
  ETCDCTL_ENDPOINTS  etcd endpoints (default 127.0.0.1:2379); ETCDCTL_CACERT/CERT/KEY/USER apply
  PORT, GATEWAY_HOST Listen port (0: a free one) and address; override the config

Exit codes: 0 drained after SIGTERM/SIGINT, 1 registry unreachable at start, 2 bad command line or config (a port in use included).
`;

/** A bad command line or environment: one line, exit code 2. */
class UsageError extends Error {}

function fail(line: string, code: number): never {
  process.stderr.write(`proxyless-gateway: ${line}\n`);
  process.exit(code);
}

/** The config from the command line, the file and the environment (the environment wins), and the worker count. */
function readConfig(argv: string[], env: NodeJS.ProcessEnv): { config: GatewayConfig; workers: number } | undefined {
  let values: { config?: string | undefined; workers?: string | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({ args: argv, options: { config: { type: 'string' }, workers: { type: 'string' }, help: { type: 'boolean' } }, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message}; see --help`);
  }
  if (values.help) return undefined;
  const workers = values.workers === undefined ? availableParallelism() : Number(values.workers);
  if (!/^\d+$/.test(values.workers ?? '1') || workers < 1 || workers > 256) throw new UsageError(`--workers must be an integer from 1 to 256, got ${JSON.stringify(values.workers)}`);
  const path = values.config ?? env['GATEWAY_CONFIG'];
  const config: GatewayConfig = path ? loadConfigFile(path) : {};
  const port = env['PORT'];
  if (port !== undefined && port !== '') {
    if (!/^\d+$/.test(port) || Number(port) > 65_535) throw new UsageError(`PORT must be a port number from 0 to 65535, got ${JSON.stringify(port)}`);
    config.port = Number(port);
  }
  if (env['GATEWAY_HOST']) config.host = env['GATEWAY_HOST'];
  const registry = env['REGISTRY'];
  if (registry !== undefined && registry !== '') {
    // A typo such as REGISTRY=etc must not quietly mean Consul.
    if (registry !== 'consul' && registry !== 'etcd') {
      const near = /^e/i.test(registry) ? 'etcd' : /^c/i.test(registry) ? 'consul' : undefined;
      throw new UsageError(`REGISTRY must be "consul" or "etcd" (unset means consul), got ${JSON.stringify(registry)}${near ? `: did you mean "${near}"?` : ''}`);
    }
    config.registry = registry;
  }
  return { config, workers };
}

/** Reads and checks everything; a bad command line or config ends the process with one line and exit code 2. */
function setup(): { config: GatewayConfig; workers: number; gateway: GatewayServer } | undefined {
  try {
    const read = readConfig(process.argv.slice(2), process.env);
    if (!read) return undefined;
    const log = (line: string): void => void process.stderr.write(`proxyless-gateway: ${cluster.isPrimary ? '' : `worker ${String(process.pid)}: `}${line}\n`);
    return { ...read, gateway: new GatewayServer({ ...read.config, log }) };
  } catch (error) {
    if (error instanceof UsageError || isProxylessError(error, 'ERR_INVALID_OPTION')) fail((error as Error).message, 2);
    throw error;
  }
}

/** A worker: one gateway, listening on the port the primary shares. */
async function worker(): Promise<void> {
  const set = setup();
  if (!set) return;
  const { gateway } = set;
  serveAsWorker(gateway);
  // logrotate's postrotate: the primary passes SIGUSR2 on to every worker.
  process.on('SIGUSR2', () => gateway.reopenAccessLog());
  try {
    const url = await gateway.listen();
    await reportToPrimary({ type: 'ready', url });
  } catch (error) {
    await gateway.destroy();
    await reportToPrimary({ type: 'failed', message: (error as Error).message.replace(/^gateway: /, ''), code: isProxylessError(error, 'ERR_INVALID_OPTION') ? 2 : 1 });
    process.exit(1);
  }
}

/** The primary: forks the workers, registers the gateway, restarts workers on SIGHUP, drains them on SIGTERM. */
async function primary(): Promise<void> {
  const set = setup();
  if (!set) {
    process.stdout.write(usage);
    return;
  }
  const { config, workers } = set;
  const log = (line: string): void => void process.stderr.write(`proxyless-gateway: ${line}\n`);
  let upstreams: Upstreams;
  try {
    upstreams = await Upstreams.connect(gatewayRegistry(config));
  } catch (error) {
    fail((error as Error).message, 2);
  }
  if (config.discovery?.enabled !== false) {
    // A registry that cannot be reached ends the start here, before forking workers that would each find it so.
    const catalog = upstreams.watchServices();
    try {
      await upstreams.firstServices(catalog, config.discovery?.startTimeoutMs ?? 10_000);
    } catch (error) {
      await upstreams.close();
      // One line naming the registry and its address (not a stack trace).
      fail((error as Error).message, 1);
    } finally {
      await catalog.close();
    }
  }
  const pool = new ClusterPrimary({ workers, graceMs: 10_000, log });
  let url: string;
  try {
    url = await pool.start();
  } catch (error) {
    await pool.stop();
    await upstreams.close();
    fail((error as Error).message, (error as { exitCode?: number }).exitCode ?? 1);
  }
  // URL leaves out a scheme's default port (http://127.0.0.1:80 has port ''), which is still the port to register.
  const { port: portText, protocol } = new URL(url);
  const port = portText ? Number(portText) : protocol === 'https:' ? 443 : 80;
  const host = config.host ?? '127.0.0.1';
  const registrar = new Registrar({
    name: set.gateway.name,
    port,
    // A gateway bound to every interface advertises the host's address (the registrar's default).
    ...(host === '0.0.0.0' || host === '::' ? {} : { address: host }),
    // Over TLS it says so the way Proxyless clients read it (scheme "auto": meta scheme https, or the tag https).
    tags: config.tls ? ['gateway', 'https'] : ['gateway'],
    meta: { statusPage: '/_proxyless/status', ...(config.tls ? { scheme: 'https' } : {}) },
    ...upstreams.registration(),
  });
  let registered = false;
  let failing = false;
  registrar.on('error', (error) => {
    if (failing) return;
    // Before the first registration (no catalog read with discovery off), nothing at the registry's
    // address ends the start as the catalog read would: exit 1 naming the fix, not a retry line per second.
    if (!registered && (upstreams.isUnreachable(error) || upstreams.isNotTheRegistry(error))) {
      failing = true;
      void pool.stop().finally(() => fail(`cannot register the gateway: ${upstreams.describeFailure(error)}`, 1));
      return;
    }
    process.stderr.write(`registrar: ${error.message}\n`);
  });
  registrar.handleSignals({
    hooks: [() => registrar.close(), () => pool.stop(), () => upstreams.close()],
  });
  process.on('SIGUSR2', () => {
    // Only to workers that are ready: one still starting has no handler yet, and SIGUSR2 would end it.
    for (const pid of pool.pids) process.kill(pid, 'SIGUSR2');
  });
  process.on('SIGHUP', () => {
    log('SIGHUP: restarting the workers one by one');
    void pool.rollingRestart().then(
      () => log(`workers restarted: ${pool.pids.join(', ')}`),
      (error: unknown) => log(`rolling restart stopped: ${(error as Error).message}`),
    );
  });
  try {
    await registrar.start();
  } catch (error) {
    // SIGTERM/SIGINT during the start: the drain under way exits; not an uncaught error.
    if (isProxylessError(error, 'ERR_ABORTED') || isProxylessError(error, 'ERR_CLOSED')) return;
    throw error;
  }
  registered = true;
  process.stdout.write(`gateway listening on ${url} (status page ${url}/_proxyless/status), ${upstreams.label}, ${String(workers)} worker${workers === 1 ? '' : 's'}: ${pool.pids.join(', ')}\n`);
}

await (cluster.isPrimary ? primary() : worker());
