import { ClosedError, InvalidOptionError, NoHealthyInstancesError } from './errors.js';
import type { CallOptions, Resolver, ServiceWatch } from './resolver.js';
import { createServiceInstance, type ServiceInstance, type ServiceInstanceInit } from './service-instance.js';
import { checkKnownKeys, optionKeys, validateServiceName } from './validate.js';
import { WatchHub, type WatchSink } from './watch-hub.js';

/** An instance of a {@link StaticResolver}: `service` defaults to the service it is listed under. */
export type StaticInstanceInit = Omit<ServiceInstanceInit, 'service'> & { service?: string };

/** Options of {@link StaticResolver}. */
export interface StaticResolverOptions {
  /** Instances per service name; `service` defaults to the map key. */
  services?: Readonly<Record<string, readonly StaticInstanceInit[]>>;
}

/**
 * A fixed list of instances per service, for tests and local development.
 * {@link StaticResolver.set} replaces a service's list and notifies its watches.
 *
 * @example
 * ```ts
 * const resolver = new StaticResolver({ services: { web: [{ address: '127.0.0.1', port: 8080 }] } });
 * const [first] = await resolver.resolve('web');
 * resolver.set('web', [{ address: '127.0.0.1', port: 8081 }]); // watches emit an update
 * ```
 */
export class StaticResolver implements Resolver {
  readonly #lists = new Map<string, readonly ServiceInstance[]>();
  readonly #sinks = new Map<string, Set<WatchSink>>();
  readonly #hub: WatchHub<object>;
  #closed = false;

  constructor(options: StaticResolverOptions = {}) {
    checkKnownKeys('', options, optionKeys<StaticResolverOptions>({ services: true }), 'StaticResolver');
    for (const [service, list] of Object.entries(options.services ?? {})) this.set(service, list);
    this.#hub = new WatchHub<object>('static', (service, _query, sink) => this.#run(service, sink));
  }

  #run(service: string, sink: WatchSink): Promise<void> {
    let sinks = this.#sinks.get(service);
    if (!sinks) this.#sinks.set(service, (sinks = new Set()));
    sinks.add(sink);
    // Published on a later turn: a resolver never calls back synchronously from watch().
    setImmediate(() => sink.publish(this.#lists.get(service) ?? []));
    return new Promise((resolve) => {
      sink.signal.addEventListener('abort', () => {
        sinks.delete(sink);
        resolve();
      }, { once: true });
    });
  }

  /**
   * Replaces the instances of `service`; its watches see the change.
   * @throws {@link InvalidOptionError} for a bad instance, {@link ClosedError}.
   */
  set(service: string, instances: readonly StaticInstanceInit[]): void {
    if (this.#closed) throw new ClosedError('Resolver');
    validateServiceName(service);
    if (!Array.isArray(instances)) throw new InvalidOptionError('instances', instances, 'must be an array');
    const list = Object.freeze(instances.map((init: StaticInstanceInit) => createServiceInstance({ ...init, service: init.service ?? service })));
    this.#lists.set(service, list);
    for (const sink of this.#sinks.get(service) ?? []) sink.publish(list);
  }

  /**
   * Returns the current list.
   * @throws {@link NoHealthyInstancesError} when empty, {@link ClosedError}.
   */
  resolve(service: string, _options?: CallOptions): Promise<readonly ServiceInstance[]> {
    if (this.#closed) return Promise.reject(new ClosedError('Resolver'));
    validateServiceName(service);
    const list = this.#lists.get(service) ?? [];
    return list.length === 0 ? Promise.reject(new NoHealthyInstancesError(service)) : Promise.resolve(list);
  }

  /** Watches a service's list. */
  watch(service: string, _query?: object): ServiceWatch {
    if (this.#closed) throw new ClosedError('Resolver');
    validateServiceName(service);
    return this.#hub.subscribe(service, service, {});
  }

  /** Stops every watch. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#hub.close();
  }

  /** Same as {@link StaticResolver.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
