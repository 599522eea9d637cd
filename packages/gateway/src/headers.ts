/** Header rules of a forwarding proxy (RFC 9110 §7.6.1, RFC 7239's de-facto X-Forwarded-* cousins). */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { BlockList } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { clientAddress, isTrusted } from './trusted-proxies.js';

/** Connection-specific headers that a proxy must not forward. */
const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Where-from headers: claims about the client that only a trusted proxy may
 * make (`trustedProxies`); from anyone else they are dropped, and the gateway
 * sets `X-Forwarded-For/-Proto/-Host/-Prefix` itself.
 */
const forwardedClaims = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-prefix', 'x-forwarded-port', 'forwarded', 'x-real-ip'];
/** Dropped upstream from a trusted proxy: `Host` (the instance's own authority is used) and `Expect` (the gateway answers `100-continue`). */
/** What each direction drops, hop-by-hop headers included: one Set lookup per header. */
const dropFromTrusted = new Set([...hopByHop, 'host', 'expect']);
const dropFromUntrusted = new Set([...dropFromTrusted, ...forwardedClaims]);

/**
 * Copies `headers` without hop-by-hop headers, any header named in
 * `Connection`, and the names in `drop` (a Set that includes the hop-by-hop
 * ones). Node and undici give header names lower-cased; a for-in loop and
 * Sets built once keep this off the profile (it runs twice per forwarded request).
 */
export function withoutHopByHop(headers: IncomingHttpHeaders, drop: ReadonlySet<string> = hopByHop): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connection = headers.connection;
  // `keep-alive` and `close` (nearly every Connection header) name nothing beyond the hop-by-hop set: no token list.
  const named = connection && connection !== 'keep-alive' && connection !== 'close' ? connection.split(',').map((token) => token.trim().toLowerCase()) : undefined;
  for (const name in headers) {
    const value = headers[name];
    // HTTP/2 pseudo-headers (`:path`, `:authority`…) describe the client's stream, not the request to forward.
    const first = name.charCodeAt(0);
    if (value === undefined || first === 58 /* : */ || drop.has(name) || (first === 112 /* p */ && name.startsWith('proxy-')) || named?.includes(name)) continue;
    out[name] = value;
  }
  return out;
}

/** The headers to send upstream, and who the client is. */
export interface ForwardedRequest {
  readonly headers: Record<string, string | string[]>;
  /**
   * The client's address: the socket's peer, or, when the peer is a trusted
   * proxy, the right-most untrusted `X-Forwarded-For` address.
   */
  readonly clientIp: string;
}

/**
 * Headers to send upstream: the client's minus hop-by-hop ones, `Host` and
 * `Expect`, plus `X-Forwarded-For/-Proto/-Host` (and `-Prefix` when a prefix
 * was stripped). The client's own `X-Forwarded-*`, `Forwarded` and
 * `X-Real-IP` are honoured only when the socket's peer is in `trust`
 * (`X-Forwarded-For` is then appended to); otherwise they are dropped and
 * replaced by the gateway's values. Without `trust` (the default) no
 * address check runs; with it, one BlockList check, only when such a header is present.
 */
export function upstreamRequestHeaders(req: IncomingMessage, prefix: string | undefined, trust?: BlockList): ForwardedRequest {
  const given = req.headers;
  const peer = req.socket.remoteAddress ?? 'unknown';
  const trusted =
    trust !== undefined &&
    (given['x-forwarded-for'] !== undefined || given['x-forwarded-proto'] !== undefined || given['x-forwarded-host'] !== undefined ||
      given['x-forwarded-prefix'] !== undefined || given['x-forwarded-port'] !== undefined || given.forwarded !== undefined || given['x-real-ip'] !== undefined) &&
    isTrusted(trust, peer);
  const headers = withoutHopByHop(given, trusted ? dropFromTrusted : dropFromUntrusted);
  let clientIp = peer;
  const priorFor = trusted ? given['x-forwarded-for'] : undefined;
  if (priorFor && trust) {
    const chain = Array.isArray(priorFor) ? priorFor.join(', ') : priorFor;
    headers['x-forwarded-for'] = `${chain}, ${peer}`;
    clientIp = clientAddress(trust, peer, chain);
  } else {
    headers['x-forwarded-for'] = peer;
  }
  const encrypted = (req.socket as Partial<TLSSocket>).encrypted === true;
  headers['x-forwarded-proto'] = (trusted ? firstValue(given['x-forwarded-proto']) : undefined) ?? (encrypted ? 'https' : 'http');
  // HTTP/2 says the host in `:authority` (RFC 9113 §8.3.1) and usually sends no Host.
  const host = (trusted ? firstValue(given['x-forwarded-host']) : undefined) ?? given.host ?? (given[':authority'] as string | undefined);
  if (host) headers['x-forwarded-host'] = host;
  if (prefix) {
    // Behind a trusted proxy that stripped a prefix of its own, the instance's public prefix is both.
    const outer = trusted ? firstValue(given['x-forwarded-prefix'])?.replace(/\/+$/, '') : undefined;
    headers['x-forwarded-prefix'] = outer ? `${outer}${prefix}` : prefix;
  }
  return { headers, clientIp };
}

/** Response headers to send to the client: the upstream's minus hop-by-hop ones, then `extra` (the gateway's own, which win). */
export function clientResponseHeaders(headers: IncomingHttpHeaders, extra: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = withoutHopByHop(headers);
  for (const name in extra) out[name] = extra[name];
  return out;
}

function firstValue(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const first = (Array.isArray(value) ? value[0] : value)?.split(',')[0]?.trim();
  return first || undefined;
}
