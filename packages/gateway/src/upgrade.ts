/**
 * Protocol upgrades (WebSocket) through the gateway: the upgrade request goes
 * to one instance of the route's service, and once it answers `101` the two
 * sockets are joined byte for byte until either side closes.
 *
 * The instance is picked here, not by the balancing client: an upgraded
 * connection is not an HTTP exchange the client (or its undici dispatcher,
 * which refuses `upgrade`) can send. The pick reads the client's endpoint set
 * (only ready endpoints: breaker closed, not ejected, still registered, so a
 * draining instance is out) and takes the one with the fewest open tunnels
 * (least connections, what HAProxy advises for long-lived connections). The
 * handshake goes over `node:http` (a fresh connection, `agent: false`), or
 * `node:https` to an instance that speaks HTTPS (as the balancing client
 * decides it: meta `scheme: https` or the tag `https`), with the `backends`
 * CA, client certificate and server name and the certificate checked: unlike
 * undici's `upgrade()`, it hands back a non-`101` answer, which the client
 * then gets as the instance sent it.
 */
import { request as httpRequest, STATUS_CODES, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { FilterContext } from './filters.js';
import type { UpgradeCounters } from './status-page.js';
import type { ConnectTarget, Upstream } from './upstreams.js';
import type { backendClientOptions } from './tls.js';

/** The `backends` TLS settings, files read. */
type BackendTls = ReturnType<typeof backendClientOptions>['tls'];

/** How an upgrade ended, for its access log line. */
export interface UpgradeEnd {
  /** The status the client got: 101 (a tunnel, now closed), the instance's refusal, the gateway's 502/503/504, or 0 (the client left first). */
  readonly status: number;
  /** The instance that answered or was tried last (`address:port`), or null. */
  readonly endpoint: string | null;
  /** Instances tried. */
  readonly attempts: number;
  /** A tunnel's end: which side ended it first. */
  readonly closedBy?: TunnelCloser;
  /** A WebSocket tunnel's end: the code of the close frame sent to the client (the instance's, or the gateway's 1001), null if none. */
  readonly closeCode?: number | null;
}

/** Which side ended a tunnel: the client, the instance, or the gateway (its drain, or a failed write). */
export type TunnelCloser = 'client' | 'upstream' | 'gateway';


/** WebSocket close code 1001 "going away": the server is shutting down (RFC 6455 §7.4.1). */
const goingAway = 1001;

/** How many instances an upgrade tries when connections are refused. */
const maxConnectTries = 3;

/** One joined client ↔ instance connection. */
interface Tunnel {
  readonly client: Duplex;
  readonly upstream: Duplex;
  readonly endpoint: string;
  /** The protocol is WebSocket: the gateway can close it with a close frame. */
  readonly websocket: boolean;
  /** Frame boundaries of the instance → client direction, so a close frame never lands inside a frame. */
  readonly frames: FrameCursor;
  /** Set on drain: send the close frame at the next frame boundary. */
  goingAway: boolean;
  /** The close frame was written to the client. */
  closeSent: boolean;
  /** Who ended it first. */
  closedBy: TunnelCloser | undefined;
}

/** Joins upgrade requests to instances, counts them, and closes them with 1001 on drain. */
export class UpgradeProxy {
  readonly #tunnels = new Set<Tunnel>();
  /** Open tunnels per endpoint label, for the least-connections pick. */
  readonly #perEndpoint = new Map<string, number>();
  #requests = 0;
  #upgraded = 0;
  #failed = 0;
  #turn = 0;
  /** TLS to HTTPS instances: the `backends` CA, client certificate and server name. */
  readonly #tls: BackendTls;

  constructor(tls?: BackendTls) {
    this.#tls = tls;
  }

  counters(): UpgradeCounters {
    return { requests: this.#requests, upgraded: this.#upgraded, open: this.#tunnels.size, failed: this.#failed };
  }

  /**
   * Sends the upgrade request of `ctx` (filters already run) to an instance of
   * `upstream`. `socket` is the client's raw socket, `head` the bytes read past
   * the request's headers. Handshake deadline: the route's `timeoutMs`.
   * `ended` hears how it ended, once: at the answer, or at a tunnel's close.
   */
  async forward(ctx: FilterContext, upstream: Upstream, socket: Duplex, head: Buffer, ended: (end: UpgradeEnd) => void = () => undefined): Promise<void> {
    this.#requests++;
    const req = ctx.req;
    const timeoutMs = ctx.route.timeoutMs;
    const targets = await upstream.connectable(timeoutMs);
    if (socket.destroyed) {
      ended({ status: 0, endpoint: null, attempts: 0 });
      return;
    }
    if (targets.length === 0) {
      this.#fail(socket, 503, 'service_unavailable', `no ready instance of ${ctx.route.service}`, ctx.requestId);
      ended({ status: 503, endpoint: null, attempts: 0 });
      return;
    }
    const headers: Record<string, string | string[]> = { ...ctx.upstreamHeaders, connection: 'upgrade', upgrade: String(req.headers.upgrade) };
    const tried = new Set<string>();
    let lastError: Error | undefined;
    let target: ConnectTarget | undefined;
    for (let attempt = 0; attempt < Math.min(maxConnectTries, targets.length); attempt++) {
      target = this.#pick(targets, tried);
      tried.add(target.label);
      const outcome = await this.#handshake(target, req.method ?? 'GET', ctx.upstreamPath, headers, socket, timeoutMs);
      if (outcome.kind === 'upgraded') {
        this.#join(socket, head, outcome.res, outcome.socket, outcome.head, target.label, req.headers.upgrade?.toLowerCase() === 'websocket', (closedBy, closeCode) =>
          ended({ status: 101, endpoint: target?.label ?? null, attempts: tried.size, closedBy, closeCode }));
        return;
      }
      if (outcome.kind === 'answered') {
        relayAnswer(socket, outcome.res, () => ended({ status: outcome.res.statusCode ?? 502, endpoint: target?.label ?? null, attempts: tried.size }));
        return;
      }
      if (outcome.kind === 'gone') {
        ended({ status: 0, endpoint: target.label, attempts: tried.size });
        return;
      }
      lastError = outcome.error;
      // A timeout may have reached the instance; only a connection never made is tried elsewhere.
      if (outcome.kind === 'timeout' || !outcome.refused) break;
    }
    const timedOut = lastError?.name === 'TimeoutError';
    this.#fail(socket, timedOut ? 504 : 502, timedOut ? 'gateway_timeout' : 'bad_gateway', lastError?.message ?? 'upgrade failed', ctx.requestId);
    ended({ status: timedOut ? 504 : 502, endpoint: target?.label ?? null, attempts: tried.size });
  }

  /** The ready endpoint with the fewest open tunnels, not yet tried; ties in turn. */
  #pick(targets: readonly ConnectTarget[], tried: ReadonlySet<string>): ConnectTarget {
    let best: ConnectTarget | undefined;
    let bestOpen = Infinity;
    const start = this.#turn++ % targets.length;
    for (let i = 0; i < targets.length; i++) {
      const target = targets[(start + i) % targets.length] as ConnectTarget;
      if (tried.has(target.label)) continue;
      const open = this.#perEndpoint.get(target.label) ?? 0;
      if (open < bestOpen) {
        best = target;
        bestOpen = open;
      }
    }
    return best ?? (targets[0] as ConnectTarget);
  }

  #handshake(target: ConnectTarget, method: string, path: string, headers: Record<string, string | string[]>, client: Duplex, timeoutMs: number): Promise<Handshake> {
    const endpoint = target.label;
    const { host, port } = target;
    return new Promise<Handshake>((resolve) => {
      let settled = false;
      const settle = (outcome: Handshake): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        client.off('close', onClientClose);
        resolve(outcome);
      };
      let connected = false;
      // TLS as the HTTP path has it (undici's connector): the backends' CA (else Node's roots), client certificate and
      // server name, the certificate always checked; no ALPN offered, so the instance speaks HTTP/1.1 (no upgrade in HTTP/2).
      const tls = this.#tls;
      const upstreamReq: ClientRequest = target.tls
        ? httpsRequest({ host, port, method, path, headers, agent: false, ca: tls?.ca, cert: tls?.cert, key: tls?.key, ...(tls?.servername ? { servername: tls.servername } : {}), rejectUnauthorized: true })
        : httpRequest({ host, port, method, path, headers, agent: false });
      upstreamReq.once('socket', (s: Socket) => s.once('connect', () => (connected = true)));
      const timer = setTimeout(() => {
        const error = new Error(`the instance ${endpoint} did not answer the upgrade within ${timeoutMs} ms (the route's timeoutMs)`);
        error.name = 'TimeoutError';
        upstreamReq.destroy();
        settle({ kind: 'timeout', error });
      }, timeoutMs);
      // The client leaving during the handshake abandons it.
      const onClientClose = (): void => {
        upstreamReq.destroy();
        settle({ kind: 'gone' });
      };
      client.once('close', onClientClose);
      upstreamReq.once('upgrade', (res: IncomingMessage, socket: Duplex, head: Buffer) => settle({ kind: 'upgraded', res, socket, head }));
      upstreamReq.once('response', (res: IncomingMessage) => settle({ kind: 'answered', res }));
      upstreamReq.on('error', (error: Error) => {
        // A TLS failure (an untrusted or mismatched certificate) comes after the TCP connect: not retried elsewhere.
        settle({ kind: 'failed', error: new Error(`the upgrade to ${endpoint}${target.tls ? ' (TLS)' : ''} failed: ${error.message}`, { cause: error }), refused: !connected });
      });
      upstreamReq.end();
    });
  }

  /** Writes the instance's `101` to the client and joins the sockets both ways, with backpressure. */
  #join(client: Duplex, clientHead: Buffer, res: IncomingMessage, upstream: Duplex, upstreamHead: Buffer, endpoint: string, websocket: boolean, ended: (closedBy: TunnelCloser, closeCode: number | null) => void): void {
    const tunnel: Tunnel = { client, upstream, endpoint, websocket, frames: new FrameCursor(), goingAway: false, closeSent: false, closedBy: undefined };
    this.#upgraded++;
    this.#tunnels.add(tunnel);
    this.#perEndpoint.set(endpoint, (this.#perEndpoint.get(endpoint) ?? 0) + 1);
    let closed = false;
    const close = (by: TunnelCloser): void => {
      if (closed) return;
      closed = true;
      tunnel.closedBy ??= by;
      client.destroy();
      upstream.destroy();
      this.#tunnels.delete(tunnel);
      const left = (this.#perEndpoint.get(endpoint) ?? 1) - 1;
      if (left === 0) this.#perEndpoint.delete(endpoint);
      else this.#perEndpoint.set(endpoint, left);
      ended(tunnel.closedBy, websocket ? tunnel.frames.closeCode : null);
    };
    const byClient = (): void => close('client');
    const byUpstream = (): void => close('upstream');
    // Either side failing or closing ends both: nothing half-open is left behind. A side ending its half first is the one that closed.
    client.on('error', byClient).once('close', byClient).once('end', () => (tunnel.closedBy ??= 'client'));
    upstream.on('error', byUpstream).once('close', byUpstream).once('end', () => (tunnel.closedBy ??= 'upstream'));
    if (client.destroyed || upstream.destroyed) {
      close(client.destroyed ? 'client' : 'upstream');
      return;
    }
    setNoDelay(client);
    setNoDelay(upstream);
    client.write(`HTTP/1.1 101 ${res.statusMessage ?? 'Switching Protocols'}\r\n${rawHeaderLines(res.rawHeaders)}\r\n`);
    if (upstreamHead.length > 0) this.#toClient(tunnel, upstreamHead);
    if (clientHead.length > 0) upstream.write(clientHead);
    // Instance → client goes through the frame cursor (for a clean 1001 on drain); client → instance is a plain pipe.
    upstream.on('data', (chunk: Buffer) => {
      if (!this.#toClient(tunnel, chunk)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    upstream.once('end', () => client.end());
    if (websocket) {
      // The client's frame headers only, for who began the close handshake (the side that sends the first close frame).
      const frames = new FrameCursor();
      const watch = (chunk: Buffer): void => {
        frames.feed(chunk);
        if (!frames.closeSeen) return;
        tunnel.closedBy ??= 'client';
        client.off('data', watch);
      };
      if (clientHead.length > 0) watch(clientHead);
      client.on('data', watch);
    }
    client.pipe(upstream);
  }

  /** Forwards instance bytes; on drain, stops at the next frame boundary and sends the close frame. Returns false when the client's buffer is full. */
  #toClient(tunnel: Tunnel, chunk: Buffer): boolean {
    if (tunnel.closeSent) return true; // the instance's bytes after our close frame are dropped
    if (!tunnel.goingAway) {
      tunnel.frames.feed(chunk);
      if (tunnel.frames.closeSeen) tunnel.closedBy ??= 'upstream';
      return tunnel.client.write(chunk);
    }
    const upTo = tunnel.frames.feed(chunk, true);
    if (upTo > 0) tunnel.client.write(chunk.subarray(0, upTo));
    if (tunnel.frames.atBoundary) this.#sendClose(tunnel);
    return true;
  }

  #sendClose(tunnel: Tunnel): void {
    tunnel.closeSent = true;
    tunnel.closedBy ??= 'gateway';
    tunnel.frames.closeCode ??= goingAway;
    tunnel.client.write(closeFrame(goingAway, 'gateway shutting down'));
  }

  /**
   * Ends every tunnel: WebSocket clients get a close frame 1001 ("going away")
   * at the next frame boundary, and their close reply still reaches the
   * instance; whatever is open after `graceMs` is destroyed.
   */
  async drain(graceMs: number): Promise<void> {
    if (this.#tunnels.size === 0) return;
    for (const tunnel of this.#tunnels) {
      if (!tunnel.websocket) continue;
      tunnel.goingAway = true;
      if (tunnel.frames.atBoundary) this.#sendClose(tunnel);
    }
    const deadline = Date.now() + Math.max(graceMs, 0);
    while (this.#tunnels.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20).unref());
    for (const tunnel of [...this.#tunnels]) {
      tunnel.closedBy ??= 'gateway';
      tunnel.client.destroy();
      tunnel.upstream.destroy();
    }
  }

  #fail(socket: Duplex, status: number, error: string, message: string, requestId: string): void {
    this.#failed++;
    writeRawJson(socket, status, { error, message, requestId });
  }
}

type Handshake =
  | { kind: 'upgraded'; res: IncomingMessage; socket: Duplex; head: Buffer }
  | { kind: 'answered'; res: IncomingMessage }
  | { kind: 'failed'; error: Error; refused: boolean }
  | { kind: 'timeout'; error: Error }
  | { kind: 'gone' };

/** An answer on a raw socket (an upgrade request has no `ServerResponse`), then the socket ends. */
export function writeRawJson(socket: Duplex, status: number, body: Record<string, unknown>): void {
  if (socket.destroyed) return;
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}

/** The instance's non-`101` answer to an upgrade, passed on (body up to 64 KiB; the connection then closes); `done` once sent or abandoned. */
function relayAnswer(socket: Duplex, res: IncomingMessage, done: () => void): void {
  let reported = false;
  const report = (): void => {
    if (reported) return;
    reported = true;
    done();
  };
  socket.once('close', report);
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= 65_536) chunks.push(chunk);
    else res.destroy();
  });
  const send = (): void => {
    if (socket.destroyed) return;
    const body = Buffer.concat(chunks);
    const kept: string[] = [];
    for (let i = 0; i < res.rawHeaders.length; i += 2) {
      const name = (res.rawHeaders[i] as string).toLowerCase();
      if (name === 'content-length' || name === 'transfer-encoding' || name === 'connection' || name === 'keep-alive' || name === 'upgrade') continue;
      kept.push(res.rawHeaders[i] as string, res.rawHeaders[i + 1] as string);
    }
    socket.write(`HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}\r\n${rawHeaderLines(kept)}content-length: ${body.length}\r\nconnection: close\r\n\r\n`);
    socket.end(body);
    report();
  };
  res.once('end', send);
  res.once('error', () => socket.destroy());
  res.once('close', () => {
    if (!res.complete) socket.destroy();
  });
}

function rawHeaderLines(raw: readonly string[]): string {
  let out = '';
  for (let i = 0; i + 1 < raw.length; i += 2) out += `${raw[i] as string}: ${raw[i + 1] as string}\r\n`;
  return out;
}

function setNoDelay(stream: Duplex): void {
  (stream as Partial<Socket>).setNoDelay?.(true);
}

/** An unmasked close frame (server → client): code and a short reason (RFC 6455 §5.5.1). */
export function closeFrame(code: number, reason: string): Buffer {
  const text = Buffer.from(reason).subarray(0, 123);
  const frame = Buffer.alloc(4 + text.length);
  frame[0] = 0x88; // FIN + opcode 8 (close)
  frame[1] = 2 + text.length;
  frame.writeUInt16BE(code, 2);
  text.copy(frame, 4);
  return frame;
}

/**
 * Follows WebSocket frame boundaries in one direction of a byte stream
 * without copying payloads: the header is parsed, the payload counted.
 */
export class FrameCursor {
  /** The status code of the first close frame read (or set by the gateway sending its own); null before one, or for a close frame without a code. */
  closeCode: number | null = null;
  /** A close frame's header was read. */
  closeSeen = false;
  /** Bytes of a header split across chunks. */
  #header: Buffer = Buffer.alloc(0);
  /** Payload bytes left in the current frame. */
  #remaining = 0;
  /** The first close frame's code bytes read so far, while its payload is being read (unmasked: server → client). */
  #code: number[] | undefined;

  /** No frame is partly sent. */
  get atBoundary(): boolean {
    return this.#remaining === 0 && this.#header.length === 0;
  }

  /**
   * Reads `chunk`; returns how many of its bytes were read: all of them, or
   * with `stopAtBoundary`, up to the first frame boundary.
   */
  feed(chunk: Buffer, stopAtBoundary = false): number {
    let at = 0;
    while (at < chunk.length) {
      if (stopAtBoundary && this.atBoundary) return at;
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - at);
        const code = this.#code;
        if (code !== undefined) {
          for (let i = at; i < at + take && code.length < 2; i++) code.push(chunk[i] as number);
          if (code.length === 2) {
            this.closeCode ??= ((code[0] as number) << 8) | (code[1] as number);
            this.#code = undefined;
          }
        }
        this.#remaining -= take;
        at += take;
        continue;
      }
      // In a header: gather enough bytes to know its length.
      const need = Math.min(14, chunk.length - at + this.#header.length);
      const header = this.#header.length === 0 ? chunk.subarray(at, at + need) : Buffer.concat([this.#header, chunk.subarray(at, at + need - this.#header.length)]);
      const parsed = parseHeader(header);
      if (!parsed) {
        // Not enough bytes for the header yet: keep what there is.
        this.#header = Buffer.from(header);
        return chunk.length;
      }
      at += parsed.headerLength - this.#header.length;
      this.#header = Buffer.alloc(0);
      this.#remaining = parsed.payloadLength;
      if (parsed.opcode === 8) {
        this.closeSeen = true;
        // Its code: the first two payload bytes, read as is from the instance's unmasked frames (a client's are masked).
        if (!parsed.masked && parsed.payloadLength >= 2 && this.closeCode === null) this.#code = [];
      }
    }
    return at;
  }
}

function parseHeader(b: Buffer): { headerLength: number; payloadLength: number; opcode: number; masked: boolean } | undefined {
  if (b.length < 2) return undefined;
  const masked = ((b[1] as number) & 0x80) !== 0;
  const len7 = (b[1] as number) & 0x7f;
  const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
  const headerLength = 2 + ext + (masked ? 4 : 0);
  if (b.length < headerLength) return undefined;
  const payloadLength = len7 === 126 ? b.readUInt16BE(2) : len7 === 127 ? Number(b.readBigUInt64BE(2)) : len7;
  return { headerLength, payloadLength, opcode: (b[0] as number) & 0x0f, masked };
}
