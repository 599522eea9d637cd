/**
 * Runs the gateway: `node --conditions=proxyless-source --import tsx
 * examples/gateway/src/main.ts [config.json]`. It registers itself in the
 * registry it discovers services in (Consul with a TTL check, or with
 * `REGISTRY=etcd` / `"registry": "etcd"` etcd with a lease) and, on
 * SIGTERM/SIGINT, leaves rotation, drains, deregisters and exits, like any
 * Proxyless service.
 */
import { Registrar } from '@proxyless/registrar';
import { loadConfigFile, type GatewayConfig } from './config.js';
import { Gateway } from './gateway.js';
import { registryFromEnv } from '../../registry-env.js';

const configPath = process.argv[2] ?? process.env['GATEWAY_CONFIG'];
const config: GatewayConfig = configPath ? loadConfigFile(configPath) : {};
if (process.env['PORT']) config.port = Number(process.env['PORT']);
if (process.env['GATEWAY_HOST']) config.host = process.env['GATEWAY_HOST'];
if (process.env['REGISTRY']) config.registry = registryFromEnv();

const gateway = new Gateway(config);
let url: string;
try {
  url = await gateway.listen();
} catch (error) {
  // One line naming the registry and its address (not a stack trace), and a non-zero exit.
  process.stderr.write(`${(error as Error).message}\n`);
  await gateway.close({ graceMs: 0 });
  process.exit(1);
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
  ...gateway.upstreams.registration(),
});
registrar.on('error', (error) => process.stderr.write(`registrar: ${error.message}\n`));
registrar.handleSignals({
  servers: [gateway.server],
  hooks: [() => registrar.close(), () => gateway.close({ graceMs: 0 })],
});
await registrar.start();
process.stdout.write(`gateway listening on ${url} (status page ${url}/_proxyless/status), ${gateway.upstreams.label}\n`);
