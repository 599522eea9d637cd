/**
 * The options of {@link createDispatcher}, checked in one place with the
 * client settings every service's client shares.
 * @module
 */
import type { Dispatcher } from 'undici';
import { InvalidOptionError, validateServiceName, type Resolver } from '@proxyless/core';
import { checkKnownKeys, optionKeys } from '@proxyless/core/internal';
import { resolveSettings, type ClientOptions, type ClientSettings } from './options.js';

/** Options of {@link createDispatcher}. */
export interface DispatcherOptions {
  /** Where every service's endpoints come from. */
  resolver: Resolver;
  /**
   * Options of the client made for each service (everything but `service`
   * and `resolver`). Default: the client's defaults.
   */
  client?: Omit<ClientOptions, 'service' | 'resolver'>;
  /**
   * Hosts that name a service, beyond the two built-in forms: `{ 'payments.internal': 'payments' }`.
   * A key is a host name, or `host:port` to match that port only. Checked first.
   */
  services?: Readonly<Record<string, string>>;
  /**
   * The domain under which a host's first label is the service name:
   * `users.service.consul` → `users`. Default `service.consul`; `false` turns the form off.
   */
  serviceDomain?: string | false;
  /**
   * Treat a single-label host (`http://users`, any port) as a service name.
   * `localhost` never is. Default `true`.
   */
  bareHostnames?: boolean;
  /**
   * Where every other origin goes, untouched. Default: a new undici `Agent`
   * (closed with the dispatcher). A dispatcher you pass is yours to close.
   */
  fallback?: Dispatcher;
}

const dispatcherOptionKeys = optionKeys<DispatcherOptions>({ resolver: true, client: true, services: true, serviceDomain: true, bareHostnames: true, fallback: true });

/** {@link DispatcherOptions}, validated and defaulted. @internal */
export interface ResolvedDispatcherOptions {
  resolver: Resolver;
  /** The settings of each service's client (validated once here; each client checks them again with its service). */
  client: ClientSettings;
  /** Lower-cased host (or `host:port`) → service. */
  services: ReadonlyMap<string, string>;
  /** `.service.consul`, or `undefined` when the form is off. */
  domainSuffix: string | undefined;
  bareHostnames: boolean;
  /** The caller's fallback, or `undefined` for a dispatcher-owned `Agent`. */
  fallback: Dispatcher | undefined;
}

/** Validates and defaults {@link DispatcherOptions}; throws `InvalidOptionError` naming the option. @internal */
export function resolveDispatcherOptions(options: DispatcherOptions): ResolvedDispatcherOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', options, 'must be an object');
  checkKnownKeys('', options, dispatcherOptionKeys, 'createDispatcher()');
  const { resolver } = options;
  if (typeof resolver !== 'object' || resolver === null || typeof (resolver as Partial<Resolver>).watch !== 'function') {
    throw new InvalidOptionError('resolver', resolver, 'must implement Resolver (watch())');
  }
  if (options.client !== undefined && (typeof options.client !== 'object' || options.client === null)) {
    throw new InvalidOptionError('client', options.client, 'must be an object of client options');
  }
  const client = options.client ?? {};
  const services = new Map<string, string>();
  if (options.services !== undefined) {
    if (typeof options.services !== 'object' || options.services === null) throw new InvalidOptionError('services', options.services, 'must be an object');
    for (const [host, service] of Object.entries(options.services)) {
      if (typeof service !== 'string' || service === '') throw new InvalidOptionError(`services["${host}"]`, service, 'must be a service name');
      services.set(host.toLowerCase(), service);
    }
  }
  const domain = options.serviceDomain ?? 'service.consul';
  if (domain !== false && (typeof domain !== 'string' || !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(domain))) {
    throw new InvalidOptionError('serviceDomain', domain, 'must be a domain name or false');
  }
  if (options.bareHostnames !== undefined && typeof options.bareHostnames !== 'boolean') {
    throw new InvalidOptionError('bareHostnames', options.bareHostnames, 'must be a boolean');
  }
  if (options.fallback !== undefined && (typeof options.fallback !== 'object' || options.fallback === null || typeof options.fallback.dispatch !== 'function')) {
    throw new InvalidOptionError('fallback', options.fallback, 'must be an undici Dispatcher');
  }
  // The settings every service's client shares (and the mapped names) are checked now, not on the first request.
  resolveSettings(client, 'createDispatcher()', 'client');
  for (const [host, service] of services) validateServiceName(service, `services["${host}"]`);
  return {
    resolver,
    client,
    services,
    domainSuffix: domain === false ? undefined : `.${domain.toLowerCase()}`,
    bareHostnames: options.bareHostnames ?? true,
    fallback: options.fallback,
  };
}
