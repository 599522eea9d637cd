/**
 * The client's view of a stale discovery (a leaf: events, stats and errors
 * name it without importing the client).
 * @module
 */

/**
 * Discovery of a client's service is stale (the resolver's snapshot has
 * `stale: true`): the registry is unreachable or silent, the answering server
 * knows no leader, or instances are held after a registry reset. The client
 * keeps serving its last known endpoints meanwhile.
 */
export interface DiscoveryStale {
  /** The client's service. */
  readonly service: string;
  /** When the client saw its snapshot turn stale (epoch ms). */
  readonly since: number;
  /** When the registry last confirmed the set (the snapshot's `updatedAt`, epoch ms). */
  readonly lastConfirmedAt: number;
  /** The resolver's error, when a failure made it stale (none while a registry reset is ridden out, or for a leaderless read). */
  readonly cause: Error | undefined;
}

/** The words a request error adds while discovery is stale. @internal */
export function describeStale(stale: DiscoveryStale, nowMs: number): string {
  const seconds = ((nowMs - stale.lastConfirmedAt) / 1000).toFixed(1);
  const cause = stale.cause === undefined ? '' : ` (${stale.cause.message})`;
  return `discovery stale since ${new Date(stale.since).toISOString()}, last confirmed ${seconds} s ago${cause}: the endpoints may be out of date`;
}
