import { parseArgs } from 'node:util';
import { InvalidOptionError } from '@proxyless/core';
import { nearest } from '@proxyless/core/internal';
import { parseDuration, type RegistrarOptions } from './options.js';
import type { ConsulRegistryOptions } from './registry-consul.js';

/** Usage text of `proxyless-register`. @internal */
export const usage = `Usage: proxyless-register --name <service> --port <port> [options] -- <command> [args...]

Starts <command>, registers it in the local Consul agent (or etcd) once its
port (or health URL) answers, heartbeats while it answers, and on SIGTERM/SIGINT takes
it out of rotation, deregisters, then passes the signal on. Exits with the
command's exit code (128 + signal number when it was killed by a signal).

Options:
  --name <name>               service name (required)
  --port <port>               port the command serves on (required)
  --id <id>                   instance ID (default <name>-<hostname>-<port>)
  --address <addr>            advertised address (default: first non-internal IPv4)
  --tag <tag>                 tag; repeatable
  --meta <key=value>          service metadata; repeatable
  --ttl <duration>            TTL of the registration (default 15s; heartbeat every TTL/3)
  --deregister-after <dur>    Consul: reap a critical instance after this long (default 1m, minimum 1m)
  --check-http <path|url>     probe: GET this path on the port (2xx passing, 429 warning, else critical)
  --check-tcp                 probe: TCP connect to the port (the default)
  --check-host <host>         host the probes connect to (default 127.0.0.1)
  --check-timeout <duration>  time limit of one probe (default 2s)
  --propagation-timeout <d>   longest wait for the instance to leave the passing set (default 3s)
  --drain-delay <duration>    extra wait for polling watchers before deregistering (default 1s)
  --deadline <duration>       total time from SIGTERM to exit (default 9s)
  --consul <addr>             Consul agent (default CONSUL_HTTP_ADDR or 127.0.0.1:8500;
                              CONSUL_HTTP_TOKEN and the TLS variables are honoured)
  --registry <consul|etcd>    where to register (default consul); etcd needs @proxyless/etcd
  --etcd <urls>               etcd client URLs, comma-separated (default ETCDCTL_ENDPOINTS;
                              ETCDCTL_CACERT/CERT/KEY and ETCDCTL_USER are honoured)
  -h, --help                  show this help

Durations: 500ms, 15s, 1m, 1m30s.`;

/** A command-line mistake; the CLI prints it with the usage and exits 2. @internal */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Parsed `proxyless-register` arguments. @internal */
export interface CliConfig {
  readonly help: boolean;
  readonly registrar: RegistrarOptions;
  /** Where to register; `etcd` loads `@proxyless/etcd`. */
  readonly registry: 'consul' | 'etcd';
  /** `--consul`, `--deregister-after`: options of `consulRegistry()`. */
  readonly consul: ConsulRegistryOptions;
  /** `--etcd`: client URLs, comma-separated. */
  readonly etcdEndpoints: string | undefined;
  readonly probe: { kind: 'tcp' } | { kind: 'http'; url: string };
  readonly checkHost: string;
  readonly checkTimeoutMs: number;
  readonly propagationTimeoutMs: number;
  readonly drainDelayMs: number;
  readonly deadlineMs: number;
  readonly command: readonly string[];
}

function duration(values: Record<string, unknown>, key: string, fallback: number): number {
  const raw = values[key];
  if (typeof raw !== 'string') return fallback;
  try {
    return parseDuration(raw, `--${key}`);
  } catch (error) {
    throw new UsageError(error instanceof InvalidOptionError ? error.message : String(error));
  }
}

/**
 * Parses `proxyless-register` arguments (without `node` and the script).
 * @throws UsageError with a message that names the bad argument.
 * @internal
 */
export function parseCliArgs(argv: readonly string[]): CliConfig {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        name: { type: 'string' },
        port: { type: 'string' },
        id: { type: 'string' },
        address: { type: 'string' },
        tag: { type: 'string', multiple: true },
        meta: { type: 'string', multiple: true },
        ttl: { type: 'string' },
        'deregister-after': { type: 'string' },
        'check-http': { type: 'string' },
        'check-tcp': { type: 'boolean' },
        'check-host': { type: 'string' },
        'check-timeout': { type: 'string' },
        'propagation-timeout': { type: 'string' },
        'drain-delay': { type: 'string' },
        deadline: { type: 'string' },
        consul: { type: 'string' },
        registry: { type: 'string' },
        etcd: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    return {
      help: true,
      registrar: { name: '', port: 0 },
      registry: 'consul',
      consul: {},
      etcdEndpoints: undefined,
      probe: { kind: 'tcp' },
      checkHost: '',
      checkTimeoutMs: 0,
      propagationTimeoutMs: 0,
      drainDelayMs: 0,
      deadlineMs: 0,
      command: [],
    };
  }
  if (!values.name) throw new UsageError('--name is required');
  if (!values.port) throw new UsageError('--port is required');
  if (!/^\d{1,5}$/.test(values.port) || Number(values.port) < 1 || Number(values.port) > 65_535) {
    throw new UsageError(`--port must be a number between 1 and 65535, got ${JSON.stringify(values.port)}`);
  }
  const port = Number(values.port);
  if (positionals.length === 0) throw new UsageError('a command to run is required after --');
  if (values['check-http'] !== undefined && values['check-tcp']) {
    throw new UsageError('--check-http and --check-tcp are mutually exclusive');
  }
  const checkHost = values['check-host'] ?? '127.0.0.1';
  let probe: CliConfig['probe'] = { kind: 'tcp' };
  const checkHttp = values['check-http'];
  if (checkHttp !== undefined) {
    let url: URL;
    try {
      const hostPart = checkHost.includes(':') ? `[${checkHost}]` : checkHost;
      url = /^https?:\/\//i.test(checkHttp)
        ? new URL(checkHttp)
        : new URL(checkHttp.startsWith('/') ? checkHttp : `/${checkHttp}`, `http://${hostPart}:${port}`);
    } catch {
      throw new UsageError(`--check-http must be a path or an http(s) URL, got ${JSON.stringify(checkHttp)}`);
    }
    probe = { kind: 'http', url: url.href };
  }
  const meta: Record<string, string> = {};
  for (const pair of values.meta ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--meta must be key=value, got ${JSON.stringify(pair)}`);
    meta[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const registrar: RegistrarOptions = {
    name: values.name,
    port,
    ttlMs: duration(values, 'ttl', 15_000),
    ...(values.id !== undefined ? { id: values.id } : {}),
    ...(values.address !== undefined ? { address: values.address } : {}),
    ...(values.tag ? { tags: values.tag } : {}),
    ...(Object.keys(meta).length > 0 ? { meta } : {}),
  };
  const consul: ConsulRegistryOptions = {
    deregisterCriticalServiceAfterMs: duration(values, 'deregister-after', 60_000),
    ...(values.consul !== undefined ? { address: values.consul } : {}),
  };
  const registry = values.registry ?? 'consul';
  if (registry !== 'consul' && registry !== 'etcd') {
    const near = nearest(registry, ['consul', 'etcd']);
    throw new UsageError(`--registry must be consul or etcd, got ${JSON.stringify(registry)}${near ? `: did you mean ${near}?` : ''}`);
  }
  if (registry === 'etcd' && values.consul !== undefined) throw new UsageError('--consul cannot be combined with --registry etcd');
  if (registry === 'etcd' && values['deregister-after'] !== undefined) {
    throw new UsageError('--deregister-after is a Consul setting; etcd removes an instance when its lease (--ttl) expires');
  }
  if (registry === 'consul' && values.etcd !== undefined) throw new UsageError('--etcd needs --registry etcd');
  const deadlineMs = duration(values, 'deadline', 9000);
  if (deadlineMs < 1000) throw new UsageError('--deadline must be at least 1s');
  return {
    help: false,
    registrar,
    registry,
    consul,
    etcdEndpoints: values.etcd,
    probe,
    checkHost,
    checkTimeoutMs: duration(values, 'check-timeout', 2000) || 2000,
    propagationTimeoutMs: duration(values, 'propagation-timeout', 3000),
    drainDelayMs: duration(values, 'drain-delay', 1000),
    deadlineMs,
    command: positionals,
  };
}
