import { describeConsulFailure } from '@proxyless/core/internal';

/**
 * Where a {@link Registrar} tells a person what needs attention: the agent
 * cannot be reached, refuses the registration, or is back after that. One line
 * per outage, not one per retry. `console` fits; pass `logger: false` to silence.
 */
export interface RegistrarLogger {
  /** Something is wrong and the registrar is retrying (or has given up). */
  warn(message: string): void;
  /** Back to normal after a warning. */
  info(message: string): void;
}

/**
 * One sentence saying what failed at the agent and what to do about it: the
 * address tried and the variable or option that changes it (core's
 * `describeConsulFailure`, which the resolver's errors use too).
 * @internal
 */
export function describeAgentFailure(error: unknown, origin: string, service: string): string {
  return describeConsulFailure(error, origin, `service:write on "${service}"`);
}
