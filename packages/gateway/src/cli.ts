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
import { parseArgs } from 'node:util';
import { isProxylessError } from '@proxyless/core';
import { Registrar } from '@proxyless/registrar';
import { loadConfigFile, type GatewayConfig } from './config.js';
import { createGateway } from './gateway.js';

const usage = `Usage: proxyless-gateway [--config <file>]

Routes /<service>/** to every service in the registry, and the config's routes.
Status page: /_proxyless/status.

Options:
  --config <file>  JSON config (default: GATEWAY_CONFIG; none: every default)
  --help           Show this text

Environment:
  REGISTRY           consul (default) or etcd
  CONSUL_HTTP_ADDR   Consul address (default 127.0.0.1:8500); CONSUL_HTTP_TOKEN and TLS variables apply
  ETCDCTL_ENDPOINTS  etcd endpoints (default 127.0.0.1:2379); ETCDCTL_CACERT/CERT/KEY/USER apply
  PORT, GATEWAY_HOST Listen port (0: a free one) and address; override the config

Exit codes: 0 drained after SIGTERM/SIGINT, 1 registry unreachable at start, 2 bad command line or config.
`;

/** A bad command line or environment: one line, exit code 2. */
class UsageError extends Error {}

function fail(line: string, code: number): never {
  process.stderr.write(`proxyless-gateway: ${line}\n`);
  process.exit(code);
}

/** The config from the command line, the file and the environment (the environment wins). */
function readConfig(argv: string[], env: NodeJS.ProcessEnv): GatewayConfig | undefined {
  let values: { config?: string | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({ args: argv, options: { config: { type: 'string' }, help: { type: 'boolean' } }, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message}; see --help`);
  }
  if (values.help) return undefined;
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
  return config;
}

async function main(): Promise<void> {
  let config: GatewayConfig | undefined;
  let gateway;
  try {
    config = readConfig(process.argv.slice(2), process.env);
    if (!config) {
      process.stdout.write(usage);
      return;
    }
    gateway = createGateway(config);
  } catch (error) {
    if (error instanceof UsageError || isProxylessError(error, 'ERR_INVALID_OPTION')) fail((error as Error).message, 2);
    throw error;
  }
  let url: string;
  try {
    url = await gateway.listen();
  } catch (error) {
    await gateway.destroy();
    // One line naming the registry and its address (not a stack trace).
    fail((error as Error).message.replace(/^gateway: /, ''), isProxylessError(error, 'ERR_INVALID_OPTION') ? 2 : 1);
  }
  const port = Number(new URL(url).port);
  const host = config.host ?? '127.0.0.1';
  const registrar = new Registrar({
    name: gateway.name,
    port,
    // A gateway bound to every interface advertises the host's address (the registrar's default).
    ...(host === '0.0.0.0' || host === '::' ? {} : { address: host }),
    tags: ['gateway'],
    meta: { statusPage: '/_proxyless/status' },
    ...gateway.registration(),
  });
  registrar.on('error', (error) => process.stderr.write(`registrar: ${error.message}\n`));
  const g = gateway;
  registrar.handleSignals({
    servers: [g.server],
    hooks: [() => registrar.close(), () => g.close({ graceMs: 0 })],
  });
  await registrar.start();
  process.stdout.write(`gateway listening on ${url} (status page ${url}/_proxyless/status), ${gateway.registryLabel}\n`);
}

await main();
