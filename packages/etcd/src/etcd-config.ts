import { InvalidOptionError } from '@proxyless/core';
import { checkKnownKeys, checkNumber, debugEnvRead, describeBadAddress, envFlag, optionKeys, readPemFromEnv } from '@proxyless/core/internal';

/** TLS settings for talking to etcd over HTTPS. */
export interface EtcdTlsOptions {
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

/** How to reach etcd's v3 API (its JSON gateway, served on every client URL). */
export interface EtcdConnectionOptions {
  /**
   * Client URLs (`http(s)://host:port`) or `host:port`s, tried in turn when one fails.
   * Default: `ETCDCTL_ENDPOINTS` (comma-separated), else `127.0.0.1:2379`.
   */
  endpoints?: string | readonly string[];
  /** TLS settings; any makes scheme-less endpoints `https`. Default: `ETCDCTL_CACERT`, `ETCDCTL_CERT`, `ETCDCTL_KEY`, `ETCDCTL_INSECURE_SKIP_TLS_VERIFY`. */
  tls?: EtcdTlsOptions;
  /** User name for etcd authentication. Default: from `ETCDCTL_USER` (`user:password`) or `ETCDCTL_USERNAME`. */
  username?: string;
  /** Password; sent only in the authenticate call's body, never logged or put in an error. Default: from `ETCDCTL_USER` or `ETCDCTL_PASSWORD`. */
  password?: string;
  /** Time limit of one unary call, in ms, across endpoint retries. Default 5 000. */
  timeoutMs?: number;
  /**
   * Time limit of connecting to one endpoint (TCP and TLS), in ms, as
   * etcdctl's `--dial-timeout`. A member that went away without a reset
   * (its host down, a dropped route) is passed over for the next endpoint
   * after this long, within the call's `timeoutMs`. Default 2 000.
   */
  connectTimeoutMs?: number;
  /** Largest response (or watch message) accepted, in bytes. Default 16 MiB. */
  maxResponseBytes?: number;
}

/** A fully resolved connection configuration. Never holds the password. */
export interface ResolvedEtcdConnection {
  /** Origins, e.g. `https://10.0.0.1:2379`. Never contain credentials. */
  readonly endpoints: readonly string[];
  readonly username: string | undefined;
  readonly tls: EtcdTlsOptions | undefined;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxResponseBytes: number;
}

/**
 * Reads etcdctl's conventional environment variables (`ETCDCTL_ENDPOINTS`,
 * `ETCDCTL_CACERT`, `ETCDCTL_CERT`, `ETCDCTL_KEY`, `ETCDCTL_USER`,
 * `ETCDCTL_USERNAME`/`ETCDCTL_PASSWORD`, `ETCDCTL_INSECURE_SKIP_TLS_VERIFY`).
 * Explicit options passed to {@link resolveEtcdConnection} override these.
 */
export function etcdOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): EtcdConnectionOptions {
  const options: EtcdConnectionOptions = {};
  const endpoints = env['ETCDCTL_ENDPOINTS'];
  if (endpoints) options.endpoints = endpoints.split(',').map((e) => e.trim()).filter((e) => e.length > 0);
  const tls: EtcdTlsOptions = {};
  const ca = readPemFromEnv(env, 'ETCDCTL_CACERT');
  if (ca) tls.ca = ca;
  const cert = readPemFromEnv(env, 'ETCDCTL_CERT');
  if (cert) tls.cert = cert;
  const key = readPemFromEnv(env, 'ETCDCTL_KEY');
  if (key) tls.key = key;
  const skip = envFlag(env['ETCDCTL_INSECURE_SKIP_TLS_VERIFY']);
  if (skip !== undefined) tls.rejectUnauthorized = !skip;
  if (Object.keys(tls).length > 0) options.tls = tls;
  const user = env['ETCDCTL_USER'];
  if (user) {
    // etcdctl: `--user user:password` (the password may itself contain ':').
    const colon = user.indexOf(':');
    if (colon < 0) options.username = user;
    else {
      options.username = user.slice(0, colon);
      options.password = user.slice(colon + 1);
    }
  }
  if (env['ETCDCTL_USERNAME']) options.username = env['ETCDCTL_USERNAME'];
  if (env['ETCDCTL_PASSWORD']) options.password = env['ETCDCTL_PASSWORD'];
  debugEnvRead('etcd connection', 'ETCDCTL_', etcdEnvNames, env);
  return options;
}

/** Every variable {@link etcdOptionsFromEnv} reads. */
const etcdEnvNames = [
  'ETCDCTL_ENDPOINTS', 'ETCDCTL_CACERT', 'ETCDCTL_CERT', 'ETCDCTL_KEY', 'ETCDCTL_INSECURE_SKIP_TLS_VERIFY',
  'ETCDCTL_USER', 'ETCDCTL_USERNAME', 'ETCDCTL_PASSWORD',
] as const;

/** @internal */
export const etcdConnectionKeys = optionKeys<EtcdConnectionOptions>({
  endpoints: true, tls: true, username: true, password: true, timeoutMs: true, connectTimeoutMs: true, maxResponseBytes: true,
});
const etcdTlsKeys = optionKeys<EtcdTlsOptions>({ ca: true, cert: true, key: true, serverName: true, rejectUnauthorized: true });

function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function parseEndpoint(endpoint: unknown, secure: boolean, index: number, source: string): string {
  const option = `${source}[${index}]`;
  if (typeof endpoint !== 'string' || endpoint.length === 0 || endpoint.length > 2048) {
    throw new InvalidOptionError(option, endpoint, 'must be a host:port or http(s) URL');
  }
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `${secure ? 'https' : 'http'}://${endpoint}`);
  } catch {
    const shown = endpoint.replace(/\/\/[^@/]*@/, '//<redacted>@');
    throw new InvalidOptionError(option, shown, describeBadAddress(shown, undefined));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidOptionError(option, url.protocol, `must use http or https (has "${url.protocol.slice(0, -1)}")`);
  if (url.username || url.password) {
    // Never echo what may be a password.
    throw new InvalidOptionError(option, `${url.protocol}//<redacted>@${url.host}`, 'must not carry credentials; use the username and password options');
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new InvalidOptionError(option, endpoint, describeBadAddress(endpoint, url));
  }
  return url.origin;
}

/**
 * Merges explicit options over the environment and validates the result.
 * The password is returned apart, so that the resolved configuration can be
 * logged or inspected without it.
 * @internal
 */
export function resolveEtcdConnectionWithSecret(
  options: EtcdConnectionOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): { connection: ResolvedEtcdConnection; password: string | undefined } {
  checkKnownKeys('', options, etcdConnectionKeys, 'the etcd connection');
  checkKnownKeys('tls', options.tls, etcdTlsKeys, 'the etcd connection');
  const fromEnv = etcdOptionsFromEnv(env);
  const raw = options.endpoints ?? fromEnv.endpoints ?? '127.0.0.1:2379';
  const list = typeof raw === 'string' ? raw.split(',').map((e) => e.trim()) : raw;
  if (!Array.isArray(list) || list.length === 0 || list.length > 64) {
    throw new InvalidOptionError('endpoints', list, 'must be 1 to 64 endpoints');
  }
  const tls = options.tls ?? fromEnv.tls;
  if (tls !== undefined && (typeof tls !== 'object' || tls === null)) throw new InvalidOptionError('tls', tls, 'must be an object');
  const endpoints = [...new Set(list.map((e, i) => parseEndpoint(e, tls !== undefined, i, options.endpoints !== undefined ? 'endpoints' : 'ETCDCTL_ENDPOINTS')))];
  const username = options.username ?? fromEnv.username;
  const password = options.password ?? (options.username === undefined ? fromEnv.password : undefined);
  if (username !== undefined && (typeof username !== 'string' || username.length === 0 || username.length > 256 || hasControlCharacter(username))) {
    throw new InvalidOptionError('username', typeof username === 'string' ? '<redacted>' : username, 'must be 1-256 characters without control characters');
  }
  if (password !== undefined && typeof password !== 'string') throw new InvalidOptionError('password', '<redacted>', 'must be a string');
  if (password !== undefined && username === undefined) throw new InvalidOptionError('password', '<redacted>', 'needs a username');
  const secure = endpoints.some((e) => e.startsWith('https:'));
  return {
    connection: {
      endpoints,
      username,
      tls: secure ? (tls ?? {}) : undefined,
      timeoutMs: checkNumber('timeoutMs', options.timeoutMs, 5_000, { integer: true, min: 1, max: 600_000 }),
      connectTimeoutMs: checkNumber('connectTimeoutMs', options.connectTimeoutMs, 2_000, { integer: true, min: 1, max: 600_000 }),
      maxResponseBytes: checkNumber('maxResponseBytes', options.maxResponseBytes, 16 * 1024 * 1024, { integer: true, min: 1 }),
    },
    password,
  };
}

/**
 * Merges explicit options over the environment and validates the result (without the password).
 * @param options - explicit settings; they win over the environment.
 * @param env - environment to read defaults from (default `process.env`).
 */
export function resolveEtcdConnection(options: EtcdConnectionOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedEtcdConnection {
  return resolveEtcdConnectionWithSecret(options, env).connection;
}
