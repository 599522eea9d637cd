/**
 * The configuration doctor's shared part: the warning shape, the logger
 * contract, and the checks that are not about HTTP (heartbeat vs TTL, DNS TTL
 * floor vs propagation). A warning is advice, never an error: the
 * configuration works, but hurts in production; each one names the fix.
 * @module
 */
import { InvalidOptionError } from './errors.js';

/** A configuration that works but hurts in production, with the fix. */
export interface ConfigWarning {
  /** Stable code, e.g. `RETRY_AMPLIFICATION`. */
  readonly code: string;
  /** The option (path) to change, e.g. `perTryTimeoutMs`. */
  readonly option: string;
  /** What hurts, with the numbers. */
  readonly message: string;
  /** What to change. */
  readonly fix: string;
}

/** Where configuration warnings are written (`console` fits; so do pino and winston loggers). */
export interface ConfigLogger {
  warn(message: string): void;
}

/** One line per warning: `[proxyless] <who>: <message> Fix: <fix> (<code>)`. @internal */
export function formatConfigWarning(who: string, warning: ConfigWarning): string {
  return `[proxyless] ${who}: ${warning.message} Fix: ${warning.fix} (${warning.code})`;
}

/** Validates a `logger` option: an object with `warn()`, or `false` (silent); default `console`. @internal */
export function checkLogger(value: unknown, option = 'logger'): ConfigLogger | undefined {
  if (value === false) return undefined;
  if (value === undefined) return console;
  if (typeof value !== 'object' || value === null || typeof (value as Partial<ConfigLogger>).warn !== 'function') {
    throw new InvalidOptionError(option, value, 'must be false or an object with a warn(message) method');
  }
  return value as ConfigLogger;
}

/** Heartbeat settings as the doctor sees them. @internal */
export interface HeartbeatConfig {
  ttlMs: number;
  heartbeatIntervalMs: number;
  /** Time limit of one agent call, in ms. */
  requestTimeoutMs: number;
}

/**
 * Heartbeat interval vs TTL: the check must survive one lost or slow beat.
 * Warns when fewer than two more beats fit in the TTL after a missed one
 * (interval > TTL/3), or when a beat that times out leaves too little of the TTL.
 * @internal
 */
export function checkHeartbeat(config: HeartbeatConfig): ConfigWarning[] {
  const { ttlMs, heartbeatIntervalMs: every, requestTimeoutMs } = config;
  const out: ConfigWarning[] = [];
  if (every * 3 > ttlMs) {
    out.push({
      code: 'HEARTBEAT_NEAR_TTL',
      option: 'heartbeatIntervalMs',
      message: `a heartbeat every ${every} ms with a ${ttlMs} ms TTL leaves room for ${Math.floor(ttlMs / every) - 1} lost or late beat(s): one slow agent call turns the check critical and takes the instance out of rotation.`,
      fix: `set heartbeatIntervalMs ≤ ttlMs / 3 (${Math.floor(ttlMs / 3)} ms; the default) or raise ttlMs to ≥ ${every * 3} ms.`,
    });
  } else if (every + requestTimeoutMs >= ttlMs) {
    out.push({
      code: 'HEARTBEAT_TIMEOUT_NEAR_TTL',
      option: 'requestTimeoutMs',
      message: `a beat that times out after ${requestTimeoutMs} ms, ${every} ms after the last one, ends after the ${ttlMs} ms TTL expired.`,
      fix: `set requestTimeoutMs < ${ttlMs - every} ms or raise ttlMs.`,
    });
  }
  return out;
}

/** DNS resolver settings as the doctor sees them. @internal */
export interface DnsTtlConfig {
  /** The TTL floor, in ms. */
  minTtlMs: number;
  /** How fast a change (an instance leaving) must reach callers, in ms. */
  expectedPropagationMs: number;
}

/**
 * DNS TTL floor vs the expected propagation time: a floor above it keeps a
 * departed instance in the answers (and in rotation) for longer than the user expects.
 * @internal
 */
export function checkDnsTtl(config: DnsTtlConfig): ConfigWarning[] {
  if (config.minTtlMs <= config.expectedPropagationMs) return [];
  return [
    {
      code: 'DNS_TTL_FLOOR_ABOVE_PROPAGATION',
      option: 'minTtlMs',
      message: `a TTL floor of ${config.minTtlMs} ms keeps every answer cached that long, so an instance that left keeps getting traffic for up to ${config.minTtlMs} ms, above the expected propagation of ${config.expectedPropagationMs} ms.`,
      fix: `set minTtlMs ≤ ${config.expectedPropagationMs} ms, or use ConsulResolver (blocking queries push changes at once).`,
    },
  ];
}
