/**
 * Express (or Connect, or any `(req, res, next)` framework): a middleware.
 * Structural types only: this package does not depend on Express.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LoadReporter } from './load-reporter.js';
import { answerProbe, countRequest, isProbe, shedIfOverloaded } from './http-response.js';

/** A `(req, res, next)` middleware, as {@link loadReportExpress} returns it. */
export type LoadReportMiddleware = (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void;

/**
 * An Express middleware reporting the load: put it first (`app.use` before
 * any other), so probes are answered before anything else runs and every
 * request is counted. Same behaviour as {@link loadReportListener}, which
 * also takes an Express app as the listener.
 *
 * @example
 * ```ts
 * import express from 'express';
 * const load = new LoadReporter();
 * const app = express();
 * app.use(loadReportExpress(load));
 * app.get('/', (req, res) => { res.send('ok'); });
 * ```
 */
export function loadReportExpress(reporter: LoadReporter): LoadReportMiddleware {
  return function loadReportMiddleware(req, res, next): void {
    if (isProbe(reporter, req)) {
      answerProbe(reporter, req, res);
      return;
    }
    if (shedIfOverloaded(reporter, req, res)) return;
    countRequest(reporter, req, res);
    next();
  };
}
