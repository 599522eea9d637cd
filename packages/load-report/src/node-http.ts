/**
 * node:http: wrap a request listener, or attach to a server you already have.
 * @module
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { LoadReporter } from './load-reporter.js';
import { answerProbe, countRequest, isProbe, shedIfOverloaded } from './http-response.js';

/**
 * Wraps a `node:http` (or `node:https`) request listener: probes are answered
 * without calling it; every other request is counted and its response carries
 * the report. An Express app is such a listener (`loadReportListener(load, app)`).
 *
 * @example
 * ```ts
 * const load = new LoadReporter();
 * const server = createServer(loadReportListener(load, (req, res) => res.end('ok')));
 * ```
 */
export function loadReportListener(
  reporter: LoadReporter,
  listener: (req: IncomingMessage, res: ServerResponse) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return function loadReportingListener(this: unknown, req: IncomingMessage, res: ServerResponse): void {
    if (isProbe(reporter, req)) {
      answerProbe(reporter, req, res);
      return;
    }
    if (shedIfOverloaded(reporter, req, res)) return;
    countRequest(reporter, req, res);
    listener.call(this, req, res);
  };
}

/**
 * Reports the load of an existing `http.Server` (or `https.Server`): every
 * `'request'` it emits, whichever listeners it has now or later, is counted
 * and carries the report; probes are answered before any listener runs.
 * @returns a function that detaches the reporter from the server.
 *
 * @example
 * ```ts
 * const load = new LoadReporter();
 * const detach = attachLoadReport(load, server);
 * ```
 */
export function attachLoadReport(reporter: LoadReporter, server: Server): () => void {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the server as `this`
  const emit = server.emit as unknown as (this: Server, event: string | symbol, ...args: unknown[]) => boolean;
  // Intercepting emit (not the listener list) covers listeners added after this call, and lets a probe skip them all.
  const reportingEmit = function (this: Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'request') {
      const req = args[0] as IncomingMessage;
      const res = args[1] as ServerResponse;
      if (isProbe(reporter, req)) {
        answerProbe(reporter, req, res);
        return true;
      }
      if (shedIfOverloaded(reporter, req, res)) return true;
      countRequest(reporter, req, res);
    }
    return emit.call(this, event, ...args);
  };
  server.emit = reportingEmit as Server['emit'];
  return () => {
    if (server.emit === reportingEmit) server.emit = emit as Server['emit'];
  };
}
