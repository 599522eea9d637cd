import {
  InvalidOptionError,
  ProxylessError,
  createServiceInstance,
  validateServiceName,
  type HealthStatus,
  type ServiceInstance,
} from '@proxyless/core';
import { checkKnownKeys, optionKeys, errorBrand } from '@proxyless/core/internal';

/**
 * Where a service's instances live in etcd and how a value becomes an
 * instance. {@link proxylessLayout} and {@link confdLayout} are the two
 * built in; write your own for another scheme.
 */
export interface EtcdKeyLayout {
  /** Short name for events and errors, e.g. `proxyless`, `confd`. */
  readonly name: string;
  /** The key prefix that holds every instance of `service` (ends with `/`). `service` is already validated. */
  servicePrefix(service: string): string;
  /**
   * Turns one key (its part after the prefix) and value into an instance.
   * @throws anything (typically {@link MalformedValueError}) to drop the entry; it is reported, never used.
   */
  parse(service: string, name: string, value: Buffer): ServiceInstance;
  /**
   * Where every service of the layout lives, for service lists
   * (`EtcdResolver.watchServices`); absent when the layout cannot list them.
   */
  readonly services?: ServiceLocator;
}

/** Finds services under one prefix. */
export interface ServiceLocator {
  /** The prefix that holds every service's keys (ends with `/`). */
  readonly prefix: string;
  /** The service and instance name an instance key belongs to, or undefined when the key is not one. */
  locate(key: string): { service: string; name: string } | undefined;
}

/** A locator for keys `<before><service><after>/<name>`; names and services that break the rules are not instance keys. */
function locator(before: string, after: string): ServiceLocator {
  const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^${escape(before)}([^/]+)${escape(after)}/([^/]+)$`);
  // Keys only under a whole segment: `before` as given, or cut back to its last `/`.
  const prefix = before.slice(0, before.lastIndexOf('/') + 1);
  return {
    prefix,
    locate(key) {
      const m = pattern.exec(key);
      const [, service, name] = m ?? [];
      if (service === undefined || name === undefined) return undefined;
      try {
        return { service: validateServiceName(service), name: validateInstanceName(name) };
      } catch {
        return undefined;
      }
    },
  };
}

/** A registry entry that cannot become an instance (reported in a `dropped` event; never used). */
export class MalformedValueError extends ProxylessError {
  static override readonly brand: symbol = errorBrand('ERR_MALFORMED_VALUE');

  override get name(): string {
    return 'MalformedValueError';
  }

  /** Why the value was refused. */
  readonly reason: string;

  constructor(name: string, reason: string) {
    super('ERR_MALFORMED_VALUE', `Malformed registry value for "${name.slice(0, 128)}": ${reason}`);
    this.reason = reason;
  }
}

// Instance names become one key segment: nothing that could add a segment,
// climb out of the prefix or hide in a log line.
const instanceNamePattern = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}$/;

/** Checks an instance name/ID (1–128 of `A-Za-z0-9_.:@-`, no `/`, not `.`/`..`). @throws `InvalidOptionError` */
export function validateInstanceName(name: unknown, option = 'id'): string {
  if (typeof name !== 'string' || !instanceNamePattern.test(name)) {
    throw new InvalidOptionError(option, name, 'must be 1-128 characters of letters, digits, "_", ".", ":", "@", "-", starting with a letter, digit or "_"');
  }
  return name;
}

/**
 * Checks and normalises a key prefix: starts with `/`, no empty, `.` or `..`
 * segments, printable ASCII, at most 512 bytes; returned without a trailing `/`.
 * @throws `InvalidOptionError`
 */
export function validatePrefix(prefix: unknown, option = 'prefix'): string {
  if (typeof prefix !== 'string' || prefix.length === 0 || prefix.length > 512 || !/^\/[\x21-\x7e]*$/.test(prefix)) {
    throw new InvalidOptionError(option, prefix, 'must start with "/" and hold 1-512 printable ASCII characters without spaces');
  }
  const trimmed = prefix.endsWith('/') && prefix.length > 1 ? prefix.slice(0, -1) : prefix;
  const segments = trimmed === '/' ? [] : trimmed.slice(1).split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new InvalidOptionError(option, prefix, 'must not contain empty, "." or ".." segments');
  }
  return trimmed === '/' ? '' : trimmed;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The JSON value of an instance key in the Proxyless layout. */
export interface EtcdInstanceValue {
  address: string;
  port: number;
  tags?: readonly string[];
  meta?: Readonly<Record<string, string>>;
  zone?: string;
  weights?: { passing: number; warning: number };
  /** Default `passing`; `critical` (e.g. draining) instances are left out by resolvers. */
  health?: HealthStatus;
}

/** Options of {@link proxylessLayout}. */
export interface ProxylessLayoutOptions {
  /** Root of every service. Default `/proxyless/services`. */
  prefix?: string;
}

function instanceFromJson(service: string, name: string, value: Buffer): ServiceInstance {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch {
    throw new MalformedValueError(name, 'value is not JSON');
  }
  if (!isRecord(parsed)) throw new MalformedValueError(name, 'value is not a JSON object');
  const { address, port, tags, meta, zone, weights, health } = parsed;
  try {
    return createServiceInstance({
      key: name,
      id: name,
      service,
      address: address as string,
      port: port as number,
      ...(tags !== undefined ? { tags: tags as string[] } : {}),
      ...(meta !== undefined ? { meta: meta as Record<string, string> } : {}),
      ...(zone !== undefined ? { zone: zone as string } : {}),
      ...(weights !== undefined ? { weights: weights as { passing: number; warning: number } } : {}),
      ...(health !== undefined ? { health: health as HealthStatus } : {}),
    });
  } catch (error) {
    throw new MalformedValueError(name, error instanceof Error ? error.message : 'invalid instance');
  }
}

/**
 * The Proxyless layout: `<prefix>/<service>/<id>` → JSON
 * (`{"address","port","tags","meta","zone","weights","health"}`), written by
 * the registrar with a lease.
 */
export function proxylessLayout(options: ProxylessLayoutOptions = {}): EtcdKeyLayout & { instanceKey(service: string, id: string): string } {
  checkKnownKeys('', options, optionKeys<ProxylessLayoutOptions>({ prefix: true }), 'proxylessLayout()');
  const root = validatePrefix(options.prefix ?? '/proxyless/services');
  return {
    name: 'proxyless',
    servicePrefix: (service) => `${root}/${validateServiceName(service)}/`,
    instanceKey: (service, id) => `${root}/${validateServiceName(service)}/${validateInstanceName(id)}`,
    parse: instanceFromJson,
    services: locator(`${root}/`, ''),
  };
}

/** Options of {@link confdLayout}. */
export interface ConfdLayoutOptions {
  /**
   * The prefix of one service's keys; `{service}` is replaced by the service
   * name. Default `/{service}/servers` (so `/app/servers/<name>` → `"host:port"` for service `app`).
   */
  prefix?: string;
}

/** Parses `host:port` or `[v6]:port`. @internal */
export function parseHostPort(text: string): { address: string; port: number } | undefined {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:\s]+):(\d{1,5})$/.exec(text);
  const [, address, port] = m ?? [];
  if (address === undefined || port === undefined) return undefined;
  return { address, port: Number(port) };
}

/**
 * The confd-era layout: one prefix per service, each key `<prefix>/<name>` →
 * `"host:port"` (what confd + HAProxy set-ups wrote), so a team moves to
 * Proxyless without re-keying. Instance ID and key are `<name>`.
 */
export function confdLayout(options: ConfdLayoutOptions = {}): EtcdKeyLayout {
  checkKnownKeys('', options, optionKeys<ConfdLayoutOptions>({ prefix: true }), 'confdLayout()');
  const template = options.prefix ?? '/{service}/servers';
  if (typeof template !== 'string') throw new InvalidOptionError('prefix', template, 'must be a string');
  // Validate the template with a sample name, so a bad prefix fails at construction.
  validatePrefix(template.split('{service}').join('x'));
  const parts = template.split('{service}');
  // A template naming the service once can list services; a fixed prefix holds one service's keys only.
  const services = parts.length === 2 ? locator(parts[0] ?? '', (parts[1] ?? '').replace(/\/+$/, '')) : undefined;
  return {
    name: 'confd',
    ...(services ? { services } : {}),
    servicePrefix: (service) => `${validatePrefix(template.split('{service}').join(validateServiceName(service)))}/`,
    parse(service, name, value) {
      const text = value.toString('utf8').trim();
      const hostPort = parseHostPort(text);
      if (!hostPort) throw new MalformedValueError(name, 'value is not "host:port"');
      try {
        return createServiceInstance({ key: name, id: name, service, address: hostPort.address, port: hostPort.port });
      } catch (error) {
        throw new MalformedValueError(name, error instanceof Error ? error.message : 'invalid instance');
      }
    },
  };
}
