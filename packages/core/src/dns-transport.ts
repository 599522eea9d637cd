import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { isIP, connect } from 'node:net';
import * as dnsPacket from 'dns-packet';
import { BadResponseError } from './consul-http.js';
import { AbortedError, ClosedError, InvalidOptionError, ProxylessError, TimeoutError, errorBrand } from './errors.js';
import { checkNumber } from './validate.js';

/** A DNS server to ask: an IP literal and a port. */
export interface DnsServer {
  /** IPv4 or IPv6 literal (answers are matched against it). */
  host: string;
  /** Default 53. */
  port?: number;
}

/** Options of {@link DnsTransport}. */
export interface DnsTransportOptions {
  /** Servers, tried in turn. Default: the local Consul agent, `127.0.0.1:8600`. */
  servers?: readonly (DnsServer | string)[];
  /** Time limit per attempt on one server, in ms (at most 600 000). Default 2000. */
  timeoutMs?: number;
  /** Rounds over the server list before giving up. Default 2. */
  attempts?: number;
  /** EDNS0 UDP payload size advertised. Default 4096 (without EDNS, Consul cuts answers to 3 records). */
  udpPayloadSize?: number;
}

/** A DNS server answered with an error code other than NXDOMAIN (SERVFAIL, REFUSED…). */
export class DnsRcodeError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_DNS_RCODE');

  override get name(): string {
    return 'DnsRcodeError';
  }

  /** The response code, e.g. `SERVFAIL`. */
  readonly rcode: string;

  constructor(name: string, rcode: string) {
    super('ERR_DNS_RCODE', `DNS query for ${name} answered ${rcode}`);
    this.rcode = rcode;
  }
}

/** Record types this transport asks for. */
export type DnsQueryType = 'SRV' | 'A' | 'AAAA';

/** A decoded DNS message, with the header fields dns-packet decodes but does not type. */
export type DnsMessage = dnsPacket.Packet & {
  /** Response code, e.g. `NOERROR`, `NXDOMAIN`. */
  rcode?: string;
  /** Truncated (TC bit). */
  flag_tc?: boolean;
};

/** One decoded, matched answer. */
export interface DnsAnswer {
  readonly packet: DnsMessage;
  /** The server that answered. */
  readonly server: Readonly<Required<DnsServer>>;
  /** True when the UDP answer was truncated and this one came over TCP. */
  readonly viaTcp: boolean;
}

/**
 * Decodes a DNS message, converting every decoder failure (dns-packet throws
 * RangeError and plain Errors on truncation or bad pointers) into a
 * {@link BadResponseError}.
 * @internal
 */
export function decodeDnsMessage(message: Buffer): DnsMessage {
  if (message.length < 12) throw new BadResponseError(`DNS message too short (${message.length} bytes)`);
  try {
    return dnsPacket.decode(message);
  } catch (error) {
    throw new BadResponseError('DNS message could not be decoded', { cause: error });
  }
}

function normaliseName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/**
 * True when `packet` is the response to our question: QR set, same ID, exactly
 * our question (name case-insensitively, type, class IN).
 * @internal
 */
export function matchesQuery(packet: dnsPacket.Packet, id: number, name: string, type: DnsQueryType): boolean {
  if (packet.type !== 'response' || packet.id !== id) return false;
  const questions = packet.questions;
  if (!Array.isArray(questions) || questions.length !== 1) return false;
  const q = questions[0];
  return (
    q !== undefined && typeof q.name === 'string' && normaliseName(q.name) === normaliseName(name) &&
    q.type === type && (q.class === undefined || q.class === 'IN')
  );
}

function parseServer(value: DnsServer | string, i: number): Required<DnsServer> {
  let server: DnsServer;
  if (typeof value === 'string') {
    const m = isIP(value) !== 0 ? undefined : (/^\[([^\]]+)\]:(\d{1,5})$/.exec(value) ?? /^([^:]+):(\d{1,5})$/.exec(value));
    server = m ? { host: m[1] ?? '', port: Number(m[2]) } : { host: value };
  } else {
    server = value;
  }
  if (typeof server !== 'object' || server === null || isIP(server.host) === 0) {
    throw new InvalidOptionError(`servers[${i}]`, value, 'must be an IP literal with an optional port');
  }
  const port = checkNumber(`servers[${i}].port`, server.port, 53, { integer: true, min: 1, max: 65535 });
  // Answers are matched against the source address in its canonical form (as Node reports it).
  const host = isIP(server.host) === 6 ? new URL(`http://[${server.host}]`).hostname.slice(1, -1) : server.host;
  return { host, port };
}

/**
 * DNS over its own UDP and TCP sockets, on `dns-packet`: EDNS0 with a large
 * payload, TCP retry on truncation, random 16-bit IDs, strict matching of ID,
 * question and source address/port (everything else is dropped), and a
 * per-attempt timeout with retry across servers.
 */
export class DnsTransport {
  /** The servers, in the order tried. */
  readonly servers: readonly Readonly<Required<DnsServer>>[];
  readonly #timeoutMs: number;
  readonly #attempts: number;
  readonly #payload: number;
  readonly #close = new AbortController();
  #next = 0;

  constructor(options: DnsTransportOptions = {}) {
    const servers: readonly (DnsServer | string)[] = options.servers ?? [{ host: '127.0.0.1', port: 8600 }];
    if (!Array.isArray(servers) || servers.length === 0) throw new InvalidOptionError('servers', servers, 'must be a non-empty array');
    this.servers = Object.freeze((servers as readonly (DnsServer | string)[]).map((s, i) => Object.freeze(parseServer(s, i))));
    // A per-attempt timer waits for timeoutMs: at most 10 minutes, as the Consul client's (a Node timer past 2^31 ms fires at once).
    this.#timeoutMs = checkNumber('timeoutMs', options.timeoutMs, 2000, { above: 0, max: 600_000 });
    this.#attempts = checkNumber('attempts', options.attempts, 2, { integer: true, min: 1 });
    this.#payload = checkNumber('udpPayloadSize', options.udpPayloadSize, 4096, { integer: true, min: 512, max: 65535 });
  }

  /**
   * Sends one question, trying servers in turn until one gives a usable
   * answer (NOERROR or NXDOMAIN).
   * @throws {@link TimeoutError}, {@link BadResponseError}, {@link DnsRcodeError}, {@link AbortedError}, {@link ClosedError}.
   */
  async query(name: string, type: DnsQueryType, options: { signal?: AbortSignal } = {}): Promise<DnsAnswer> {
    if (this.#close.signal.aborted) throw new ClosedError('DNS transport');
    const signal = options.signal ? AbortSignal.any([options.signal, this.#close.signal]) : this.#close.signal;
    let lastError: unknown;
    const total = this.#attempts * this.servers.length;
    const start = this.#next++ % this.servers.length;
    for (let attempt = 0; attempt < total; attempt++) {
      const server = this.servers[(start + attempt) % this.servers.length];
      if (server === undefined) break;
      try {
        let packet = await this.#udp(server, name, type, signal);
        let viaTcp = false;
        if (packet.flag_tc) {
          packet = await this.#tcp(server, name, type, signal);
          viaTcp = true;
        }
        const rcode = packet.rcode ?? 'NOERROR';
        if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') throw new DnsRcodeError(name, rcode);
        return { packet, server, viaTcp };
      } catch (error) {
        if (this.#close.signal.aborted) throw new ClosedError('DNS transport');
        if (signal.aborted) throw new AbortedError(`DNS query for ${name}`, signal.reason);
        lastError = error;
      }
    }
    throw lastError;
  }

  #encode(id: number, name: string, type: DnsQueryType): Buffer {
    return dnsPacket.encode({
      type: 'query',
      id,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name, class: 'IN' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: this.#payload } as dnsPacket.Answer],
    });
  }

  #udp(server: Required<DnsServer>, name: string, type: DnsQueryType, signal: AbortSignal): Promise<DnsMessage> {
    const id = randomInt(0, 65536);
    const socket = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
    return settleOnce<DnsMessage>(
      signal,
      this.#timeoutMs,
      () => new TimeoutError(`DNS query for ${name} to ${server.host}:${server.port}`, this.#timeoutMs),
      () => new AbortedError(`DNS query for ${name}`, signal.reason),
      () => socket.close(),
      (finish) => {
        socket.on('error', (error) => finish(error));
        socket.on('message', (message, remote) => {
          // Anything not from our server, undecodable, or not our question is dropped (spoofing, late answers).
          if (remote.address !== server.host || remote.port !== server.port) return;
          let packet: DnsMessage;
          try {
            packet = decodeDnsMessage(message);
          } catch {
            return;
          }
          if (matchesQuery(packet, id, name, type)) finish(undefined, packet);
        });
        socket.send(this.#encode(id, name, type), server.port, server.host, (error) => {
          if (error) finish(error);
        });
      },
    );
  }

  #tcp(server: Required<DnsServer>, name: string, type: DnsQueryType, signal: AbortSignal): Promise<DnsMessage> {
    const id = randomInt(0, 65536);
    const socket = connect({ host: server.host, port: server.port });
    let buffered = Buffer.alloc(0);
    return settleOnce<DnsMessage>(
      signal,
      this.#timeoutMs,
      () => new TimeoutError(`DNS/TCP query for ${name} to ${server.host}:${server.port}`, this.#timeoutMs),
      () => new AbortedError(`DNS query for ${name}`, signal.reason),
      () => socket.destroy(),
      (finish) => {
        socket.on('error', (error) => finish(error));
        socket.on('close', () => finish(new BadResponseError(`DNS/TCP connection for ${name} closed before a full answer`)));
        socket.on('data', (chunk: Buffer) => {
          buffered = Buffer.concat([buffered, chunk]);
          if (buffered.length < 2) return;
          const length = buffered.readUInt16BE(0);
          if (buffered.length < 2 + length) return;
          try {
            const packet = decodeDnsMessage(buffered.subarray(2, 2 + length));
            if (!matchesQuery(packet, id, name, type)) throw new BadResponseError(`DNS/TCP answer for ${name} does not match the query`);
            finish(undefined, packet);
          } catch (error) {
            finish(error as Error);
          }
        });
        const query = this.#encode(id, name, type);
        const frame = Buffer.alloc(2 + query.length);
        frame.writeUInt16BE(query.length, 0);
        query.copy(frame, 2);
        socket.write(frame);
      },
    );
  }

  /** Cancels in-flight queries; later calls reject with `ERR_CLOSED`. Idempotent. */
  close(): Promise<void> {
    this.#close.abort(new ClosedError('DNS transport'));
    return Promise.resolve();
  }
}

/**
 * One query's settle-once scaffolding: a timeout, the caller's abort, and a
 * cleanup that runs exactly once whichever of them (or an answer) comes first.
 */
function settleOnce<T>(
  signal: AbortSignal,
  timeoutMs: number,
  onTimeout: () => Error,
  onAbort: () => Error,
  cleanup: () => void,
  start: (finish: (error: Error | undefined, value?: T) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, value?: T): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', aborted);
      cleanup();
      if (error) reject(error);
      else if (value !== undefined) resolve(value);
    };
    const aborted = (): void => finish(onAbort());
    const timer = setTimeout(() => finish(onTimeout()), timeoutMs);
    timer.unref();
    signal.addEventListener('abort', aborted, { once: true });
    try {
      start(finish);
    } catch (error) {
      finish(error instanceof Error ? error : new Error(String(error)));
    }
  });
}
