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
 * handshake goes over `node:http` (a fresh connection, `agent: false`):
 * unlike undici's `upgrade()`, it hands back a non-`101` answer, which the
 * client then gets as the instance sent it.
 */
import { request as httpRequest, STATUS_CODES, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { FilterContext } from './filters.js';
import type { UpgradeCounters } from './status-page.js';
import type { Upstream } from './upstreams.js';


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

  counters(): UpgradeCounters {
    return { requests: this.#requests, upgraded: this.#upgraded, open: this.#tunnels.size, failed: this.#failed };
  }

  /**
   * Sends the upgrade request of `ctx` (filters already run) to an instance of
   * `upstream`. `socket` is the client's raw socket, `head` the bytes read past
   * the request's headers. Handshake deadline: the route's `timeoutMs`.
   */
  async forward(ctx: FilterContext, upstream: Upstream, socket: Duplex, head: Buffer): Promise<void> {
    this.#requests++;
    const req = ctx.req;
    const timeoutMs = ctx.route.timeoutMs;
    const labels = await upstream.connectable(timeoutMs);
    if (socket.destroyed) return;
    if (labels.length === 0) {
      this.#fail(socket, 503, 'service_unavailable', `no ready instance of ${ctx.route.service}`, ctx.requestId);
      return;
    }
    const headers: Record<string, string | string[]> = { ...ctx.upstreamHeaders, connection: 'upgrade', upgrade: String(req.headers.upgrade) };
    const tried = new Set<string>();
    let lastError: Error | undefined;
    for (let attempt = 0; attempt < Math.min(maxConnectTries, labels.length); attempt++) {
      const endpoint = this.#pick(labels, tried);
      tried.add(endpoint);
      const outcome = await this.#handshake(endpoint, req.method ?? 'GET', ctx.upstreamPath, headers, socket, timeoutMs);
      if (outcome.kind === 'upgraded') {
        this.#join(socket, head, outcome.res, outcome.socket, outcome.head, endpoint, req.headers.upgrade?.toLowerCase() === 'websocket');
        return;
      }
      if (outcome.kind === 'answered') {
        relayAnswer(socket, outcome.res);
        return;
      }
      if (outcome.kind === 'gone') return;
      lastError = outcome.error;
      // A timeout may have reached the instance; only a connection never made is tried elsewhere.
      if (outcome.kind === 'timeout' || !outcome.refused) break;
    }
    const timedOut = lastError?.name === 'TimeoutError';
    this.#fail(socket, timedOut ? 504 : 502, timedOut ? 'gateway_timeout' : 'bad_gateway', lastError?.message ?? 'upgrade failed', ctx.requestId);
  }

  /** The ready endpoint with the fewest open tunnels, not yet tried; ties in turn. */
  #pick(labels: readonly string[], tried: ReadonlySet<string>): string {
    let best: string | undefined;
    let bestOpen = Infinity;
    const start = this.#turn++ % labels.length;
    for (let i = 0; i < labels.length; i++) {
      const label = labels[(start + i) % labels.length] as string;
      if (tried.has(label)) continue;
      const open = this.#perEndpoint.get(label) ?? 0;
      if (open < bestOpen) {
        best = label;
        bestOpen = open;
      }
    }
    return best ?? (labels[0] as string);
  }

  #handshake(endpoint: string, method: string, path: string, headers: Record<string, string | string[]>, client: Duplex, timeoutMs: number): Promise<Handshake> {
    const colon = endpoint.lastIndexOf(':');
    const host = endpoint.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(endpoint.slice(colon + 1));
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
      const upstreamReq: ClientRequest = httpRequest({ host, port, method, path, headers, agent: false });
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
        settle({ kind: 'failed', error: new Error(`the upgrade to ${endpoint} failed: ${error.message}`, { cause: error }), refused: !connected });
      });
      upstreamReq.end();
    });
  }

  /** Writes the instance's `101` to the client and joins the sockets both ways, with backpressure. */
  #join(client: Duplex, clientHead: Buffer, res: IncomingMessage, upstream: Duplex, upstreamHead: Buffer, endpoint: string, websocket: boolean): void {
    const tunnel: Tunnel = { client, upstream, endpoint, websocket, frames: new FrameCursor(), goingAway: false, closeSent: false };
    this.#upgraded++;
    this.#tunnels.add(tunnel);
    this.#perEndpoint.set(endpoint, (this.#perEndpoint.get(endpoint) ?? 0) + 1);
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      client.destroy();
      upstream.destroy();
      this.#tunnels.delete(tunnel);
      const left = (this.#perEndpoint.get(endpoint) ?? 1) - 1;
      if (left === 0) this.#perEndpoint.delete(endpoint);
      else this.#perEndpoint.set(endpoint, left);
    };
    // Either side failing or closing ends both: nothing half-open is left behind.
    client.on('error', close).once('close', close);
    upstream.on('error', close).once('close', close);
    if (client.destroyed || upstream.destroyed) {
      close();
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
    client.pipe(upstream);
  }

  /** Forwards instance bytes; on drain, stops at the next frame boundary and sends the close frame. Returns false when the client's buffer is full. */
  #toClient(tunnel: Tunnel, chunk: Buffer): boolean {
    if (tunnel.closeSent) return true; // the instance's bytes after our close frame are dropped
    if (!tunnel.goingAway) {
      tunnel.frames.feed(chunk);
      return tunnel.client.write(chunk);
    }
    const upTo = tunnel.frames.feed(chunk, true);
    if (upTo > 0) tunnel.client.write(chunk.subarray(0, upTo));
    if (tunnel.frames.atBoundary) this.#sendClose(tunnel);
    return true;
  }

  #sendClose(tunnel: Tunnel): void {
    tunnel.closeSent = true;
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

/** The instance's non-`101` answer to an upgrade, passed on (body up to 64 KiB; the connection then closes). */
function relayAnswer(socket: Duplex, res: IncomingMessage): void {
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= 65_536) chunks.push(chunk);
    else res.destroy();
  });
  const done = (): void => {
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
  };
  res.once('end', done);
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
  /** Bytes of a header split across chunks. */
  #header: Buffer = Buffer.alloc(0);
  /** Payload bytes left in the current frame. */
  #remaining = 0;

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
    }
    return at;
  }
}

function parseHeader(b: Buffer): { headerLength: number; payloadLength: number } | undefined {
  if (b.length < 2) return undefined;
  const masked = ((b[1] as number) & 0x80) !== 0;
  const len7 = (b[1] as number) & 0x7f;
  const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
  const headerLength = 2 + ext + (masked ? 4 : 0);
  if (b.length < headerLength) return undefined;
  const payloadLength = len7 === 126 ? b.readUInt16BE(2) : len7 === 127 ? Number(b.readBigUInt64BE(2)) : len7;
  return { headerLength, payloadLength };
}
