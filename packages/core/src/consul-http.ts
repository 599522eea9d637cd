import { Pool, errors as undiciErrors } from 'undici';
import {
  AbortedError,
  ClosedError,
  ProxylessError,
  TimeoutError,
  errorBrand,
  type ProxylessErrorOptions,
} from './errors.js';
import {
  resolveConsulConnection,
  tlsConnectOptions,
  type ConsulConnectionOptions,
  type ResolvedConsulConnection,
} from './consul-config.js';
import { connectionHint, httpToHttpsHint } from './consul-hints.js';
import { withDeadline } from './deadline.js';
import { preciseConnector, requestUntilAborted, unrefConnector } from './undici-timing.js';

/**
 * Consul's HTTP API answered with a non-success status.
 * `status` is the HTTP status; `consulMessage` is Consul's text, scrubbed: at
 * most 200 printable characters, with anything the client sent as a header
 * value (the ACL token above all) replaced by `<redacted>`. A response body is
 * never copied verbatim: a proxy that echoes request headers must not put the
 * token into errors and logs.
 */
export class ConsulApiError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_CONSUL_API');

  override get name(): string {
    return 'ConsulApiError';
  }

  readonly status: number;
  readonly method: string;
  /** Request path without query string (never contains a token). */
  readonly path: string;
  readonly consulMessage: string;

  /** What to do about it, when the answer says (plain HTTP sent to the HTTPS port). */
  readonly hint: string | undefined;

  constructor(method: string, path: string, status: number, consulMessage: string, hint?: string) {
    super('ERR_CONSUL_API', `Consul ${method} ${path} answered ${status}: ${consulMessage || '(empty body)'}${hint ? ` — ${hint}` : ''}`);
    this.hint = hint;
    this.method = method;
    this.path = path;
    this.status = status;
    this.consulMessage = consulMessage;
  }
}

/** Consul could not be reached (connection refused, reset, DNS, TLS…). */
export class ConsulUnreachableError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_CONSUL_UNREACHABLE');

  override get name(): string {
    return 'ConsulUnreachableError';
  }

  /** The likely cause and what to set, for TLS and HTTP/HTTPS mix-ups (CA not trusted, client certificate required, server name mismatch…). */
  readonly hint: string | undefined;

  constructor(origin: string, options: ProxylessErrorOptions & { hint?: string | undefined }) {
    super(
      'ERR_CONSUL_UNREACHABLE',
      `Consul at ${origin} is unreachable: ${describeCause(options.cause)}${options.hint ? ` — ${options.hint}` : ''}`,
      { cause: options.cause },
    );
    this.hint = options.hint;
  }
}

/** Consul answered with a body that is not what the API promises (bad JSON, wrong shape, too large). */
export class BadResponseError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_BAD_RESPONSE');

  override get name(): string {
    return 'BadResponseError';
  }

  constructor(message: string, options: ProxylessErrorOptions = {}) {
    super('ERR_BAD_RESPONSE', message, options);
  }
}

/**
 * Makes an error body safe to show: drops control characters, redacts every
 * secret (also URL-encoded or case-changed), keeps at most `max` characters.
 * @internal
 */
export function scrubConsulMessage(text: string, secrets: readonly string[], max = 200): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
  let out = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
  for (const secret of secrets) {
    if (secret.length < 4) continue;
    for (const form of new Set([secret, encodeURIComponent(secret)])) {
      out = out.replace(new RegExp(form.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gi'), '<redacted>');
    }
  }
  // Also anything that is shaped like a bearer credential header.
  out = out.replace(/((?:x-consul-token|authorization)["']?\s*[:=]\s*["']?)(?:bearer\s+)?[^\s"',;]+/gi, '$1<redacted>');
  return out.length > max ? `${out.slice(0, max)}…` : out;
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    // One line: OpenSSL's messages end in a newline (and may hold more), which split a log line or a CLI's error in two.
    const message = cause.message.trim().replace(/\s*\n\s*/g, ' ');
    return typeof code === 'string' ? `${code} ${message}` : message;
  }
  return String(cause);
}

/** Long polls one HTTP/2 connection carries (Consul's Go server allows 250 concurrent streams). @internal */
export const h2StreamsPerConnection = 240;

/**
 * Reads a response body as UTF-8 text, destroying it and throwing a
 * {@link BadResponseError} (`<what> exceeds <limit> bytes`) once it grows past `limit`.
 * @internal
 */
export async function readCappedText(body: AsyncIterable<Buffer> & { destroy(): unknown }, limit: number, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      throw new BadResponseError(`${what} exceeds ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/** One call to {@link ConsulHttpClient.request}. */
export interface ConsulRequest {
  method?: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** Path starting with `/v1/`; every dynamic segment must already be URL-encoded. */
  path: string;
  /** Query parameters; `true` sends a bare flag (`?passing`), `undefined`/`false` omit it, arrays repeat it. */
  query?: Record<string, string | number | boolean | readonly string[] | undefined>;
  /** JSON body. */
  body?: unknown;
  /** Caller cancellation. */
  signal?: AbortSignal;
  /** Time limit for the whole call (headers and body). Default: the client's `timeoutMs`. */
  timeoutMs?: number;
  /**
   * A watch's long poll (blocking query) rather than a call someone awaits:
   * it goes on connections that never hold the process open, under an
   * unref'd deadline. Default false: a call in progress keeps the process alive.
   */
  background?: boolean;
  /**
   * A 404 is an answer (`status` 404, `body` undefined, its `X-Consul-*` headers), not a
   * {@link ConsulApiError}: a KV key that does not exist (yet) is watched with a blocking
   * query on the index of that 404. Default false.
   */
  allowNotFound?: boolean;
}

/** A decoded answer. `body` is parsed JSON (or `undefined` for an empty body). */
export interface ConsulResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

/** Builds a query string; exported for tests. @internal */
export function encodeQuery(query: ConsulRequest['query']): string {
  if (!query) return '';
  const parts: string[] = [];
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === false) continue;
    const k = encodeURIComponent(key);
    if (value === true) parts.push(k);
    else if (Array.isArray(value)) for (const v of value as readonly string[]) parts.push(`${k}=${encodeURIComponent(v)}`);
    else parts.push(`${k}=${encodeURIComponent(String(value))}`);
  }
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

/**
 * A small, strict client for Consul's HTTP API on undici.
 *
 * Why not the `consul` npm package here: every call needs its own AbortSignal
 * and deadline, a cap on the response size, the raw `X-Consul-*` headers of
 * blocking queries, and a bounded keep-alive pool shared by all watches of a
 * process; undici gives all of that directly.
 *
 * The ACL token goes only in the `X-Consul-Token` header; it never appears in
 * a URL, an error message or a log line.
 */
export class ConsulHttpClient {
  /** The resolved settings (origin, limits). */
  readonly connection: ResolvedConsulConnection;
  readonly #pool: Pool;
  /** The watches' long polls, on sockets that never hold the process open (made on first use). */
  #background: Pool | undefined;
  readonly #poolOptions: Pool.Options;
  /** TLS settings and ALPN for the precise connector of both pools. */
  readonly #connectOptions: object;
  readonly #headers: Record<string, string>;
  /** Header values that must never appear in an error (redacted from echoed bodies). */
  readonly #secrets: readonly string[];
  #closed = false;
  #lastAnswerAt = performance.now();

  constructor(options: ConsulConnectionOptions = {}, env: NodeJS.ProcessEnv = process.env) {
    this.connection = resolveConsulConnection(options, env);
    const tls = this.connection.tls;
    this.#poolOptions = {
      connections: this.connection.maxConnections,
      // HTTP/2 (ALPN) to an https agent: up to 240 streams per connection, below the
      // 250 concurrent streams Consul's Go server allows, so no long poll waits in a queue.
      ...(this.connection.http2 ? { allowH2: true, pipelining: h2StreamsPerConnection } : {}),
      // Blocking queries can legitimately hold a response for minutes; our own
      // per-call AbortSignal enforces the real limit.
      headersTimeout: 0,
      bodyTimeout: 0,
      keepAliveTimeout: 30_000,
    };
    // A host that went away is passed over after connectTimeoutMs, on a precise timer (undici's own
    // is coarse, 10 s by default). With a connector of our own, undici no longer offers h2 in ALPN
    // by itself: it is asked for here.
    this.#connectOptions = { ...tlsConnectOptions(tls).connect, ...(this.connection.http2 ? { allowH2: true } : {}) };
    this.#pool = new Pool(this.connection.origin, { ...this.#poolOptions, connect: preciseConnector(this.connection.connectTimeoutMs, this.#connectOptions) });
    this.#headers = { accept: 'application/json' };
    if (this.connection.token) this.#headers['x-consul-token'] = this.connection.token;
    this.#secrets = this.connection.token ? [this.connection.token] : [];
  }

  /** True after {@link ConsulHttpClient.close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * When the agent last answered a call of this client (any HTTP status), as `performance.now()`.
   * @internal
   */
  get lastAnswerAt(): number {
    return this.#lastAnswerAt;
  }

  /**
   * Sends one request and decodes the JSON answer.
   * @throws {@link ConsulApiError} for non-2xx answers, {@link ConsulUnreachableError},
   *   {@link TimeoutError}, {@link AbortedError}, {@link BadResponseError}, {@link ClosedError}.
   */
  async request(req: ConsulRequest): Promise<ConsulResponse> {
    if (this.#closed) throw new ClosedError('Consul client');
    const method = req.method ?? 'GET';
    const timeoutMs = req.timeoutMs ?? this.connection.timeoutMs;
    const headers =
      req.body === undefined ? this.#headers : { ...this.#headers, 'content-type': 'application/json' };
    // One timer and one listener per call, both gone when it settles (withDeadline): with
    // thousands of long polls, AbortSignal.timeout()/any() left a live timer, weak references
    // and finalizers behind every call, which the garbage collector then had to process.
    let deadline: AbortSignal | undefined;
    try {
      return await withDeadline(req.signal, timeoutMs, async (signal) => {
        deadline = signal;
        const res = await requestUntilAborted(req.background === true ? this.#backgroundPool() : this.#pool, {
          method,
          path: req.path + encodeQuery(req.query),
          headers,
          body: req.body === undefined ? null : JSON.stringify(req.body),
          signal,
        });
        this.#lastAnswerAt = performance.now();
        const text = await readCappedText(res.body, this.connection.maxResponseBytes, `Consul response for ${req.path}`);
        if (res.statusCode === 404 && req.allowNotFound === true) return { status: 404, headers: res.headers, body: undefined };
        if (res.statusCode < 200 || res.statusCode >= 300) {
          const message = scrubConsulMessage(text.slice(0, 4096), this.#secrets);
          const hint = res.statusCode === 400 && /HTTP request to an HTTPS server/.test(message) ? httpToHttpsHint : undefined;
          throw new ConsulApiError(method, req.path, res.statusCode, message, hint);
        }
        let body: unknown;
        if (text.length > 0) {
          try {
            body = JSON.parse(text);
          } catch (error) {
            throw new BadResponseError(`Consul ${method} ${req.path} returned invalid JSON`, { cause: error });
          }
        }
        return { status: res.statusCode, headers: res.headers, body };
      }, { background: req.background });
    } catch (error) {
      throw this.#convert(error, method, req, deadline, timeoutMs);
    }
  }

  #convert(error: unknown, method: string, req: ConsulRequest, deadline: AbortSignal | undefined, timeoutMs: number): unknown {
    // The deadline's own reason (undici rejects with it) is not an answer: name the call instead.
    const isDeadlineReason = deadline !== undefined && error === deadline.reason;
    if (error instanceof ProxylessError && !isDeadlineReason) return error;
    if (req.signal?.aborted) return new AbortedError(`Consul ${method} ${req.path}`, req.signal.reason);
    if (deadline?.aborted) return new TimeoutError(`Consul ${method} ${req.path}`, timeoutMs, isDeadlineReason ? undefined : error);
    if (this.#closed || error instanceof undiciErrors.ClientDestroyedError || error instanceof undiciErrors.ClientClosedError) {
      return new ClosedError('Consul client');
    }
    return new ConsulUnreachableError(this.connection.origin, {
      cause: error,
      hint: connectionHint(error, this.connection.origin, this.connection.tls),
    });
  }

  /** Cancels in-flight calls and closes every connection. Idempotent. */
  #backgroundPool(): Pool {
    this.#background ??= new Pool(this.connection.origin, {
      ...this.#poolOptions,
      connect: unrefConnector(preciseConnector(this.connection.connectTimeoutMs, this.#connectOptions)),
    });
    return this.#background;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([this.#pool.destroy(), this.#background?.destroy()]);
  }

  /** Same as {@link ConsulHttpClient.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
