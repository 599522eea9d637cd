import { readFileSync } from 'node:fs';
import { InvalidOptionError } from './errors.js';
import { debugEnvRead } from './env-debug.js';
import { checkKnownKeys, checkNumber, optionKeys } from './validate.js';

/** TLS settings for talking to Consul over HTTPS. */
export interface ConsulTlsOptions {
  /** PEM CA bundle (contents, not a path). */
  ca?: string | Buffer;
  /** PEM client certificate (contents), for mutual TLS. */
  cert?: string | Buffer;
  /** PEM client key (contents), for mutual TLS. */
  key?: string | Buffer;
  /** SNI / certificate name to verify instead of the host name. */
  serverName?: string;
  /** Verify the server certificate. Default `true`. */
  rejectUnauthorized?: boolean;
}

/** How to reach a Consul agent's HTTP API. */
export interface ConsulConnectionOptions {
  /**
   * `host:port` or a full `http(s)://host:port` URL.
   * Default: `CONSUL_HTTP_ADDR`, else `127.0.0.1:8500`.
   */
  address?: string;
  /** Use HTTPS when `address` has no scheme. Default: `CONSUL_HTTP_SSL`, else `false`. */
  secure?: boolean;
  /** ACL token, sent only in the `X-Consul-Token` header. Default: `CONSUL_HTTP_TOKEN`. */
  token?: string;
  /** TLS settings. Default: from `CONSUL_CACERT`, `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`, `CONSUL_TLS_SERVER_NAME`, `CONSUL_HTTP_SSL_VERIFY`. */
  tls?: ConsulTlsOptions;
  /** Per-request timeout for non-blocking calls, in ms. Default 10 000. */
  timeoutMs?: number;
  /**
   * Time limit of a TCP (and TLS) connect to the agent, in ms, on a precise timer. Default 2000
   * (as etcdctl's `--dial-timeout`): an agent whose host went away is given up on within it.
   */
  connectTimeoutMs?: number;
  /** Largest response body accepted, in bytes. Default 16 MiB. */
  maxResponseBytes?: number;
  /**
   * Most concurrent connections to the agent. Default 64; Consul refuses more than 200 per client IP.
   * Over HTTP/1.1 each long poll holds one; over HTTP/2 up to 240 long polls share one.
   */
  maxConnections?: number;
  /**
   * Speak HTTP/2 to an `https` agent (Consul's HTTPS listener does), so thousands of long polls
   * share a few connections. Turn off only behind a TLS proxy that speaks HTTP/1.1 alone. Default true.
   */
  http2?: boolean;
}

/** @internal */
export const consulConnectionKeys = optionKeys<ConsulConnectionOptions>({
  address: true, secure: true, token: true, tls: true, timeoutMs: true, connectTimeoutMs: true, maxResponseBytes: true, maxConnections: true, http2: true,
});
const consulTlsKeys = optionKeys<ConsulTlsOptions>({ ca: true, cert: true, key: true, serverName: true, rejectUnauthorized: true });
/** Every variable {@link consulOptionsFromEnv} reads. */
const consulEnvNames = [
  'CONSUL_HTTP_ADDR', 'CONSUL_HTTP_SSL', 'CONSUL_HTTP_TOKEN', 'CONSUL_CACERT', 'CONSUL_CLIENT_CERT', 'CONSUL_CLIENT_KEY',
  'CONSUL_TLS_SERVER_NAME', 'CONSUL_HTTP_SSL_VERIFY',
  // Read by ConsulResolver, listed so they are not reported as ignored.
  'CONSUL_NAMESPACE', 'CONSUL_PARTITION',
] as const;

/**
 * What is wrong with a registry address that `new URL()` misreads, in words
 * (`http//127.0.0.1:8500` parses as host `http` with a path), plus the fix.
 * @internal
 */
export function describeBadAddress(address: string, url: URL | undefined): string {
  const scheme = /^(https?)(?::\/?(?!\/)|\/\/?|:\/\/\/+)(.*)$/i.exec(address);
  if (scheme && !/^https?:\/\/[^/]/i.test(address)) {
    const [, name = 'http', tail = ''] = scheme;
    return `lacks "://" after the scheme: did you mean "${name.toLowerCase()}://${tail.replace(/^\/+/, '')}"?`;
  }
  if (url !== undefined) {
    const extra = `${url.pathname === '/' ? '' : url.pathname}${url.search}${url.hash}`;
    return `must be only scheme, host and port, without a path, query or fragment (has "${extra}"): use "${url.origin}"`;
  }
  return 'is not a host:port or http(s)://host:port URL';
}

/** A fully resolved connection configuration. */
export interface ResolvedConsulConnection {
  /** Origin, e.g. `https://127.0.0.1:8501`. Never contains credentials. */
  readonly origin: string;
  readonly token: string | undefined;
  readonly tls: ConsulTlsOptions | undefined;
  readonly timeoutMs: number;
  /** Connect time limit, in ms. */
  readonly connectTimeoutMs: number;
  readonly maxResponseBytes: number;
  readonly maxConnections: number;
  /** True when requests are multiplexed over HTTP/2 (`https` origin and `http2` not turned off). */
  readonly http2: boolean;
}

/**
 * undici `connect` options for a registry's TLS settings (none when `tls` is unset): one mapping
 * for the Consul and etcd clients. Server certificates are verified unless told otherwise.
 * @internal
 */
export function tlsConnectOptions(tls: ConsulTlsOptions | undefined): { connect?: Record<string, unknown> } {
  if (!tls) return {};
  return {
    connect: {
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(tls.cert ? { cert: tls.cert } : {}),
      ...(tls.key ? { key: tls.key } : {}),
      ...(tls.serverName ? { servername: tls.serverName } : {}),
      rejectUnauthorized: tls.rejectUnauthorized ?? true,
    },
  };
}

/**
 * An environment flag: `1`/`true`/`yes`/`on` → true, anything else set → false, unset or empty → undefined.
 * @internal
 */
export function envFlag(value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  return ['1', 'true', 'yes', 'on'].includes(value.toLowerCase());
}

/**
 * Reads the PEM file named by environment variable `name`; a file that cannot be read is an `InvalidOptionError` naming the variable.
 * @internal
 */
export function readPemFromEnv(env: NodeJS.ProcessEnv, name: string): Buffer | undefined {
  const path = env[name];
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (error) {
    throw new InvalidOptionError(name, path, `cannot be read: ${(error as Error).message}`);
  }
}

/**
 * Reads Consul's conventional environment variables, as Consul's own CLI does.
 * Explicit options passed to {@link resolveConsulConnection} override these.
 */
export function consulOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ConsulConnectionOptions {
  const options: ConsulConnectionOptions = {};
  if (env['CONSUL_HTTP_ADDR']) options.address = env['CONSUL_HTTP_ADDR'];
  const ssl = envFlag(env['CONSUL_HTTP_SSL']);
  if (ssl !== undefined) options.secure = ssl;
  if (env['CONSUL_HTTP_TOKEN']) options.token = env['CONSUL_HTTP_TOKEN'];
  const tls: ConsulTlsOptions = {};
  const ca = readPemFromEnv(env, 'CONSUL_CACERT');
  if (ca) tls.ca = ca;
  const cert = readPemFromEnv(env, 'CONSUL_CLIENT_CERT');
  if (cert) tls.cert = cert;
  const key = readPemFromEnv(env, 'CONSUL_CLIENT_KEY');
  if (key) tls.key = key;
  if (env['CONSUL_TLS_SERVER_NAME']) tls.serverName = env['CONSUL_TLS_SERVER_NAME'];
  const verify = envFlag(env['CONSUL_HTTP_SSL_VERIFY']);
  if (verify !== undefined) tls.rejectUnauthorized = verify;
  if (Object.keys(tls).length > 0) options.tls = tls;
  debugEnvRead('Consul connection', 'CONSUL_', consulEnvNames, env);
  return options;
}

/**
 * Merges explicit options over the environment and validates the result.
 * @param options - explicit settings; they win over the environment.
 * @param env - environment to read defaults from (default `process.env`).
 */
export function resolveConsulConnection(
  options: ConsulConnectionOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): ResolvedConsulConnection {
  checkKnownKeys('', options, consulConnectionKeys, 'the Consul connection');
  checkKnownKeys('tls', options.tls, consulTlsKeys, 'the Consul connection');
  const fromEnv = consulOptionsFromEnv(env);
  const address = options.address ?? fromEnv.address ?? '127.0.0.1:8500';
  // Name where a bad address came from: the option, or the variable.
  const addressOption = options.address !== undefined ? 'address' : 'CONSUL_HTTP_ADDR';
  if (typeof address !== 'string') throw new InvalidOptionError(addressOption, address, 'must be a string: host:port or http(s)://host:port');
  const secure = options.secure ?? fromEnv.secure ?? false;
  const token = options.token ?? fromEnv.token;
  if (token !== undefined && (typeof token !== 'string' || /[\r\n]/.test(token))) {
    // Never echo the token itself.
    throw new InvalidOptionError('token', '<redacted>', 'must be a string without line breaks');
  }
  const tls = options.tls ?? fromEnv.tls;
  if (options.http2 !== undefined && typeof options.http2 !== 'boolean') throw new InvalidOptionError('http2', options.http2, 'must be a boolean');

  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? address : `${secure ? 'https' : 'http'}://${address}`);
  } catch {
    throw new InvalidOptionError(addressOption, address, describeBadAddress(address, undefined));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidOptionError(addressOption, address, `must use http or https (has "${url.protocol.slice(0, -1)}")`);
  }
  if (url.username || url.password) {
    throw new InvalidOptionError(addressOption, `${url.protocol}//${url.host}`, 'must not carry credentials; use the token option or CONSUL_HTTP_TOKEN');
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new InvalidOptionError(addressOption, address, describeBadAddress(address, url));
  }
  return {
    origin: url.origin,
    token,
    tls: url.protocol === 'https:' ? (tls ?? {}) : undefined,
    timeoutMs: checkNumber('timeoutMs', options.timeoutMs, 10_000, { integer: true, min: 1, max: 600_000 }),
    connectTimeoutMs: checkNumber('connectTimeoutMs', options.connectTimeoutMs, 2000, { integer: true, min: 1, max: 600_000 }),
    maxResponseBytes: checkNumber('maxResponseBytes', options.maxResponseBytes, 16 * 1024 * 1024, { integer: true, min: 1 }),
    maxConnections: checkNumber('maxConnections', options.maxConnections, 64, { integer: true, min: 1, max: 200 }),
    http2: url.protocol === 'https:' && options.http2 !== false,
  };
}
