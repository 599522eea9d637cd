/**
 * TLS termination: the `tls` config, reading the certificate files, and
 * reloading them into a listening server without dropping a connection.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls';
import { InvalidOptionError } from '@proxyless/core';
import { checkKnownKeys, optionKeys } from '@proxyless/core/internal';

/**
 * TLS termination (`tls` in the config): the gateway listens with TLS on its
 * port. The files are read at start and again whenever one of them changes
 * (each worker checks on its own), without dropping a connection; a new
 * certificate that cannot be used keeps the old one (see `tls` in `status.json`).
 */
export interface TlsConfig {
  /** Certificate chain, PEM: the server's certificate first, then its intermediates. */
  certFile: string;
  /** Private key of the certificate, PEM (unencrypted). */
  keyFile: string;
  /**
   * CA certificate(s), PEM, that client certificates must chain to: set it
   * and every client must present one (mutual TLS); a client without one is
   * refused in the handshake. Default: no client certificates asked for.
   */
  caFile?: string;
  /**
   * Offer HTTP/2 by ALPN on the TLS port (HTTP/1.1 clients keep working on
   * the same port). Default true.
   */
  http2?: boolean;
  /** Lowest TLS version accepted: `TLSv1.2` or `TLSv1.3`. Default `TLSv1.2`. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /**
   * How often the files are checked for a change (their mtime, size or inode;
   * a symlink swap such as Kubernetes' secret volumes counts), ms; 0 turns the
   * check off. Default 5 000.
   */
  reloadIntervalMs?: number;
}

/** The certificate being served and its reloads, as `status.json` shows it (`gateway.tls`). */
export interface TlsStatus {
  /** SHA-256 fingerprint of the certificate served now (`AB:CD:…`, as `openssl x509 -fingerprint -sha256` prints it). */
  readonly fingerprint256: string;
  /** Its subject (`CN=…`). */
  readonly subject: string;
  /** Its expiry, as the certificate states it. */
  readonly validTo: string;
  /** When it was loaded, ms since the epoch. */
  readonly loadedAt: number;
  /** Reloads that changed the certificate, since start. */
  readonly reloads: number;
  /** Reloads refused (unreadable file, bad PEM, key not matching the certificate): the previous certificate stayed. */
  readonly failedReloads: number;
  /** Why the last reload was refused; null once a reload succeeds. */
  readonly lastError: string | null;
}

/** The `tls` config's keys. @internal */
export const tlsKeys = optionKeys<TlsConfig>({ certFile: true, keyFile: true, caFile: true, http2: true, minVersion: true, reloadIntervalMs: true });

const defaultReloadIntervalMs = 5_000;
/** Quiet time after a file changes before the files are read, ms. */
const settleMs = 200;

/** Checks `tls` (shape only: the files are read at listen). @internal */
export function checkTls(value: unknown): asserts value is TlsConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError('tls', value, 'must be an object such as { "certFile": "cert.pem", "keyFile": "key.pem" }');
  }
  checkKnownKeys('tls', value, tlsKeys, 'the gateway config\'s tls');
  const tls = value as Partial<TlsConfig>;
  for (const key of ['certFile', 'keyFile'] as const) {
    if (typeof tls[key] !== 'string' || tls[key] === '') throw new InvalidOptionError(`tls.${key}`, tls[key], `must be the path of a PEM file (both tls.certFile and tls.keyFile are required)`);
  }
  if (tls.caFile !== undefined && (typeof tls.caFile !== 'string' || tls.caFile === '')) throw new InvalidOptionError('tls.caFile', tls.caFile, 'must be the path of a PEM file of CA certificates');
  if (tls.http2 !== undefined && typeof tls.http2 !== 'boolean') throw new InvalidOptionError('tls.http2', tls.http2, 'must be a boolean');
  if (tls.minVersion !== undefined && tls.minVersion !== 'TLSv1.2' && tls.minVersion !== 'TLSv1.3') throw new InvalidOptionError('tls.minVersion', tls.minVersion, 'must be "TLSv1.2" or "TLSv1.3"');
  const interval = tls.reloadIntervalMs;
  if (interval !== undefined && (typeof interval !== 'number' || !Number.isInteger(interval) || interval < 0 || interval > 3_600_000)) {
    throw new InvalidOptionError('tls.reloadIntervalMs', interval, 'must be an integer between 0 (no reload) and 3600000 ms');
  }
}

/** The certificate, key and CA read from the files, checked by building a secure context from them. */
interface Loaded {
  readonly options: SecureContextOptions;
  readonly certificate: X509Certificate;
}

/**
 * Reads the files and checks them: PEM that parses, a key that matches the
 * certificate (`createSecureContext` refuses both), a certificate Node can read.
 * Throws an `InvalidOptionError` naming the `tls` key at fault.
 */
function load(tls: TlsConfig): Loaded {
  const read = (key: 'certFile' | 'keyFile' | 'caFile', path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new InvalidOptionError(`tls.${key}`, path, `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); give the path of a PEM file`);
    }
  };
  const cert = read('certFile', tls.certFile);
  const key = read('keyFile', tls.keyFile);
  const ca = tls.caFile === undefined ? undefined : read('caFile', tls.caFile);
  const options: SecureContextOptions = { cert, key, ...(ca ? { ca } : {}), minVersion: tls.minVersion ?? 'TLSv1.2' };
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (error) {
    throw new InvalidOptionError('tls.certFile', tls.certFile, `does not hold a PEM certificate (${(error as Error).message})`);
  }
  try {
    // Refuses a key that is not the certificate's (OpenSSL's "key values mismatch") or is not a key.
    createSecureContext(options);
  } catch (error) {
    throw new InvalidOptionError('tls.keyFile', tls.keyFile, `cannot be used with tls.certFile (${(error as Error).message}); give the private key of that certificate, in PEM`);
  }
  return { options, certificate };
}

/**
 * Keeps a listening TLS server's certificate in step with its files: reads
 * them when one changes and swaps them in with `setSecureContext()` (new
 * handshakes get the new certificate, established connections keep theirs);
 * a set that cannot be used leaves the served one in place and is reported.
 * @internal
 */
export class CertificateReloader {
  readonly #tls: TlsConfig;
  readonly #log: (line: string) => void;
  #server: TlsServer | undefined;
  #loaded: Loaded;
  #loadedAt = Date.now();
  #reloads = 0;
  #failed = 0;
  #lastError: string | null = null;
  readonly #files: string[];
  #settle: NodeJS.Timeout | undefined;
  readonly #onChange = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs === previous.mtimeMs && current.ino === previous.ino && current.size === previous.size) return;
    // Tools write the certificate and the key one after the other: read once both have settled.
    clearTimeout(this.#settle);
    this.#settle = setTimeout(() => this.reload(), settleMs).unref();
  };

  /** Reads the files once (throws `InvalidOptionError` naming the `tls` key at fault). */
  constructor(tls: TlsConfig, log: (line: string) => void) {
    this.#tls = tls;
    this.#log = log;
    this.#loaded = load(tls);
    this.#files = [tls.certFile, tls.keyFile, ...(tls.caFile === undefined ? [] : [tls.caFile])];
  }

  /** Options for `https.createServer` / `http2.createSecureServer`: what was read, and client certificates required with a `caFile`. */
  serverOptions(): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
    const mutual = this.#tls.caFile !== undefined;
    return { ...this.#loaded.options, requestCert: mutual, rejectUnauthorized: mutual };
  }

  /** Starts watching the files for `server`, made with {@link CertificateReloader.serverOptions}. */
  attach(server: TlsServer): void {
    this.#server = server;
    const interval = this.#tls.reloadIntervalMs ?? defaultReloadIntervalMs;
    if (interval === 0) return;
    // Polling (stat), not fs.watch: it follows the renames and symlink swaps certificate tools do; not persistent: it keeps no process alive.
    for (const file of this.#files) watchFile(file, { interval, persistent: false }, this.#onChange);
  }

  /** Reads the files again; true when the server now serves them, false when they were refused (the old ones stay). */
  reload(): boolean {
    let loaded: Loaded;
    try {
      loaded = load(this.#tls);
      this.#server?.setSecureContext(loaded.options);
    } catch (error) {
      this.#failed++;
      this.#lastError = (error as Error).message;
      this.#log(`TLS reload refused, still serving ${this.#loaded.certificate.fingerprint256}: ${this.#lastError}`);
      return false;
    }
    this.#lastError = null;
    const changed = loaded.certificate.fingerprint256 !== this.#loaded.certificate.fingerprint256;
    this.#loaded = loaded;
    if (changed) {
      this.#reloads++;
      this.#loadedAt = Date.now();
      this.#log(`TLS certificate reloaded: ${loaded.certificate.subject.replace(/\n/g, ', ')}, fingerprint ${loaded.certificate.fingerprint256}, valid to ${loaded.certificate.validTo}`);
    }
    return true;
  }

  status(): TlsStatus {
    const certificate = this.#loaded.certificate;
    return {
      fingerprint256: certificate.fingerprint256,
      subject: certificate.subject.replace(/\n/g, ', '),
      validTo: certificate.validTo,
      loadedAt: this.#loadedAt,
      reloads: this.#reloads,
      failedReloads: this.#failed,
      lastError: this.#lastError,
    };
  }

  /** Stops watching the files. */
  close(): void {
    clearTimeout(this.#settle);
    for (const file of this.#files) unwatchFile(file, this.#onChange);
  }
}

/**
 * How the gateway talks to instances (`backends` in the config). An instance
 * is reached over HTTPS when its registration says so (meta `scheme: https`,
 * or the tag `https`), else over plain HTTP/1.1. WebSocket (upgrade) tunnels
 * to an HTTPS instance go over TLS with the same CA, client certificate and
 * server name, the certificate always checked.
 */
export interface BackendsConfig {
  /**
   * Offer HTTP/2 to HTTPS instances by ALPN (undici's `allowH2`): one that
   * picks `h2` gets one connection carrying up to 100 requests at once;
   * one that picks `http/1.1` stays on HTTP/1.1. Default false.
   */
  allowH2?: boolean;
  /** CA certificate(s), PEM, that HTTPS instances' certificates chain to (a private CA). Default: Node's bundled roots. */
  caFile?: string;
  /** Client certificate chain, PEM, presented to HTTPS instances (mutual TLS); with `keyFile`. */
  certFile?: string;
  /** Its private key, PEM; with `certFile`. */
  keyFile?: string;
  /** Name the instances' certificates are checked against (SNI), when they are registered by IP. Default: the instance's address. */
  servername?: string;
}

/** The `backends` config's keys. @internal */
export const backendsKeys = optionKeys<BackendsConfig>({ allowH2: true, caFile: true, certFile: true, keyFile: true, servername: true });

/** Checks `backends` (shape only). @internal */
export function checkBackends(value: unknown): asserts value is BackendsConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError('backends', value, 'must be an object such as { "allowH2": true, "caFile": "ca.pem" }');
  }
  checkKnownKeys('backends', value, backendsKeys, 'the gateway config\'s backends');
  const b = value as Partial<BackendsConfig>;
  if (b.allowH2 !== undefined && typeof b.allowH2 !== 'boolean') throw new InvalidOptionError('backends.allowH2', b.allowH2, 'must be a boolean');
  for (const key of ['caFile', 'certFile', 'keyFile', 'servername'] as const) {
    if (b[key] !== undefined && (typeof b[key] !== 'string' || b[key] === '')) throw new InvalidOptionError(`backends.${key}`, b[key], key === 'servername' ? 'must be a host name' : 'must be the path of a PEM file');
  }
  if ((b.certFile === undefined) !== (b.keyFile === undefined)) throw new InvalidOptionError('backends.keyFile', b.keyFile, 'and backends.certFile must be given together');
}

/** The balancing clients' options for `backends`, the files read (throws `InvalidOptionError` naming the key of a file that cannot be read). @internal */
export function backendClientOptions(backends: BackendsConfig | undefined): { allowH2?: boolean; tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string } } {
  if (!backends) return {};
  const read = (key: 'caFile' | 'certFile' | 'keyFile'): Buffer | undefined => {
    const path = backends[key];
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (error) {
      throw new InvalidOptionError(`backends.${key}`, path, `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); give the path of a PEM file`);
    }
  };
  const ca = read('caFile');
  const cert = read('certFile');
  const key = read('keyFile');
  const tls = { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(backends.servername ? { servername: backends.servername } : {}) };
  return { ...(backends.allowH2 !== undefined ? { allowH2: backends.allowH2 } : {}), ...(Object.keys(tls).length > 0 ? { tls } : {}) };
}
