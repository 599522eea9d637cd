/**
 * Request priority and load shedding on the wire: the request header a
 * client names its priority in, and the response header by which a server
 * says it shed the request (so a client does not blame the endpoint). A leaf
 * module (imports nothing): `@proxyless/load-report` sheds with it,
 * `@proxyless/http-client` sends and reads with it.
 *
 * The five buckets follow Netflix's service-level prioritised load shedding
 * (2024): user-initiated work (`critical`, `high`) keeps its availability
 * while prefetch and batch work (`low`, `background`) is shed first.
 * @module
 */

/**
 * A request's priority, most important first. `normal` is what a request
 * without the header (or with a value not in this list) gets.
 */
export type RequestPriority = 'critical' | 'high' | 'normal' | 'low' | 'background';

/** Every priority, most important first (index = level: 0 critical … 4 background). */
export const requestPriorities: readonly RequestPriority[] = Object.freeze(['critical', 'high', 'normal', 'low', 'background']);

/** The priority of a request that names none, or names one not in {@link requestPriorities}. */
export const defaultRequestPriority: RequestPriority = 'normal';

/** The request header that carries a request's priority (one of {@link requestPriorities}, any case). */
export const priorityHeader = 'x-proxyless-priority';

/**
 * The response header that marks an answer as shed (a `503` the server sent
 * without running the handler, because it was overloaded); its value is the
 * priority the request was shed at. A client that sees it knows the endpoint
 * is alive but busy: not a failure of the endpoint, and not worth another try
 * on the same one.
 */
export const shedHeader = 'x-proxyless-shed';

/**
 * The level of a priority header's value: 0 (`critical`) … 4 (`background`),
 * any case, surrounding spaces ignored; `undefined` for anything else (the
 * caller applies {@link defaultRequestPriority}).
 */
export function priorityLevel(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const i = requestPriorities.indexOf(value.trim().toLowerCase() as RequestPriority);
  return i < 0 ? undefined : i;
}
