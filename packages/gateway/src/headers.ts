/** Header rules of a forwarding proxy (RFC 9110 §7.6.1, RFC 7239's de-facto X-Forwarded-* cousins). */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';

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
 * Copies `headers` without hop-by-hop headers, any header named in
 * `Connection`, and the names in `alsoDrop`. Node and undici give header
 * names lower-cased; a for-in loop and no per-request Set keep this off the
 * profile (it runs twice per forwarded request).
 */
export function withoutHopByHop(headers: IncomingHttpHeaders, alsoDrop: readonly string[] = []): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connection = headers.connection;
  const named = connection ? connection.split(',').map((token) => token.trim().toLowerCase()) : undefined;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || hopByHop.has(name) || name.startsWith('proxy-') || alsoDrop.includes(name) || named?.includes(name)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * Headers to send upstream: the client's minus hop-by-hop ones, minus `Host`
 * (the upstream's own authority is used) and `Expect` (the gateway answers
 * `100-continue` itself), plus `X-Forwarded-For/-Proto/-Host`.
 */
export function upstreamRequestHeaders(req: IncomingMessage, prefix: string | undefined): Record<string, string | string[]> {
  const headers = withoutHopByHop(req.headers, ['host', 'expect']);
  const clientIp = req.socket.remoteAddress ?? 'unknown';
  const priorFor = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = priorFor ? `${[priorFor].flat().join(', ')}, ${clientIp}` : clientIp;
  const encrypted = (req.socket as Partial<TLSSocket>).encrypted === true;
  headers['x-forwarded-proto'] = firstValue(req.headers['x-forwarded-proto']) ?? (encrypted ? 'https' : 'http');
  const host = firstValue(req.headers['x-forwarded-host']) ?? req.headers.host;
  if (host) headers['x-forwarded-host'] = host;
  if (prefix) headers['x-forwarded-prefix'] = prefix;
  return headers;
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
