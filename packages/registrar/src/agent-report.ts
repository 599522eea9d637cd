import { ConsulApiError, ConsulUnreachableError, TimeoutError } from '@proxyless/core';

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
 * address tried and the variable or option that changes it.
 * @internal
 */
export function describeAgentFailure(error: unknown, origin: string, service: string): string {
  if (error instanceof ConsulUnreachableError) {
    // The message names the address and the low-level reason; for TLS mix-ups it also carries what to set.
    if (error.hint) return error.message;
    return `${error.message}. Is an agent running there? Set CONSUL_HTTP_ADDR (or the consul.address option) to its address`;
  }
  if (error instanceof ConsulApiError && error.hint) return error.message;
  if (error instanceof TimeoutError) {
    return `the Consul agent at ${origin} did not answer within ${error.timeoutMs} ms. ` +
      'Is it overloaded, or is CONSUL_HTTP_ADDR (or the consul.address option) pointing at something else?';
  }
  if (error instanceof ConsulApiError) {
    if (error.status === 403) {
      return `the Consul agent at ${origin} denied ${error.method} ${error.path} (403: ${error.consulMessage}). ` +
        `Set CONSUL_HTTP_TOKEN (or the consul.token option) to an ACL token with service:write on "${service}"`;
    }
    return `the Consul agent at ${origin} answered ${error.method} ${error.path} with ${error.status}: ${error.consulMessage || '(empty body)'}`;
  }
  return `Consul agent at ${origin}: ${error instanceof Error ? error.message : String(error)}`;
}
