import type { Server } from 'node:http';

/**
 * A server {@link drainServer} can close: an `http.Server` or `https.Server`
 * (`closeIdleConnections()` / `closeAllConnections()` exist since Node 18.2).
 */
export type DrainableServer = Server;

/** Outcome of {@link drainServer}. */
export interface DrainResult {
  /** True when connections were still open at the deadline and were force-closed. */
  readonly forced: boolean;
  /** How long the drain took, in ms. */
  readonly durationMs: number;
}

/** Options of {@link drainServer}. */
export interface DrainServerOptions {
  /** Absolute time (`Date.now()` clock) at which remaining connections are force-closed. */
  deadline: number;
  /** How often idle keep-alive connections are swept while in-flight requests finish, in ms. Default 50. */
  sweepIntervalMs?: number;
}

/**
 * Gracefully closes an HTTP server: stops accepting new connections, lets
 * in-flight requests finish (their responses carry `Connection: close`),
 * closes keep-alive connections as soon as they are idle, and force-closes
 * whatever is still open at `deadline`.
 *
 * Why a periodic sweep: a keep-alive connection that finishes its request
 * after `close()` becomes idle, and nothing else would close it before the
 * client's or the server's keep-alive timeout.
 */
export async function drainServer(server: DrainableServer, options: DrainServerOptions): Promise<DrainResult> {
  const started = Date.now();
  let forced = false;
  const closed = new Promise<void>((resolve) => {
    if (!server.listening) {
      // Never listened or already closed: only connections may remain.
      server.closeAllConnections();
      resolve();
      return;
    }
    server.close(() => resolve());
  });
  server.prependListener('request', (_req, res) => {
    if (!res.headersSent) res.setHeader('connection', 'close');
  });
  server.closeIdleConnections();
  const sweep = setInterval(() => server.closeIdleConnections(), options.sweepIntervalMs ?? 50);
  const force = setTimeout(() => {
    forced = true;
    server.closeAllConnections();
  }, Math.max(0, options.deadline - Date.now()));
  try {
    await closed;
  } finally {
    clearInterval(sweep);
    clearTimeout(force);
  }
  return { forced, durationMs: Date.now() - started };
}
