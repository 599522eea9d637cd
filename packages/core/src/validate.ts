/**
 * The one copy of each input rule: the service-name rule every package
 * applies (resolvers, registrar, HTTP client), tags, datacenters, and the
 * number/option validators used by every options parser.
 * @module
 */
import { InvalidOptionError, InvalidServiceNameError } from './errors.js';

// Consul accepts more, but only DNS-label-safe names work everywhere (HTTP
// paths, DNS questions, SRV names), and nothing here can inject a path
// segment, a query parameter or a DNS label.
const serviceNamePattern = /^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;
const datacenterPattern = /^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;
// Tags travel URL-encoded in queries; forbid whitespace and control characters.
const tagPattern = /^[\x21-\x7E]{1,255}$/;

/**
 * Checks a service name (letters, digits, `-`, `_`; 1–63 characters; starts and ends with a letter or digit).
 * @returns the name, for chaining.
 * @throws {@link InvalidServiceNameError} naming the value.
 */
export function validateServiceName(name: unknown, option = 'service'): string {
  if (typeof name !== 'string' || !serviceNamePattern.test(name)) {
    throw new InvalidServiceNameError(option, name, 'is not a valid service name (letters, digits, "-", "_"; 1-63 characters)');
  }
  return name;
}

/**
 * Checks a tag (1–255 printable ASCII characters, no whitespace).
 * @throws {@link InvalidServiceNameError} naming the value.
 */
export function validateTag(tag: unknown, option = 'tag'): string {
  if (typeof tag !== 'string' || !tagPattern.test(tag)) {
    throw new InvalidServiceNameError(option, tag, 'is not a valid tag (1-255 printable ASCII characters, no whitespace)');
  }
  return tag;
}

/** Datacenters, namespaces and admin partitions follow the service-name rule. */
function checkLabel(kind: string, value: unknown, option: string): string {
  if (typeof value !== 'string' || !datacenterPattern.test(value)) {
    throw new InvalidServiceNameError(option, value, `is not a valid ${kind} (letters, digits, "-", "_"; 1-63 characters)`);
  }
  return value;
}

/**
 * Checks a datacenter name (same rules as a service name).
 * @throws {@link InvalidServiceNameError} naming the value.
 */
export function validateDatacenter(dc: unknown, option = 'datacenter'): string {
  return checkLabel('datacenter name', dc, option);
}

/**
 * Checks a Consul Enterprise namespace name (same rules as a service name).
 * @throws {@link InvalidServiceNameError} naming the value.
 */
export function validateNamespace(namespace: unknown, option = 'namespace'): string {
  return checkLabel('namespace', namespace, option);
}

/**
 * Checks a Consul Enterprise admin partition name (same rules as a service name).
 * @throws {@link InvalidServiceNameError} naming the value.
 */
export function validatePartition(partition: unknown, option = 'partition'): string {
  return checkLabel('admin partition', partition, option);
}

/** Number constraints for {@link checkNumber}. @internal */
export interface NumberRule {
  /** Inclusive lower bound. */
  min?: number;
  /** Inclusive upper bound. */
  max?: number;
  /** Exclusive lower bound. */
  above?: number;
  /** Only integers. */
  integer?: boolean;
}

/**
 * Validates a number option: finite, within `rule`. Returns `fallback` when
 * the value is absent; when `fallback` is `undefined` the option is required.
 * @throws {@link InvalidOptionError} naming the option and the bad value.
 * @internal
 */
export function checkNumber(option: string, value: unknown, fallback: number | undefined, rule: NumberRule = {}): number {
  if (value === undefined) {
    if (fallback === undefined) throw new InvalidOptionError(option, value, 'is required');
    return fallback;
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new InvalidOptionError(option, value, 'must be a finite number');
  if (rule.integer === true && !Number.isInteger(value)) throw new InvalidOptionError(option, value, 'must be an integer');
  if (rule.min !== undefined && value < rule.min) throw new InvalidOptionError(option, value, `must be ≥ ${rule.min}`);
  if (rule.max !== undefined && value > rule.max) throw new InvalidOptionError(option, value, `must be ≤ ${rule.max}`);
  if (rule.above !== undefined && value <= rule.above) throw new InvalidOptionError(option, value, `must be > ${rule.above}`);
  return value;
}

/** Rejects a non-object options argument (`undefined` passes). @internal */
export function checkOptions(option: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw new InvalidOptionError(option, value, 'must be an options object');
  }
}
