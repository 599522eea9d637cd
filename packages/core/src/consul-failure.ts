/**
 * One line saying what failed at the Consul agent and what to do about it,
 * shared by the registrar's log lines and the resolver's errors.
 * @module
 */
import { TimeoutError } from './errors.js';
import { ConsulApiError, ConsulUnreachableError } from './consul-http.js';

/**
 * One sentence saying what failed at the agent and what to do about it: the
 * address tried and the variable or option that changes it.
 * @param origin - the agent's address (never holds credentials).
 * @param needs - the ACL rights the failed call needs, for a 403 (e.g. `service:write on "web"`).
 * @param words - how the caller's API spells the address and token settings (default the `consul` option's).
 * @internal
 */
export function describeConsulFailure(
  error: unknown,
  origin: string,
  needs: string,
  words: { readonly address: string; readonly token: string } = { address: 'the consul.address option', token: 'the consul.token option' },
): string {
  if (error instanceof ConsulUnreachableError) {
    // The message names the address and the low-level reason; for TLS mix-ups it also carries what to set.
    if (error.hint) return error.message;
    return `${error.message}. Is an agent running there? Set CONSUL_HTTP_ADDR (or ${words.address}) to its address`;
  }
  if (error instanceof ConsulApiError && error.hint) return error.message;
  if (error instanceof TimeoutError) {
    return `the Consul agent at ${origin} did not answer within ${error.timeoutMs} ms. ` +
      `Is it overloaded, or is CONSUL_HTTP_ADDR (or ${words.address}) pointing at something else?`;
  }
  if (error instanceof ConsulApiError) {
    if (error.status === 403) {
      return `the Consul agent at ${origin} denied ${error.method} ${error.path} (403: ${error.consulMessage}). ` +
        `Set CONSUL_HTTP_TOKEN (or ${words.token}) to an ACL token with ${needs}`;
    }
    return `the Consul agent at ${origin} answered ${error.method} ${error.path} with ${error.status}: ${error.consulMessage || '(empty body)'}`;
  }
  return `Consul agent at ${origin}: ${error instanceof Error ? error.message : String(error)}`;
}
