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
  /** The option `min` comes from, named in the message (`must be ≥ minTtlMs (1000)`). */
  minOf?: string;
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
  if (rule.min !== undefined && value < rule.min) throw new InvalidOptionError(option, value, rule.minOf === undefined ? `must be ≥ ${rule.min}` : `must be ≥ ${rule.minOf} (${rule.min})`);
  if (rule.max !== undefined && value > rule.max) throw new InvalidOptionError(option, value, `must be ≤ ${rule.max}`);
  if (rule.above !== undefined && value <= rule.above) throw new InvalidOptionError(option, value, `must be > ${rule.above}`);
  return value;
}

/**
 * Rejects a non-object options argument (`undefined` passes) and, given the
 * documented keys, any other key (see {@link checkKnownKeys}). @internal
 */
export function checkOptions(option: string, value: unknown, known?: readonly string[]): void {
  if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw new InvalidOptionError(option, value, 'must be an options object');
  }
  if (known !== undefined) checkKnownKeys('', value, known, `${option}()`);
}

/**
 * Every key of an options type, checked by the compiler both ways: a key the
 * type lacks is an excess property, a key the list lacks is a missing one. So
 * the list that rejects typos can never drift from the documented type.
 * @internal
 */
export function optionKeys<T extends object>(keys: { readonly [K in keyof Required<T>]: true }): readonly string[] {
  return Object.keys(keys);
}

/** Edit distance counting a swap of neighbours as one edit (`brust` → `burst`); for suggestions only (short keys). */
function editDistance(a: string, b: string): number {
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      let best = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, (before[j - 2] ?? 0) + 1);
      current[j] = best;
    }
    before = previous;
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * The candidate nearest to `input` (case-insensitive edit distance, at most a
 * third of the longer word, or one is a prefix of the other), or `undefined`.
 * @internal
 */
export function nearest(input: string, candidates: readonly string[]): string | undefined {
  const lower = input.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const c = candidate.toLowerCase();
    const d = editDistance(lower, c);
    // A prefix either way counts as one edit (`timeout` → `timeoutMs`); the true distance breaks ties.
    const distance = (c.startsWith(lower) || lower.startsWith(c) ? Math.min(1, d) : d) + d / 1000;
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best !== undefined && Math.floor(bestDistance) <= Math.max(1, Math.floor(Math.max(input.length, best.length) / 3)) ? best : undefined;
}

/**
 * Rejects a key that `known` lacks (a typo such as `retrys` would otherwise be
 * ignored in silence), naming the nearest valid key. `option` is the dotted
 * path of the object (`''` for a top-level options argument).
 * @throws {@link InvalidOptionError} `Invalid option "retrys": … is not an option of createClient; did you mean "retry"?`
 * @internal
 */
export function checkKnownKeys(option: string, value: unknown, known: readonly string[], owner: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return;
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    // undefined is how a spread of optional settings says "not set": nothing to reject.
    if ((value as Record<string, unknown>)[key] === undefined) continue;
    const suggestion = nearest(key, known);
    const path = option ? `${option}.${key}` : key;
    // The value is left out: a misspelt `tokne` or `kye` would carry a secret into the message.
    const error = new InvalidOptionError(path, '<not shown>', '');
    error.message = `Invalid option "${path}": not an option of ${owner}; ` +
      (suggestion !== undefined ? `did you mean "${suggestion}"?` : `valid keys: ${known.join(', ')}`);
    Error.captureStackTrace(error, checkKnownKeys);
    throw error;
  }
}
