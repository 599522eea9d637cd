/**
 * The one etcd watch loop: keeps an owner current with every key under a
 * prefix. Used for a service's instances and for the list of services.
 */
import { BadResponseError, backoffDelay, sleep, type BackoffOptions } from '@proxyless/core';
import type { EtcdClient, EtcdKeyValue, EtcdWatchEvent } from './etcd-client.js';

/** Why a watch started over with a full read. */
export type ResyncReason = 'compacted' | 'revision-backwards' | 'cluster-changed';

/** What a prefix watch tells its owner. @internal */
export interface PrefixWatchTarget {
  /** Every key under the prefix as of `revision` (the first read, or a start-over). */
  reset(kvs: readonly EtcdKeyValue[], revision: number): void;
  /** Changes after the last applied revision, in order (never empty). */
  apply(events: readonly EtcdWatchEvent[], revision: number): void;
  /** A stream (re)opened without a gap: what was applied is current again. */
  live(revision: number): void;
  /** Starting over with a full read. */
  resync(reason: ResyncReason): void;
  /** An attempt failed; the loop backs off and tries again. */
  fail(error: unknown): void;
}

/** Settings of {@link runPrefixWatch}. @internal */
export interface PrefixWatchOptions {
  signal: AbortSignal;
  backoff: Required<BackoffOptions>;
  /** A stream silent this long has its member checked (see `EtcdClient.watch`). */
  idleTimeoutMs: number;
}

/**
 * Reads the prefix, then watches from the next revision; after a reconnect
 * resumes from the last applied revision, and starts over with a full read
 * when that revision was compacted away, when the server is behind it or its
 * cluster ID changed (etcd restored or wiped). Returns when `signal` aborts.
 * @internal
 */
export async function runPrefixWatch(client: EtcdClient, prefix: string, options: PrefixWatchOptions, target: PrefixWatchTarget): Promise<void> {
  const { signal, backoff, idleTimeoutMs } = options;
  let revision = 0; // last revision applied; 0: read everything first
  let clusterId: string | undefined;
  let failures = 0;
  const resync = (reason: ResyncReason): void => {
    revision = 0;
    target.resync(reason);
  };
  while (!signal.aborted) {
    try {
      if (revision === 0) {
        const { header, kvs } = await client.range(prefix, { prefix: true, signal });
        revision = header.revision;
        clusterId = header.clusterId;
        target.reset(kvs, revision);
      }
      for await (const message of client.watch({ key: prefix, prefix: true, startRevision: revision + 1, progressNotify: true }, { signal, idleTimeoutMs })) {
        if (signal.aborted) return;
        if (message.header.clusterId !== '0' && clusterId !== undefined && message.header.clusterId !== clusterId) {
          resync('cluster-changed');
          break;
        }
        if (message.canceled) {
          // The client throws every other cancel (a refused token, no permission) as the error it names.
          resync('compacted');
          break;
        }
        if (message.created) {
          // A server behind the revision we applied lost data (restored, wiped): start over.
          if (message.header.revision < revision) {
            resync('revision-backwards');
            break;
          }
          failures = 0;
          target.live(revision);
          continue;
        }
        if (message.events.length === 0) {
          // A progress notification: every change up to the header's revision was sent.
          if (message.header.revision > revision) revision = message.header.revision;
          continue;
        }
        // Events at or below the applied revision were seen before a reconnect.
        const events = message.events.filter((e) => e.kv.modRevision > revision);
        // Applied up to the last event, not the header: a catching-up watcher gets its history
        // in batches whose header already carries the newest revision.
        for (const e of events) if (e.kv.modRevision > revision) revision = e.kv.modRevision;
        if (events.length > 0) target.apply(events, revision);
      }
      if (revision === 0) continue; // resync requested: read again at once
      // The stream ended without an error (member shutting down): reconnect, briefly backed off.
      await sleep(backoffDelay(failures++, backoff), signal);
    } catch (error) {
      if (signal.aborted) return;
      // An answer we refused (too large, not etcd's shape) would come again if the watch resumed
      // from the same revision (an oversized value stays in the history until compaction): read
      // everything again instead, which succeeds once the bad entry is gone.
      if (error instanceof BadResponseError) revision = 0;
      target.fail(error);
      await sleep(backoffDelay(failures++, backoff), signal);
    }
  }
}
