/**
 * Request body size limits (`maxBodyBytes`): a declared `Content-Length` over
 * the limit is refused before a byte is read; a chunked body is counted as it
 * streams and cut off once it passes the limit.
 */
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';

/** nginx's `client_max_body_size` default (1m). */
export const defaultMaxBodyBytes = 1_048_576;

/** True when the request declares a body longer than `max` bytes. */
export function declaresTooLarge(req: IncomingMessage, max: number): boolean {
  const length = req.headers['content-length'];
  return length !== undefined && Number(length) > max;
}

/** Thrown into the upstream body when a streamed request body passes its limit. */
export class BodyTooLargeError extends Error {
  readonly code = 'ERR_BODY_TOO_LARGE';
  constructor(max: number) {
    super(`request body over the route's maxBodyBytes (${max})`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * `req` counted: passes chunks through until more than `max` bytes arrived,
 * then calls `onExceeded` and errors (which aborts the upstream request).
 */
export function limitBody(req: IncomingMessage, max: number, onExceeded: () => void): Transform {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
      seen += chunk.length;
      if (seen <= max) {
        done(null, chunk);
        return;
      }
      req.unpipe(counter);
      onExceeded();
      done(new BodyTooLargeError(max));
    },
  });
  return req.pipe(counter);
}
