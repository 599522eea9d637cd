/**
 * Fastify: a plugin that adds one `onRequest` hook. Structural types only:
 * this package does not depend on Fastify.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LoadReporter } from './load-reporter.js';
import { answerProbe, answerShed, countRequest, isProbe, shedLevel } from './http-response.js';

/** The part of a Fastify request the plugin reads. */
export interface FastifyRequestLike {
  /** The Node request underneath. */
  readonly raw: IncomingMessage;
}

/** The part of a Fastify reply the plugin uses. */
export interface FastifyReplyLike {
  /** The Node response underneath. */
  readonly raw: ServerResponse;
  /** Tells Fastify the response is written by hand (the probe's answer). */
  hijack(): unknown;
}

/** The part of a Fastify instance the plugin uses. */
export interface FastifyInstanceLike {
  /** Adds a lifecycle hook. */
  addHook(name: 'onRequest', hook: (request: FastifyRequestLike, reply: FastifyReplyLike, done: (error?: Error) => void) => void): unknown;
}

/** A Fastify plugin, as {@link loadReportFastify} returns it (register it with `fastify.register`). */
export type LoadReportFastifyPlugin = (instance: FastifyInstanceLike, options: unknown, done: (error?: Error) => void) => void;

/**
 * A Fastify plugin reporting the load of the whole instance (it is not
 * encapsulated: its hook sees every route, as `fastify-plugin` would make it).
 * Its `onRequest` hook answers probes before routing, and counts every other
 * request and writes the report into its response, through the Node response
 * underneath (Fastify writes its head with `writeHead`, as node:http does).
 *
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * const load = new LoadReporter();
 * const app = Fastify();
 * await app.register(loadReportFastify(load));
 * app.get('/', async () => 'ok');
 * ```
 */
export function loadReportFastify(reporter: LoadReporter): LoadReportFastifyPlugin {
  const plugin: LoadReportFastifyPlugin = (instance, _options, done) => {
    instance.addHook('onRequest', (request, reply, next) => {
      if (isProbe(reporter, request.raw)) {
        // Written by hand, nothing after it in Fastify's lifecycle runs (no routing, no handler).
        reply.hijack();
        answerProbe(reporter, request.raw, reply.raw);
        return;
      }
      const shed = shedLevel(reporter, request.raw);
      if (shed >= 0) {
        reply.hijack(); // answered by hand: no routing, no handler
        answerShed(reporter, request.raw, reply.raw, shed);
        return;
      }
      countRequest(reporter, request.raw, reply.raw);
      next();
    });
    done();
  };
  // What fastify-plugin sets: the hook applies to the instance it is registered on, not to a child context.
  Object.assign(plugin, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'proxyless-load-report' });
  return plugin;
}
