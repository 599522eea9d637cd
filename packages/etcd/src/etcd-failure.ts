/**
 * One line saying what failed at etcd and what to do about it, shared by the
 * registry port's log lines and the resolver's errors.
 * @module
 */
import { TimeoutError } from '@proxyless/core';
import { EtcdApiError, EtcdUnreachableError, grpcCode } from './etcd-client.js';

/**
 * One sentence: what failed at etcd, the endpoints tried and the variable or
 * option that sets them (or the credentials).
 * @param endpoints - the client URLs in use (never hold credentials).
 * @param needs - the rights the failed call needs, for a permission error (e.g. `readwrite on the prefix of "web"`).
 * @param words - how the caller's API spells the endpoints setting (default the client's `endpoints` option).
 * @internal
 */
export function describeEtcdFailure(error: unknown, endpoints: readonly string[], needs: string, words: { readonly endpoints: string } = { endpoints: 'the endpoints option' }): string {
  const where = endpoints.join(',');
  if (error instanceof EtcdUnreachableError) return `${error.message}. Is etcd running there? Set ETCDCTL_ENDPOINTS (or ${words.endpoints}) to its client URLs`;
  // The client passes over unreachable members until the call's deadline: say what the last one did.
  if (error instanceof TimeoutError && error.cause instanceof EtcdUnreachableError) {
    return `${error.cause.message} (retried for ${error.timeoutMs} ms). Is etcd running there? Set ETCDCTL_ENDPOINTS (or ${words.endpoints}) to its client URLs`;
  }
  if (error instanceof TimeoutError) return `etcd at ${where} did not answer within ${error.timeoutMs} ms. Is it overloaded or without a leader, or is ETCDCTL_ENDPOINTS pointing at something else?`;
  if (error instanceof EtcdApiError) {
    if (error.grpcCode === grpcCode.Unauthenticated || error.status === 401) {
      return `etcd at ${where} refused our credentials (${error.etcdMessage}). Set ETCDCTL_USER (user:password) or the username/password options`;
    }
    if (error.grpcCode === grpcCode.PermissionDenied || error.status === 403) {
      return `etcd at ${where} denied ${error.path} (${error.etcdMessage}). Grant the user ${needs}`;
    }
    return `etcd at ${where} answered ${error.path} with ${error.status}: ${error.etcdMessage || '(empty body)'}`;
  }
  return `etcd at ${where}: ${error instanceof Error ? error.message : String(error)}`;
}
