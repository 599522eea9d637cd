import { Agent, errors as undiciErrors } from 'undici';
import {
  AbortedError,
  BadResponseError,
  ClosedError,
  InvalidOptionError,
  ProxylessError,
  TimeoutError,
  type ProxylessErrorOptions,
} from '@proxyless/core';
import {
  errorBrand,
  readCappedText,
  sleep,
  tlsConnectOptions,
  preciseConnector,
  unrefConnector,
  requestUntilAborted,
  withDeadline,
} from '@proxyless/core/internal';
import { resolveEtcdConnectionWithSecret, type EtcdConnectionOptions, type ResolvedEtcdConnection } from './etcd-config.js';

/**
 * The gRPC status codes that matter here, by the names etcd writes into a watch's cancel reason
 * (`rpc error: code = Unauthenticated desc = …`). One table for the package.
 * @internal
 */
export const grpcCode = { InvalidArgument: 3, NotFound: 5, PermissionDenied: 7, FailedPrecondition: 9, Unavailable: 14, Unauthenticated: 16 } as const;
const grpcCodesByName: Readonly<Record<string, number>> = grpcCode;

/** etcd answered with an error (`grpcCode` is the gRPC status, e.g. 14 unavailable, 16 unauthenticated). */
export class EtcdApiError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_ETCD_API');

  override get name(): string {
    return 'EtcdApiError';
  }

  /** HTTP status of the gateway answer. */
  readonly status: number;
  /** gRPC status code, when etcd gave one. */
  readonly grpcCode: number | undefined;
  /** API path, e.g. `/v3/kv/range` (never contains credentials). */
  readonly path: string;
  /** etcd's (truncated) message. */
  readonly etcdMessage: string;

  constructor(path: string, status: number, grpcCode: number | undefined, etcdMessage: string) {
    super('ERR_ETCD_API', `etcd ${path} answered ${status}${grpcCode === undefined ? '' : ` (gRPC ${grpcCode})`}: ${etcdMessage || '(empty body)'}`);
    this.path = path;
    this.status = status;
    this.grpcCode = grpcCode;
    this.etcdMessage = etcdMessage;
  }
}

/**
 * The one rule for "etcd no longer accepts this credential": gRPC 16
 * (unauthenticated), however it arrived — an HTTP answer, an error inside a
 * stream, or a watch canceled at creation. etcd forgets a simple token on a
 * password change, when its TTL runs out, and on a restart once the login is
 * behind its last snapshot; logging in again is the cure.
 */
function isCredentialRejected(error: unknown): error is EtcdApiError {
  return error instanceof EtcdApiError && error.grpcCode === grpcCode.Unauthenticated;
}

/**
 * The error a watch's cancel names. etcd refuses a watch (bad token, no
 * permission) by canceling it in a 200 stream with only a reason string, so
 * the gRPC status is read back from that string. @internal
 */
export function watchCanceledError(reason: string): EtcdApiError {
  const name = /code = (\w+)/.exec(reason)?.[1];
  const code = name !== undefined ? grpcCodesByName[name] : /permission denied/i.test(reason) ? grpcCodesByName['PermissionDenied'] : undefined;
  return new EtcdApiError('/v3/watch', 200, code, reason.slice(0, 512) || 'watch canceled without a reason');
}

/** No etcd endpoint could be reached (connection refused, reset, TLS…). */
export class EtcdUnreachableError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_ETCD_UNREACHABLE');

  override get name(): string {
    return 'EtcdUnreachableError';
  }

  /** The endpoint tried last. */
  readonly endpoint: string;

  constructor(endpoint: string, options: ProxylessErrorOptions) {
    super('ERR_ETCD_UNREACHABLE', `etcd at ${endpoint} is unreachable: ${describeCause(options.cause)}`, options);
    this.endpoint = endpoint;
  }
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === 'string' ? `${code} ${cause.message}` : cause.message;
  }
  return String(cause);
}

/** Per-call controls. */
export interface EtcdCallOptions {
  /** Caller cancellation. */
  signal?: AbortSignal;
  /** Time limit of the call, across endpoint retries. Default: the client's `timeoutMs`. */
  timeoutMs?: number;
  /** Send to this endpoint only (one of the client's), once, without fail-over. Default: the active endpoint, with fail-over. */
  endpoint?: string;
  /**
   * A watch's own read rather than a call someone awaits: it does not keep the
   * process alive. Default false: a call in progress keeps the process alive until it settles.
   */
  background?: boolean;
  /**
   * Called once (synchronously), the first time a whole round over every
   * endpoint failed to connect (refused, reset, TLS, connect timeout); the
   * call goes on trying until its deadline. A watch reports an outage through
   * it at once instead of when the call gives up. An endpoint that answers,
   * even "unavailable", or is merely slow, never calls it. Default: none.
   */
  onUnreachable?: (error: EtcdUnreachableError) => void;
}

/** One key-value pair as read from etcd (key and value are raw bytes). */
export interface EtcdKeyValue {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly modRevision: number;
  /** Lease ID (decimal string), `'0'` when none. */
  readonly lease: string;
}

/** Header of every etcd answer. */
export interface EtcdHeader {
  /** Store revision when the answer was made. */
  readonly revision: number;
  /** Cluster identity (decimal string): a different one means another (e.g. wiped and rebuilt) cluster. */
  readonly clusterId: string;
  /** The answering member (decimal string). */
  readonly memberId: string;
}

/** A watch event. */
export interface EtcdWatchEvent {
  readonly type: 'put' | 'delete';
  readonly kv: EtcdKeyValue;
}

/** One message of a watch stream. */
export interface EtcdWatchResponse {
  readonly header: EtcdHeader;
  readonly created: boolean;
  readonly canceled: boolean;
  /** Set when the watch was canceled because its start revision was compacted away. */
  readonly compactRevision: number;
  readonly cancelReason: string;
  readonly events: readonly EtcdWatchEvent[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// int64 fields arrive as decimal strings (proto3 JSON); defaults are omitted.
function int(value: unknown, field: string): number {
  if (value === undefined) return 0;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  if (typeof value === 'string' && /^-?\d{1,16}$/.test(value)) return Number(value);
  throw new BadResponseError(`etcd answer has a bad ${field}`);
}

function id(value: unknown, field: string): string {
  if (value === undefined) return '0';
  if (typeof value === 'string' && /^-?\d{1,20}$/.test(value)) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  throw new BadResponseError(`etcd answer has a bad ${field}`);
}

function bytes(value: unknown, field: string): Buffer {
  if (value === undefined) return Buffer.alloc(0);
  if (typeof value !== 'string') throw new BadResponseError(`etcd answer has a bad ${field}`);
  return Buffer.from(value, 'base64');
}

function parseHeader(value: unknown): EtcdHeader {
  const h = isRecord(value) ? value : {};
  return { revision: int(h['revision'], 'header.revision'), clusterId: id(h['cluster_id'], 'header.cluster_id'), memberId: id(h['member_id'], 'header.member_id') };
}

function parseKv(value: unknown): EtcdKeyValue {
  if (!isRecord(value)) throw new BadResponseError('etcd answer has a bad kv');
  return {
    key: bytes(value['key'], 'kv.key'),
    value: bytes(value['value'], 'kv.value'),
    modRevision: int(value['mod_revision'], 'kv.mod_revision'),
    lease: id(value['lease'], 'kv.lease'),
  };
}

/** Throws the error a gateway stream carries in its body (`{"error": {grpc_code, http_code, message}}`, sent with HTTP 200). */
function throwStreamError(path: string, message: Record<string, unknown>): void {
  const error = message['error'];
  if (!isRecord(error)) return;
  const code = typeof error['grpc_code'] === 'number' ? error['grpc_code'] : typeof error['code'] === 'number' ? error['code'] : undefined;
  throw new EtcdApiError(path, typeof error['http_code'] === 'number' ? error['http_code'] : 200, code, (typeof error['message'] === 'string' ? error['message'] : '').slice(0, 512));
}

/** @internal */
export function parseWatchMessage(message: unknown): EtcdWatchResponse {
  if (!isRecord(message)) throw new BadResponseError('etcd watch message is not an object');
  throwStreamError('/v3/watch', message);
  const result = message['result'];
  if (!isRecord(result)) throw new BadResponseError('etcd watch message has no result');
  const eventsIn = result['events'] ?? [];
  if (!Array.isArray(eventsIn)) throw new BadResponseError('etcd watch message has bad events');
  return {
    header: parseHeader(result['header']),
    created: result['created'] === true,
    canceled: result['canceled'] === true,
    compactRevision: int(result['compact_revision'], 'compact_revision'),
    cancelReason: typeof result['cancel_reason'] === 'string' ? result['cancel_reason'].slice(0, 512) : '',
    events: eventsIn.map((e: unknown) => {
      if (!isRecord(e)) throw new BadResponseError('etcd watch event is not an object');
      return { type: e['type'] === 'DELETE' ? 'delete' : 'put', kv: parseKv(e['kv']) };
    }),
  };
}

/** The end of the key range that holds every key starting with `prefix`. @internal */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    const byte = end[i] ?? 0xff;
    if (byte < 0xff) {
      end[i] = byte + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // every key
}

/**
 * Calls `check` once nothing has `touch()`ed it for `idleMs`, then again
 * `idleMs` after that check settles, until stopped. One timer, re-armed only
 * when it fires (a busy stream costs a timestamp per chunk, not a timer).
 */
class IdleCheck {
  #last = performance.now();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #idleMs: number;
  readonly #check: () => Promise<void>;

  constructor(idleMs: number, check: () => Promise<void>) {
    this.#idleMs = idleMs;
    this.#check = check;
    this.#arm(idleMs);
  }

  touch(): void {
    this.#last = performance.now();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #arm(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#fire(), ms);
    this.#timer.unref();
  }

  async #fire(): Promise<void> {
    const quietMs = performance.now() - this.#last;
    if (quietMs < this.#idleMs) return this.#arm(this.#idleMs - quietMs);
    await this.#check();
    this.#last = performance.now();
    this.#arm(this.#idleMs);
  }
}

const b64 = (value: string | Buffer): string => (typeof value === 'string' ? Buffer.from(value) : value).toString('base64');

/**
 * A small, strict client for etcd's v3 API through its JSON gateway
 * (`POST /v3/...`, served by every etcd ≥ 3.4 on its client URLs), on undici.
 *
 * Why the gateway and not a gRPC client (`etcd3`): every call here needs its
 * own deadline and AbortSignal, a lease lost must be noticed at the next
 * keepalive rather than after 2×TTL (measured: `etcd3` 1.1.2 reports a lease
 * held by a stuck server lost after 5.96 s for a 3 s TTL), and undici is
 * already the transport of every other Proxyless registry call — no gRPC or
 * protobuf stack (49 packages, 16 MB) for Consul-only users or anyone else.
 *
 * Several endpoints: calls go to one at a time and move to the next when it
 * cannot be reached or answers "unavailable" (no leader, shutting down).
 * The password goes only into the authenticate call's body; the token only
 * into the `Authorization` header; neither appears in an error or URL.
 */
export class EtcdClient {
  /** The resolved settings (endpoints, limits). Never holds the password. */
  readonly connection: ResolvedEtcdConnection;
  readonly #password: string | undefined;
  readonly #agent: Agent;
  /** Watch streams, on sockets that never hold the process open (a watch nobody closed must not keep it alive). */
  readonly #watchAgent: Agent;
  #active = 0;
  #token: string | undefined;
  #authenticating: Promise<string> | undefined;
  #closed = false;
  readonly #closeController = new AbortController();
  /** When each endpoint last answered a call (performance.now()). */
  readonly #answeredAt = new Map<string, number>();
  /** Endpoint checks in flight, shared by the watch streams on that endpoint. */
  readonly #checks = new Map<string, Promise<void>>();

  constructor(options: EtcdConnectionOptions = {}, env: NodeJS.ProcessEnv = process.env) {
    const { connection, password } = resolveEtcdConnectionWithSecret(options, env);
    this.connection = connection;
    this.#password = password;
    const tls = connection.tls;
    const agentOptions = {
      // Watches hold a response open for as long as they run; our own signals enforce limits.
      headersTimeout: 0,
      bodyTimeout: 0,
      keepAliveTimeout: 30_000,
      connections: 64,
    };
    // A member whose connect never completes is passed over after this, on a precise timer.
    const connect = preciseConnector(connection.connectTimeoutMs, tlsConnectOptions(tls).connect);
    this.#agent = new Agent({ ...agentOptions, connect });
    this.#watchAgent = new Agent({ ...agentOptions, connect: unrefConnector(connect) });
  }

  /** True after {@link EtcdClient.close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The endpoint calls go to now. */
  get endpoint(): string {
    return this.connection.endpoints[this.#active % this.connection.endpoints.length] ?? '';
  }

  /** Moves on to the next endpoint (after it failed). */
  #rotate(failed: string): void {
    if (this.endpoint === failed) this.#active = (this.#active + 1) % this.connection.endpoints.length;
  }

  async #authToken(signal: AbortSignal): Promise<string | undefined> {
    if (this.connection.username === undefined) return undefined;
    if (this.#token !== undefined) return this.#token;
    this.#authenticating ??= (async () => {
      try {
        const answer = await this.#call('/v3/auth/authenticate', { name: this.connection.username, password: this.#password ?? '' }, signal, false);
        const token = isRecord(answer) ? answer['token'] : undefined;
        if (typeof token !== 'string' || token.length === 0 || /[\r\n]/.test(token)) throw new BadResponseError('etcd authenticate answered without a usable token');
        this.#token = token;
        return token;
      } finally {
        this.#authenticating = undefined;
      }
    })();
    return this.#authenticating;
  }

  /**
   * Forgets `token` when `error` says etcd rejected it (see
   * `isCredentialRejected`), so the next call or watch logs in again; a
   * newer token (another call already logged in again) is kept. Every call and
   * every watch goes through here.
   */
  #forgetIfRejected(error: unknown, token: string | undefined): void {
    if (isCredentialRejected(error) && token !== undefined && this.#token === token) this.#token = undefined;
  }

  /** One HTTP exchange with `origin` (default: the active endpoint); no retries. */
  async #call(path: string, body: unknown, signal: AbortSignal, withAuth = true, origin = this.endpoint): Promise<unknown> {
    const token = withAuth ? await this.#authToken(signal) : undefined;
    try {
      return await this.#exchange(path, body, signal, origin, token);
    } catch (error) {
      this.#forgetIfRejected(error, token);
      throw error;
    }
  }

  async #exchange(path: string, body: unknown, signal: AbortSignal, origin: string, token: string | undefined): Promise<unknown> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (token !== undefined) headers['authorization'] = token;
    let res;
    try {
      res = await requestUntilAborted(this.#agent, { origin, path, method: 'POST', headers, body: JSON.stringify(body), signal });
    } catch (error) {
      if (error instanceof ProxylessError || signal.aborted) throw error;
      if (this.#closed || error instanceof undiciErrors.ClientDestroyedError || error instanceof undiciErrors.ClientClosedError) throw new ClosedError('etcd client');
      throw new EtcdUnreachableError(origin, { cause: error });
    }
    const text = await readCappedText(res.body, this.connection.maxResponseBytes, `etcd response for ${path}`);
    this.#answeredAt.set(origin, performance.now());
    let parsed: unknown;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : {};
    } catch (error) {
      // etcd's HTTP layer answers some refusals in plain text (e.g. a client certificate with a CN on the gateway).
      if (res.statusCode !== 200) throw new EtcdApiError(path, res.statusCode, undefined, text.trim().slice(0, 512));
      throw new BadResponseError(`etcd ${path} returned invalid JSON`, { cause: error });
    }
    if (res.statusCode !== 200) {
      const rec = isRecord(parsed) ? parsed : {};
      const code = typeof rec['code'] === 'number' ? rec['code'] : undefined;
      const message = typeof rec['message'] === 'string' ? rec['message'] : typeof rec['error'] === 'string' ? rec['error'] : text;
      throw new EtcdApiError(path, res.statusCode, code, message.slice(0, 512));
    }
    // A stream's failure (lease keepalive) comes as a 200 whose body is the error: the same rules apply.
    if (isRecord(parsed)) throwStreamError(path, parsed);
    return parsed;
  }

  /**
   * Sends one unary call (`path` like `/v3/kv/range`) with a JSON body and
   * returns the decoded answer. Moves to the next endpoint and tries again
   * (within the deadline) when one is unreachable or unavailable.
   * @throws {@link EtcdApiError}, {@link EtcdUnreachableError}, `TimeoutError`,
   *   `AbortedError`, `BadResponseError`, `ClosedError`.
   */
  async request(path: string, body: unknown, options: EtcdCallOptions = {}): Promise<Record<string, unknown>> {
    if (this.#closed) throw new ClosedError('etcd client');
    const pinned = options.endpoint;
    if (pinned !== undefined && !this.connection.endpoints.includes(pinned)) throw new InvalidOptionError('endpoint', pinned, 'must be one of the client\'s endpoints');
    const timeoutMs = options.timeoutMs ?? this.connection.timeoutMs;
    const linked = options.signal ? AbortSignal.any([options.signal, this.#closeController.signal]) : this.#closeController.signal;
    // A call someone awaits keeps the process alive until it settles (withDeadline's timer is ref'd
    // unless background): between rounds over unreachable members no socket is pending (an awaited
    // resolve() on an unreachable etcd let the process exit 0 after ~80 ms, the call unsettled).
    return await withDeadline(linked, timeoutMs, (signal) => this.#requestLoop(path, body, options, signal, timeoutMs), { background: options.background });
  }

  /** `signal` aborts on the caller's signal, on close() or at the deadline (after checking the first two, an abort is the deadline). */
  async #requestLoop(path: string, body: unknown, options: EtcdCallOptions, signal: AbortSignal, timeoutMs: number): Promise<Record<string, unknown>> {
    const pinned = options.endpoint;
    let reauthenticated = false;
    let lastError: unknown;
    // Every member of this round refused the connection (or the like); told once per call.
    let roundUnreachable = true;
    let toldUnreachable = false;
    for (let attempt = 0; ; attempt++) {
      const origin = pinned ?? this.endpoint;
      try {
        const answer = await this.#call(path, body, signal, true, origin);
        if (!isRecord(answer)) throw new BadResponseError(`etcd ${path} answer is not an object`);
        return answer;
      } catch (error) {
        // The deadline's own abort says nothing new: keep what the members answered (e.g. refused) as the cause.
        if (!signal.aborted || lastError === undefined) lastError = error;
        if (options.signal?.aborted) throw new AbortedError(`etcd ${path}`, options.signal.reason);
        if (this.#closed) throw new ClosedError('etcd client');
        if (signal.aborted) {
          // A member that let a call run out of time (stuck, or partitioned from its peers) is not asked first next time.
          if (pinned === undefined) this.#rotate(origin);
          throw new TimeoutError(`etcd ${path}`, timeoutMs, lastError instanceof Error && lastError !== signal.reason && lastError.name !== 'AbortError' ? lastError : undefined);
        }
        if (isCredentialRejected(error) && !reauthenticated && this.connection.username !== undefined) {
          // #call forgot the dead token: authenticate again, once.
          reauthenticated = true;
          continue;
        }
        const retryable = error instanceof EtcdUnreachableError || (error instanceof EtcdApiError && error.grpcCode === grpcCode.Unavailable);
        if (!retryable || pinned !== undefined) throw error;
        if (!(error instanceof EtcdUnreachableError)) roundUnreachable = false;
        this.#rotate(origin);
        // A full round over every endpoint failed: wait a little (an election takes ~1 s) before the next.
        if ((attempt + 1) % this.connection.endpoints.length === 0) {
          if (roundUnreachable && !toldUnreachable && error instanceof EtcdUnreachableError) {
            toldUnreachable = true;
            options.onUnreachable?.(error);
          }
          roundUnreachable = true;
          await sleep(Math.min(1000, 50 * 2 ** Math.min(attempt, 5)), signal);
        }
      }
    }
  }

  /**
   * Reads one key, or every key under a prefix (`prefix: true`). `serializable: true`
   * reads from the answering member without a quorum round (faster, may lag).
   * `revision` reads the store as it was at that revision (etcd refuses one
   * compacted away or in the future); `keysOnly` leaves the values out (empty).
   */
  async range(
    key: string | Buffer,
    options: EtcdCallOptions & { prefix?: boolean; serializable?: boolean; limit?: number; revision?: number; keysOnly?: boolean } = {},
  ): Promise<{ header: EtcdHeader; kvs: EtcdKeyValue[] }> {
    const k = typeof key === 'string' ? Buffer.from(key) : key;
    const body: Record<string, unknown> = { key: b64(k) };
    if (options.prefix) body['range_end'] = b64(prefixRangeEnd(k));
    if (options.serializable) body['serializable'] = true;
    if (options.limit !== undefined) body['limit'] = options.limit;
    if (options.revision !== undefined && options.revision > 0) body['revision'] = String(options.revision);
    if (options.keysOnly) body['keys_only'] = true;
    const answer = await this.request('/v3/kv/range', body, options);
    const kvs = answer['kvs'] ?? [];
    if (!Array.isArray(kvs)) throw new BadResponseError('etcd range answer has bad kvs');
    return { header: parseHeader(answer['header']), kvs: kvs.map(parseKv) };
  }

  /** Writes a key, attached to a lease when `lease` is given. */
  async put(key: string, value: string | Buffer, options: EtcdCallOptions & { lease?: string } = {}): Promise<EtcdHeader> {
    const body: Record<string, unknown> = { key: b64(key), value: b64(value) };
    if (options.lease !== undefined && options.lease !== '0') body['lease'] = options.lease;
    return parseHeader((await this.request('/v3/kv/put', body, options))['header']);
  }

  /** Deletes one key (or every key under it with `prefix`); returns how many were deleted. */
  async delete(key: string, options: EtcdCallOptions & { prefix?: boolean } = {}): Promise<{ header: EtcdHeader; deleted: number }> {
    const k = Buffer.from(key);
    const body: Record<string, unknown> = { key: b64(k) };
    if (options.prefix) body['range_end'] = b64(prefixRangeEnd(k));
    const answer = await this.request('/v3/kv/deleterange', body, options);
    return { header: parseHeader(answer['header']), deleted: int(answer['deleted'], 'deleted') };
  }

  /** Grants a lease of `ttlSeconds`; returns its ID (decimal string) and the TTL etcd granted. */
  async leaseGrant(ttlSeconds: number, options: EtcdCallOptions = {}): Promise<{ id: string; ttlSeconds: number }> {
    const answer = await this.request('/v3/lease/grant', { TTL: String(ttlSeconds) }, options);
    if (typeof answer['error'] === 'string' && answer['error'] !== '') throw new EtcdApiError('/v3/lease/grant', 200, undefined, answer['error'].slice(0, 512));
    const leaseId = id(answer['ID'], 'ID');
    if (leaseId === '0') throw new BadResponseError('etcd granted lease 0');
    return { id: leaseId, ttlSeconds: int(answer['TTL'], 'TTL') };
  }

  /**
   * Renews a lease once; returns the remaining TTL in seconds, **0 when the
   * lease no longer exists** (expired, revoked, or etcd lost its data). A
   * renewal etcd could not make (no leader, timed out forwarding it to the
   * leader) throws {@link EtcdApiError}: it says nothing about the lease.
   */
  async leaseKeepAlive(leaseId: string, options: EtcdCallOptions = {}): Promise<number> {
    // A bidirectional stream in gRPC; through the gateway one request, one answer, and a failure
    // arrives as a 200 whose body is `{"error": …}` (read as "TTL 0", it would pass for a lost lease).
    const answer = await this.request('/v3/lease/keepalive', { ID: leaseId }, options);
    const result = isRecord(answer['result']) ? answer['result'] : answer;
    return int(result['TTL'], 'TTL');
  }

  /** Revokes a lease: every key attached to it is deleted at once. A lease already gone is not an error. */
  async leaseRevoke(leaseId: string, options: EtcdCallOptions = {}): Promise<void> {
    try {
      await this.request('/v3/lease/revoke', { ID: leaseId }, options);
    } catch (error) {
      if (error instanceof EtcdApiError && /lease not found/i.test(error.etcdMessage)) return;
      throw error;
    }
  }

  /** Compacts the key-value history up to `revision` (tests, maintenance). */
  async compact(revision: number, options: EtcdCallOptions = {}): Promise<void> {
    await this.request('/v3/kv/compaction', { revision: String(revision), physical: true }, options);
  }

  /**
   * Opens one watch stream on the active endpoint and yields its messages
   * until the stream ends, fails or `signal` aborts. No retries, but one: a
   * watch refused for a dead token (HTTP 401, or canceled as unauthenticated)
   * before it yielded anything logs in again and opens once more from the
   * same revision, as every other call does. Otherwise the caller (a
   * resolver's loop) decides where to resume. A canceled message is yielded
   * only for compaction (`compactRevision`); any other cancel is thrown as
   * the {@link EtcdApiError} its reason names.
   *
   * The watch asks etcd to end it when the member loses its leader (a member
   * cut off from the cluster would otherwise keep the stream open and send
   * nothing), and for progress notifications. With `idleTimeoutMs`, a stream
   * silent that long is checked: the member must answer a linearizable read
   * within the client's `timeoutMs` (one check per endpoint serves every
   * stream on it), or the stream ends with {@link EtcdUnreachableError} and
   * the next watch goes to the next endpoint: a stuck member is noticed
   * within `idleTimeoutMs + timeoutMs`, not when TCP gives up.
   * @param create - the watch's create request: `key`/`prefix`, and `startRevision` (inclusive) to resume.
   */
  async *watch(
    create: { key: string | Buffer; prefix?: boolean; startRevision?: number; progressNotify?: boolean },
    options: { signal: AbortSignal; connectTimeoutMs?: number; idleTimeoutMs?: number },
  ): AsyncGenerator<EtcdWatchResponse, void, undefined> {
    for (let reauthenticated = false; ; reauthenticated = true) {
      let yielded = false;
      try {
        for await (const message of this.#watchOnce(create, options)) {
          yielded = true;
          yield message;
        }
        return;
      } catch (error) {
        // #watchOnce forgot the dead token.
        if (yielded || reauthenticated || !isCredentialRejected(error) || this.connection.username === undefined) throw error;
      }
    }
  }

  async *#watchOnce(
    create: { key: string | Buffer; prefix?: boolean; startRevision?: number; progressNotify?: boolean },
    options: { signal: AbortSignal; connectTimeoutMs?: number; idleTimeoutMs?: number },
  ): AsyncGenerator<EtcdWatchResponse, void, undefined> {
    if (this.#closed) throw new ClosedError('etcd client');
    const k = typeof create.key === 'string' ? Buffer.from(create.key) : create.key;
    const request: Record<string, unknown> = { key: b64(k) };
    if (create.prefix) request['range_end'] = b64(prefixRangeEnd(k));
    if (create.startRevision !== undefined && create.startRevision > 0) request['start_revision'] = String(create.startRevision);
    if (create.progressNotify) request['progress_notify'] = true;
    const signal = AbortSignal.any([options.signal, this.#closeController.signal]);
    const origin = this.endpoint;
    const connectTimeoutMs = options.connectTimeoutMs ?? this.connection.timeoutMs;
    // gRPC metadata through the gateway: etcd cancels the watch when this member has no leader.
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json', 'grpc-metadata-hasleader': 'true' };
    // The connect deadline covers authentication and the response headers; the stream itself lives on.
    const controller = new AbortController();
    let connectTimedOut = false;
    let token: string | undefined;
    let res;
    try {
      res = await withDeadline(signal, connectTimeoutMs, async (connect) => {
        token = await this.#authToken(connect);
        if (token !== undefined) headers['authorization'] = token;
        const onConnectAbort = (): void => {
          connectTimedOut = !signal.aborted;
          controller.abort(connect.reason);
        };
        connect.addEventListener('abort', onConnectAbort, { once: true });
        try {
          return await requestUntilAborted(this.#watchAgent, { origin, path: '/v3/watch', method: 'POST', headers, body: JSON.stringify({ create_request: request }), signal: controller.signal });
        } finally {
          connect.removeEventListener('abort', onConnectAbort);
        }
      }, { background: true });
      signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
      if (signal.aborted) controller.abort(signal.reason);
    } catch (error) {
      if (options.signal.aborted) throw new AbortedError('etcd watch', options.signal.reason);
      if (this.#closed) throw new ClosedError('etcd client');
      this.#rotate(origin);
      if (connectTimedOut || error instanceof TimeoutError) throw new TimeoutError(`etcd watch at ${origin}`, connectTimeoutMs);
      if (error instanceof ProxylessError) throw error;
      throw new EtcdUnreachableError(origin, { cause: error });
    }
    if (res.statusCode !== 200) {
      const text = await readCappedText(res.body, this.connection.maxResponseBytes, 'etcd response for /v3/watch').catch(() => '');
      this.#rotate(origin);
      let code: number | undefined;
      try {
        const parsed = JSON.parse(text) as unknown;
        if (isRecord(parsed) && typeof parsed['code'] === 'number') code = parsed['code'];
      } catch {
        // keep the text
      }
      const refused = new EtcdApiError('/v3/watch', res.statusCode, code, text.slice(0, 512));
      this.#forgetIfRejected(refused, token);
      throw refused;
    }
    const limit = this.connection.maxResponseBytes;
    let pending = '';
    let stalled: EtcdUnreachableError | undefined;
    const idleTimeoutMs = options.idleTimeoutMs;
    const idle = idleTimeoutMs === undefined ? undefined : new IdleCheck(idleTimeoutMs, async () => {
      try {
        await this.#checkEndpoint(origin, k, idleTimeoutMs);
      } catch (error) {
        if (signal.aborted) return;
        stalled = new EtcdUnreachableError(origin, { cause: new Error(`watch silent for ${idleTimeoutMs} ms and the member did not answer: ${describeCause(error)}`) });
        controller.abort(stalled);
      }
    });
    try {
      for await (const chunk of res.body) {
        idle?.touch();
        pending += (chunk as Buffer).toString('utf8');
        if (pending.length > limit) throw new BadResponseError(`etcd watch message exceeds ${limit} bytes`);
        let newline: number;
        while ((newline = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line.length === 0) continue;
          let message: unknown;
          try {
            message = JSON.parse(line);
          } catch (error) {
            throw new BadResponseError('etcd watch message is not JSON', { cause: error });
          }
          const parsed = parseWatchMessage(message);
          if (parsed.canceled && parsed.compactRevision === 0) throw watchCanceledError(parsed.cancelReason);
          yield parsed;
        }
      }
    } catch (error) {
      if (options.signal.aborted) throw new AbortedError('etcd watch', options.signal.reason);
      if (this.#closed) throw new ClosedError('etcd client');
      if (stalled) {
        this.#rotate(origin);
        throw stalled;
      }
      if (error instanceof ProxylessError) {
        this.#forgetIfRejected(error, token);
        throw error;
      }
      this.#rotate(origin);
      throw new EtcdUnreachableError(origin, { cause: error });
    } finally {
      idle?.stop();
      res.body.destroy();
    }
    // The server ended the stream (member stopping): the next watch goes elsewhere.
    this.#rotate(origin);
  }

  /**
   * Does `origin` still answer a linearizable read (which needs a leader)? One
   * check at a time per endpoint, and none when it answered anything within
   * the last `recentMs`: every watch stream on an endpoint shares the answer.
   * Bounded by the client's `timeoutMs`.
   */
  async #checkEndpoint(origin: string, key: Buffer, recentMs: number): Promise<void> {
    const answeredAt = this.#answeredAt.get(origin);
    if (answeredAt !== undefined && performance.now() - answeredAt < recentMs) return;
    let check = this.#checks.get(origin);
    if (!check) {
      check = this.range(key, { limit: 1, endpoint: origin, signal: this.#closeController.signal, background: true }).then(() => undefined);
      this.#checks.set(origin, check);
      void check.catch(() => undefined).finally(() => this.#checks.delete(origin));
    }
    await check;
  }

  /** Cancels in-flight calls and watches and closes every connection. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeController.abort(new ClosedError('etcd client'));
    await Promise.all([this.#agent.destroy(), this.#watchAgent.destroy()]);
  }

  /** Same as {@link EtcdClient.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
