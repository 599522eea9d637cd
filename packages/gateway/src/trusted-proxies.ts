/**
 * Which peers may tell the gateway who the client is (`trustedProxies`):
 * `X-Forwarded-*` and `Forwarded` from anyone else are dropped and replaced
 * by the gateway's own values, as nginx's realip module and Express's
 * `trust proxy` do. Trust is a `net.BlockList` (native, IPv4 and IPv6,
 * IPv4-mapped IPv6 peers included).
 */
import { BlockList, isIP } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { InvalidOptionError } from '@proxyless/core';

/** Address ranges behind the shorthands of `trustedProxies`. */
const shorthands: Readonly<Record<string, readonly (readonly [string, number, 'ipv4' | 'ipv6'])[]>> = {
  loopback: [['127.0.0.0', 8, 'ipv4'], ['::1', 128, 'ipv6']],
  // RFC 1918 and IPv6 unique local addresses (RFC 4193).
  private: [['10.0.0.0', 8, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.168.0.0', 16, 'ipv4'], ['fc00::', 7, 'ipv6']],
  linklocal: [['169.254.0.0', 16, 'ipv4'], ['fe80::', 10, 'ipv6']],
};

const hint = 'must be an IP address, a CIDR such as "10.0.0.0/8" or "2001:db8::/32", or one of "loopback", "private", "linklocal"';

/**
 * Validates `trustedProxies` and builds its BlockList; `undefined` for an
 * empty list (trust nobody: the default).
 */
export function checkTrustedProxies(option: string, value: unknown): BlockList | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw new InvalidOptionError(option, value, `must be an array: each entry ${hint}`);
  if (value.length === 0) return undefined;
  const list = new BlockList();
  value.forEach((entry: unknown, i) => {
    const at = `${option}[${i}]`;
    if (typeof entry !== 'string') throw new InvalidOptionError(at, entry, hint);
    const ranges = shorthands[entry];
    if (ranges) {
      for (const [network, bits, type] of ranges) list.addSubnet(network, bits, type);
      return;
    }
    const slash = entry.indexOf('/');
    const address = slash === -1 ? entry : entry.slice(0, slash);
    const family = isIP(address);
    if (family === 0) throw new InvalidOptionError(at, entry, hint);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash === -1) {
      list.addAddress(address, type);
      return;
    }
    const bitsText = entry.slice(slash + 1);
    const bits = Number(bitsText);
    const max = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(bitsText) || bits > max) throw new InvalidOptionError(at, entry, `has a prefix length out of 0–${max}; ${hint}`);
    list.addSubnet(address, bits, type);
  });
  return list;
}

/** Whether `address` (a socket's peer, or an X-Forwarded-For entry) is a trusted proxy. Not an IP: untrusted. */
export function isTrusted(trust: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && trust.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The client's address from the hops a request came through, nearest last
 * (`X-Forwarded-For`'s entries, then the socket's peer): the right-most
 * untrusted one, walking left only through trusted proxies. When every hop is
 * trusted, the left-most. An entry that is not an IP address ends the walk at
 * the hop that passed it on (a garbage string never becomes the client's address).
 */
export function clientAddress(trust: BlockList, peer: string, forwardedFor: string): string {
  let client = peer;
  if (!isTrusted(trust, peer)) return client;
  let end = forwardedFor.length;
  while (end > 0) {
    const comma = forwardedFor.lastIndexOf(',', end - 1);
    const entry = forwardedFor.slice(comma + 1, end).trim();
    end = comma === -1 ? 0 : comma;
    if (entry === '') continue;
    if (isIP(entry) === 0) return client;
    client = entry;
    if (!isTrusted(trust, entry)) return client;
  }
  return client;
}

/** The client's address of a request: its peer, or behind trusted proxies the one {@link clientAddress} finds. */
export function clientIpOf(socket: { readonly remoteAddress?: string | undefined }, headers: IncomingHttpHeaders, trust: BlockList | undefined): string {
  const peer = socket.remoteAddress ?? 'unknown';
  const forwardedFor = headers['x-forwarded-for'];
  if (!trust || forwardedFor === undefined) return peer;
  return clientAddress(trust, peer, Array.isArray(forwardedFor) ? forwardedFor.join(', ') : forwardedFor);
}
