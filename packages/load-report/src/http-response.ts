/**
 * The one mechanism every adapter shares: on a Node request/response pair,
 * answer a probe, or count the request and write the report into its
 * response headers. Fastify and Express responses are Node responses
 * underneath, so node:http, Fastify and Express report alike.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { loadReportFormatHeader, loadReportHeader, priorityHeader, priorityLevel, requestPriorities, shedHeader, type LoadReportFormat } from '@proxyless/core';
import type { LoadReporter } from './load-reporter.js';
import { Shedder, shouldShed } from './shedding.js';

// A response already counted (an Express middleware behind a wrapped listener): counted once.
const counted = Symbol.for('proxyless.loadReport.counted');

/**
 * The form a request asks for in `endpoint-load-metrics-format` (`text` or
 * `json`, any case, as vLLM reads it); `null` when it asks for another
 * (`bin`: the reporter's own form is written), `undefined` when it does not ask.
 */
function askedFormat(req: IncomingMessage): LoadReportFormat | null | undefined {
  // rawHeaders, not req.headers: Node builds the headers object lazily, and a handler that never reads it
  // would pay for it here on every request (measured in bench/load-report.bench.ts).
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] ?? '';
    if (name.length !== loadReportFormatHeader.length || name.toLowerCase() !== loadReportFormatHeader) continue;
    const v = (raw[i + 1] ?? '').trim().toLowerCase();
    return v === 'text' ? 'TEXT' : v === 'json' ? 'JSON' : null;
  }
  return undefined;
}

/** Whether this request is a probe: `GET` or `HEAD` of the probe path (a query string allowed). */
export function isProbe(reporter: LoadReporter, req: IncomingMessage): boolean {
  const path = reporter.options.probePath;
  if (path === false) return false;
  const url = req.url ?? '';
  if (!url.startsWith(path) || (url.length > path.length && url.charCodeAt(path.length) !== 0x3f /* ? */)) return false;
  return req.method === 'GET' || req.method === 'HEAD';
}

/**
 * Answers a probe: 200, the report in `endpoint-load-metrics` (in the form the
 * probe asks for) and, for `GET`, as a JSON body. Not counted as a request.
 */
export function answerProbe(reporter: LoadReporter, req: IncomingMessage, res: ServerResponse): void {
  const body = JSON.stringify(reporter.report());
  res.writeHead(200, {
    [loadReportHeader]: reporter.headerValue(askedFormat(req) ?? reporter.options.format),
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * Counts the request until its response closes, and writes the report into
 * the response's headers when they are written (so it tells the load at the
 * response, not at the arrival), unless the application set the header
 * itself or `onlyWhenAsked` and the request did not ask.
 */
export function countRequest(reporter: LoadReporter, req: IncomingMessage, res: ServerResponse): void {
  const marked = res as ServerResponse & { [counted]?: true };
  if (marked[counted] === true) return;
  marked[counted] = true;
  const request = reporter.begin();
  const asked = askedFormat(req);
  if (asked !== undefined || !reporter.options.onlyWhenAsked) {
    const format = asked ?? reporter.options.format;
    // Every way a Node response sends its head goes through writeHead (res.end() and write() call it implicitly).
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the response as `this`
    const writeHead = res.writeHead as unknown as (this: ServerResponse, ...args: unknown[]) => ServerResponse;
    res.writeHead = function writeHeadWithLoadReport(this: ServerResponse, ...args: unknown[]): ServerResponse {
      if (!this.headersSent && !this.hasHeader(loadReportHeader)) this.setHeader(loadReportHeader, reporter.headerValue(format, true));
      return writeHead.apply(this, args);
    };
  }
  // 'close' comes after 'finish', and alone when the client went away first.
  res.once('close', () => request.end(res.statusCode, res.writableFinished));
}

/** The level of the request's `x-proxyless-priority` (0 critical … 4 background), or `fallback` when absent or unknown. */
function requestLevel(req: IncomingMessage, fallback: number): number {
  // rawHeaders, as askedFormat: read only under pressure, and without building req.headers.
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] ?? '';
    if (name.length !== priorityHeader.length || name.toLowerCase() !== priorityHeader) continue;
    return priorityLevel(raw[i + 1]) ?? fallback;
  }
  return fallback;
}

/**
 * The level (0 critical … 4 background) at which to shed this request now,
 * or -1 to serve it: shedding is off, the pressure is below every band, or
 * the draw admits it. Below the lowest band it only compares two numbers.
 */
export function shedLevel(reporter: LoadReporter, req: IncomingMessage, random: () => number = Math.random): number {
  const shedder = reporter.shedder;
  if (shedder === undefined) return -1;
  const pressure = shedder.pressure(reporter.requestsInFlight);
  if (!Shedder.mayShed(pressure)) return -1;
  const level = requestLevel(req, shedder.defaultLevel);
  return shouldShed(level, pressure, random()) ? level : -1;
}

/**
 * Answers a shed request: `503` with `Retry-After`, `x-proxyless-shed:
 * <priority>` and the load report, no body; counted by priority. The
 * handler never runs (Node discards an unread request body itself).
 */
export function answerShed(reporter: LoadReporter, req: IncomingMessage, res: ServerResponse, level: number): void {
  const shedder = reporter.shedder;
  if (shedder === undefined) return;
  shedder.shed[level] = (shedder.shed[level] ?? 0) + 1;
  res.writeHead(503, {
    'retry-after': shedder.retryAfter,
    [shedHeader]: requestPriorities[level] ?? 'normal',
    [loadReportHeader]: reporter.headerValue(askedFormat(req) ?? reporter.options.format),
    'content-length': 0,
    'cache-control': 'no-store',
  });
  res.end();
}

/** {@link shedLevel}, then {@link answerShed}: true when the request was shed (the caller runs nothing else for it). */
export function shedIfOverloaded(reporter: LoadReporter, req: IncomingMessage, res: ServerResponse): boolean {
  const level = shedLevel(reporter, req);
  if (level < 0) return false;
  answerShed(reporter, req, res, level);
  return true;
}
