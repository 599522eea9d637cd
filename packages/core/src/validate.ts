import { InvalidServiceNameError } from './errors.js';

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

/**
 * Checks a datacenter name (same rules as a service name).
 * @throws {@link InvalidServiceNameError} naming the value.
 */
export function validateDatacenter(dc: unknown, option = 'datacenter'): string {
  if (typeof dc !== 'string' || !datacenterPattern.test(dc)) {
    throw new InvalidServiceNameError(option, dc, 'is not a valid datacenter name (letters, digits, "-", "_"; 1-63 characters)');
  }
  return dc;
}
