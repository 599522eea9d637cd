/**
 * The access log: one JSON line per request, written through `sonic-boom`
 * (pino's writer): lines queue in memory while a write is in flight and go
 * out together in the next one, so a busy gateway makes one `write(2)` per
 * batch, off the event loop, never one synchronous write per line.
 */
import { once } from 'node:events';
import { InvalidOptionError } from '@proxyless/core';
import { checkKnownKeys } from '@proxyless/core/internal';
import sonicBoom from 'sonic-boom';

// A CommonJS package: its default export is the class, with itself as `.SonicBoom` (what its types describe).
const { SonicBoom } = sonicBoom;
type SonicBoom = InstanceType<typeof SonicBoom>;

/** `accessLog` in the config: where the lines go. */
export interface AccessLogConfig {
  /**
   * `stdout`, or a file the gateway appends to (opened with `O_APPEND`, so
   * the workers of `--workers N` can share it and every line stays whole).
   */
  path: string;
  /**
   * Log the query string too. Default false: queries often carry tokens.
   * When true, the values of parameters named like secrets (`token`,
   * `access_token`, `api_key`, `password`, `signature`, `code`…) are written as `[redacted]`.
   */
  includeQuery?: boolean;
}

/** One line of the access log. */
export interface AccessLogEntry {
  /** When the request arrived, ISO 8601. */
  time: string;
  method: string;
  /** The path as the client sent it, without the query unless `includeQuery`. */
  path: string;
  /** The status sent to the client (0: none, the connection closed first). */
  status: number;
  /**
   * Bytes written to the client's connection for this response, headers
   * included (nginx's `$bytes_sent`); null over HTTP/2, whose streams share a connection.
   */
  bytes: number | null;
  /** From the request's arrival to the response's end or the connection's close, ms (3 decimals). */
  durationMs: number;
  /** The route's id, or null (no route). */
  route: string | null;
  /** The route's service, or null. */
  service: string | null;
  /** The instance that answered (`address:port`), or null. */
  endpoint: string | null;
  /** Tries made upstream (0: never forwarded). */
  attempts: number;
  /** The client's address (behind `trustedProxies`, the one they report). */
  clientIp: string;
  /** The request id (`X-Request-Id`), or null before the filter set it. */
  requestId: string | null;
  /** As the status page counts it. */
  outcome: AccessLogOutcome;
  /**
   * Upgrade lines only (a WebSocket, or another protocol the client asked to
   * switch to): the `Upgrade` header's protocol, lower case (`websocket`).
   * Such a line is written when the upgrade ends: when it was refused or
   * failed (`status` is then the answer's), or when its tunnel closed
   * (`status` 101, `durationMs` the tunnel's whole life, `bytes` everything
   * written to the client, the 101 head included).
   */
  upgrade?: string;
  /** Upgrade lines only: bytes read from the client's connection after its request head (what it sent through the tunnel). */
  bytesReceived?: number;
  /** Tunnels only (status 101): the side that ended it first: `client`, `upstream` (the instance), or `gateway` (a drain). */
  closedBy?: 'client' | 'upstream' | 'gateway';
  /**
   * WebSocket tunnels only: the code of the close frame the client was sent
   * (the instance's, e.g. 1000, or the gateway's 1001 on a drain); null when
   * the connection closed without one.
   */
  closeCode?: number | null;
}

/** What became of a request, as the status page's route counters file it. */
export type AccessLogOutcome = 'succeeded' | 'clientError' | 'rejected' | 'clientHangup' | 'upstreamFailure' | 'noRoute';

/** A checked `accessLog`. */
export interface ResolvedAccessLog {
  readonly path: string;
  readonly includeQuery: boolean;
}

/** Validates `accessLog`; `undefined` when off (the default). */
export function checkAccessLog(option: string, value: unknown): ResolvedAccessLog | undefined {
  if (value === undefined || value === null || value === false) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw new InvalidOptionError(option, value, 'must be an object such as { "path": "stdout" } or { "path": "/var/log/gateway/access.log" }');
  checkKnownKeys(option, value, ['path', 'includeQuery'], option);
  const c = value as Partial<AccessLogConfig>;
  if (typeof c.path !== 'string' || c.path === '') throw new InvalidOptionError(`${option}.path`, c.path, 'must be "stdout" or a file path');
  if (c.includeQuery !== undefined && typeof c.includeQuery !== 'boolean') throw new InvalidOptionError(`${option}.includeQuery`, c.includeQuery, 'must be a boolean');
  return { path: c.path, includeQuery: c.includeQuery ?? false };
}

/** Query parameters whose values are never logged. */
const secretName = /token|key|secret|pass|pwd|auth|session|sig|code|credential|jwt/i;

/** `?a=1&access_token=x` → `?a=1&access_token=[redacted]`. */
export function redactQuery(query: string): string {
  if (query === '' || query === '?') return '';
  return `?${query
    .slice(1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq === -1) return pair;
      let name = pair.slice(0, eq);
      try {
        name = decodeURIComponent(name.replaceAll('+', ' '));
      } catch {
        // an undecodable name is checked as written
      }
      return secretName.test(name) ? `${pair.slice(0, eq)}=[redacted]` : pair;
    })
    .join('&')}`;
}

/** Largest backlog kept while the disk does not keep up; past it lines are dropped (and counted), not buffered without bound. */
const maxBacklogBytes = 16 * 1024 * 1024;

/** An open access log. */
export class AccessLog {
  readonly includeQuery: boolean;
  readonly #path: string;
  readonly #out: SonicBoom;
  #dropped = 0;
  #closed: Promise<void> | undefined;

  private constructor(config: ResolvedAccessLog, out: SonicBoom) {
    this.includeQuery = config.includeQuery;
    this.#path = config.path;
    this.#out = out;
    out.on('drop', () => {
      // Said once, not per line: a stalled disk would otherwise flood stderr too.
      if (this.#dropped++ === 0) process.stderr.write(`proxyless-gateway: access log ${this.#path}: over 16 MiB waiting to be written; dropping lines until the disk catches up\n`);
    });
    // A write error (disk full) must not take the gateway down with it; the lines are lost.
    out.on('error', (error: Error) => process.stderr.write(`proxyless-gateway: access log ${this.#path}: ${error.message}\n`));
  }

  /** Opens the log; a file that cannot be opened rejects, naming it. */
  static async open(config: ResolvedAccessLog): Promise<AccessLog> {
    const stdout = config.path === 'stdout';
    const out = new SonicBoom({
      ...(stdout ? { fd: 1 } : { dest: config.path, append: true }),
      // Lines are whole in every write: a pipe keeps writes up to PIPE_BUF (4 KiB) from interleaving with another worker's.
      maxWrite: stdout ? 4096 : 64 * 1024,
      maxLength: maxBacklogBytes,
    });
    if (!stdout) {
      try {
        await Promise.race([once(out, 'ready'), once(out, 'error').then(([error]) => Promise.reject(error as Error))]);
      } catch (error) {
        throw new InvalidOptionError('accessLog.path', config.path, `cannot be opened for appending (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
    }
    return new AccessLog(config, out);
  }

  /** Lines dropped because the backlog passed 16 MiB (a stalled disk). */
  get dropped(): number {
    return this.#dropped;
  }

  /** Queues one line. */
  write(entry: AccessLogEntry): void {
    if (this.#closed) return;
    this.#out.write(`${JSON.stringify(entry)}\n`);
  }

  /** Reopens the file (after logrotate moved it); lines queued meanwhile go to the new one. No-op on stdout. */
  reopen(): void {
    if (this.#closed || this.#path === 'stdout') return;
    this.#out.reopen();
  }

  /** Writes what is queued and closes the file. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      const closed = once(this.#out, 'close');
      this.#out.end();
      await closed;
    })();
    return this.#closed;
  }
}
