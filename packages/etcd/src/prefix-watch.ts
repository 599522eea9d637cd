/**
 * The one etcd watch loop: keeps an owner current with every key under a
 * prefix. Used for a service's instances and for the list of services.
 */
import { BadResponseError, backoffDelay, type BackoffOptions } from '@proxyless/core';
import { sleep } from '@proxyless/core/internal';
import { EtcdApiError, type EtcdClient, type EtcdKeyValue, type EtcdUnreachableError, type EtcdWatchEvent } from './etcd-client.js';

/**
 * Why a watch started over with a full read: its revision was `compacted`
 * away; etcd's revision went behind it (`revision-backwards`) or its cluster
 * ID changed (`cluster-changed`); or, checked before resuming after a lost
 * stream, the prefix at its revision is not what the watch holds
 * (`history-changed`: wiped or restored, the revision back above ours and
 * the cluster ID the same).
 */
export type ResyncReason = 'compacted' | 'revision-backwards' | 'cluster-changed' | 'history-changed';

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
  /**
   * An attempt failed; the loop backs off and tries again. Also told, at once,
   * when a read finds every member unreachable while the read goes on trying
   * (once until the watch hears from etcd again).
   */
  fail(error: unknown): void;
}

/** Settings of {@link runPrefixWatch}. @internal */
export interface PrefixWatchOptions {
  signal: AbortSignal;
  backoff: Required<BackoffOptions>;
  /** A stream silent this long has its member checked (see `EtcdClient.watch`). */
  idleTimeoutMs: number;
}

/** What identifies a key's version within one history (the value is not read back). */
const stamp = (kv: EtcdKeyValue): string => `${kv.modRevision}/${kv.lease}`;

/**
 * Whether the server's prefix at `revision` is what the watch holds (`held`:
 * key → stamp); a reason to start over if not. Resuming a watch from
 * `revision + 1` is right exactly when the server's state at `revision` is
 * the one we hold, whatever happened in between: neither the revision (a
 * wiped etcd written to before we reconnect is back above ours) nor the
 * cluster and member IDs (derived from the member's name, peer URLs and
 * cluster token, identical when etcd is started again the same way or
 * restored) nor raft_term (a fresh member is at term 2, as a never-restarted
 * one) tell a new history from ours; the keys at our revision do. A key whose
 * mod revision and lease match is the same version (leases of a new history
 * get new IDs, so a registration written again never matches). One keys-only
 * range per stream lost, no values.
 */
async function checkHistory(
  client: EtcdClient,
  prefix: string,
  revision: number,
  held: ReadonlyMap<string, string>,
  signal: AbortSignal,
  onUnreachable: (error: EtcdUnreachableError) => void,
): Promise<ResyncReason | undefined> {
  let kvs: EtcdKeyValue[];
  try {
    ({ kvs } = await client.range(prefix, { prefix: true, keysOnly: true, revision, signal, onUnreachable }));
  } catch (error) {
    if (error instanceof EtcdApiError && /required revision has been compacted/i.test(error.etcdMessage)) return 'compacted';
    if (error instanceof EtcdApiError && /required revision is a future revision/i.test(error.etcdMessage)) return 'revision-backwards';
    throw error;
  }
  if (kvs.length !== held.size) return 'history-changed';
  for (const kv of kvs) if (held.get(kv.key.toString('latin1')) !== stamp(kv)) return 'history-changed';
  return undefined;
}

/**
 * Reads the prefix, then watches from the next revision. After a lost stream,
 * checks that the prefix at the last applied revision is still what it holds
 * (one keys-only read) and resumes from that revision; starts over with a full
 * read when that revision was compacted away, when the server is behind it,
 * when its cluster ID changed or the check found another history (etcd
 * restored or wiped). Returns when `signal` aborts.
 * @internal
 */
export async function runPrefixWatch(client: EtcdClient, prefix: string, options: PrefixWatchOptions, target: PrefixWatchTarget): Promise<void> {
  const { signal, backoff, idleTimeoutMs } = options;
  let revision = 0; // last revision applied; 0: read everything first
  let clusterId: string | undefined;
  let failures = 0;
  const held = new Map<string, string>(); // key (latin1) → stamp, as of `revision`
  let current = false; // no stream lost since the last read or check: `held` is the server's state at `revision`
  // Nothing reported since etcd last answered: a read that finds every member unreachable says so at
  // once (a client's first call fails now, not at the read's deadline) and goes on trying until then.
  let reported = false;
  const fail = (error: unknown): void => {
    reported = true;
    target.fail(error);
  };
  const onUnreachable = (error: EtcdUnreachableError): void => {
    if (!reported) fail(error);
  };
  const resync = (reason: ResyncReason): void => {
    revision = 0;
    target.resync(reason);
  };
  while (!signal.aborted) {
    try {
      if (revision !== 0 && !current) {
        const reason = await checkHistory(client, prefix, revision, held, signal, onUnreachable);
        if (reason !== undefined) resync(reason);
      }
      if (revision === 0) {
        const { header, kvs } = await client.range(prefix, { prefix: true, signal, background: true, onUnreachable }); // a watch never holds the process open
        reported = false;
        revision = header.revision;
        clusterId = header.clusterId;
        held.clear();
        for (const kv of kvs) held.set(kv.key.toString('latin1'), stamp(kv));
        target.reset(kvs, revision);
      }
      current = true;
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
          reported = false;
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
        for (const e of events) {
          if (e.kv.modRevision > revision) revision = e.kv.modRevision;
          if (e.type === 'delete') held.delete(e.kv.key.toString('latin1'));
          else held.set(e.kv.key.toString('latin1'), stamp(e.kv));
        }
        if (events.length > 0) target.apply(events, revision);
      }
      current = false;
      if (revision === 0) continue; // resync requested: read again at once
      // The stream ended without an error (member shutting down): reconnect, briefly backed off.
      await sleep(backoffDelay(failures++, backoff), signal);
    } catch (error) {
      if (signal.aborted) return;
      current = false;
      // An answer we refused (too large, not etcd's shape) would come again if the watch resumed
      // from the same revision (an oversized value stays in the history until compaction): read
      // everything again instead, which succeeds once the bad entry is gone.
      if (error instanceof BadResponseError) revision = 0;
      fail(error);
      await sleep(backoffDelay(failures++, backoff), signal);
    }
  }
}
