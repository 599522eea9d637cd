/**
 * The list of services registered in etcd, for a `CatalogWatch`: one prefix
 * watch over the layout's root, a service listed while at least one key under
 * it holds a valid instance (of any health, as Consul's catalog lists them).
 */
import type { BackoffOptions } from '@proxyless/core';
import type { CatalogRunner } from '@proxyless/core/internal';
import type { EtcdClient, EtcdKeyValue } from './etcd-client.js';
import type { EtcdKeyLayout, ServiceLocator } from './key-layout.js';
import { runPrefixWatch } from './prefix-watch.js';

/** Settings shared with the resolver's own watches. @internal */
export interface ServiceListSettings {
  backoff: Required<BackoffOptions>;
  idleTimeoutMs: number;
  maxValueBytes: number;
}

/** The loop of `EtcdResolver.watchServices()`. @internal */
export function etcdCatalogRunner(client: EtcdClient, layout: EtcdKeyLayout, locator: ServiceLocator, settings: ServiceListSettings): CatalogRunner {
  /** The service and tags of a key that holds a valid instance; undefined otherwise (never listed). */
  const judge = (kv: EtcdKeyValue): { service: string; tags: readonly string[] } | undefined => {
    const where = locator.locate(kv.key.toString('utf8'));
    if (!where || kv.value.length > settings.maxValueBytes) return undefined;
    try {
      const instance = layout.parse(where.service, where.name, kv.value);
      return instance.service === where.service ? { service: where.service, tags: instance.tags } : undefined;
    } catch {
      return undefined; // the service's own watch reports it in a `dropped` event
    }
  };
  return async (signal, sink) => {
    let entries = new Map<string, { service: string; tags: readonly string[] }>();
    const set = (kv: EtcdKeyValue): void => {
      const key = kv.key.toString('latin1');
      const entry = judge(kv);
      if (entry) entries.set(key, entry);
      else entries.delete(key);
    };
    const publish = (): void => {
      const tags = new Map<string, Set<string>>();
      for (const { service, tags: own } of entries.values()) {
        let all = tags.get(service);
        if (!all) tags.set(service, (all = new Set()));
        for (const tag of own) all.add(tag);
      }
      sink.publish(new Map([...tags].map(([service, all]) => [service, Object.freeze([...all].sort())])));
    };
    await runPrefixWatch(client, locator.prefix, { signal, backoff: settings.backoff, idleTimeoutMs: settings.idleTimeoutMs }, {
      reset: (kvs) => {
        entries = new Map();
        for (const kv of kvs) set(kv);
        publish();
      },
      apply: (events) => {
        for (const event of events) {
          if (event.type === 'delete') entries.delete(event.kv.key.toString('latin1'));
          else set(event.kv);
        }
        publish();
      },
      live: publish,
      // A new history (wiped, restored): services missing from it are held for the grace.
      resync: (reason) => {
        if (reason !== 'compacted') sink.reset();
      },
      fail: (error) => sink.fail(error instanceof Error ? error : new Error(String(error))),
    });
  };
}
