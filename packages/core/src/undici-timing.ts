/**
 * undici where its own timing falls short of ours: a request that its
 * signal really ends, and a connect timeout on a precise timer. Used by every
 * Proxyless package that talks HTTP (Consul, etcd, backends).
 * @module
 */
import { Socket } from 'node:net';
import { buildConnector, errors, type Dispatcher } from 'undici';
/**
 * undici's `request()`, settled by `options.signal` the moment it aborts.
 * undici notices an abort only once a connection takes the request up
 * (nodejs/undici#386), so a request still waiting in its pool's queue —
 * behind busy connections, or on a connect to a host that never answers the
 * SYN — would outlive its deadline by as long as that wait lasts (up to the
 * connect timeout, 10 s by default). Rejects with the signal's reason; undici
 * drops the request itself when a connection takes it up.
 * @internal
 */
export function requestUntilAborted(dispatcher: Dispatcher, options: Dispatcher.RequestOptions & { signal: AbortSignal }): Promise<Dispatcher.ResponseData> {
  const signal = options.signal;
  // The reason as given, as undici rejects with it (callers compare it with their deadline's reason).
  const reason = (): Error => signal.reason as Error;
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(reason());
      return;
    }
    const onAbort = (): void => reject(reason());
    signal.addEventListener('abort', onAbort, { once: true });
    dispatcher.request(options, (error, data) => {
      signal.removeEventListener('abort', onAbort);
      if (error === null) resolve(data);
      else reject(error);
    });
  });
}

/**
 * undici's connector (TCP, or TLS with the `tls` settings) with its
 * connect timeout on a Node timer of our own. undici runs connect timeouts on
 * its coarse timer wheel (~0.5 s ticks: a 300 ms timeout measured 0.9 s, 1 s
 * measured 1.5 s), which would let a host that went away hold a call longer
 * than asked before it moves on to the next endpoint. Fails with undici's
 * `ConnectTimeoutError` (`UND_ERR_CONNECT_TIMEOUT`), as undici would.
 * @internal
 */
export function preciseConnector(timeout: number, tls: object = {}): buildConnector.connector {
  // `tls`: Node's tls.connect options (ca, cert, key, servername, rejectUnauthorized), as each package validated them, and `allowH2` to offer h2 in ALPN.
  const connect = buildConnector({ ...(tls as buildConnector.BuildOptions), timeout: 0 }); // 0: undici sets no timer of its own
  return (target, callback) => {
    let settled = false;
    // undici's connector returns the socket it opens (not in its types): a timeout stops the connect itself.
    const socket: unknown = connect(target, (...args) => {
      if (settled) {
        args[1]?.destroy(); // connected after its timeout: nobody wants it
        return;
      }
      settled = true;
      clearTimeout(timer);
      callback(...args);
    });
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      const error = new errors.ConnectTimeoutError(`Connect Timeout Error (attempted address: ${target.hostname}:${target.port}, timeout: ${timeout}ms)`);
      if (socket instanceof Socket) socket.destroy(error);
      callback(error, null);
    }, timeout);
    timer.unref();
  };
}

/**
 * Wraps a connector so its sockets never hold the process open: for the
 * background long polls of a watch (Consul blocking queries, etcd watch
 * streams), which run for as long as the watch does. undici refs a socket
 * whenever it carries a request and unrefs it when idle; a long poll is never
 * idle, so a watch nobody closed (an idle client, dispatcher or resolver)
 * would keep the process alive forever. These sockets' `ref()` does nothing;
 * a call someone awaits keeps the process alive by its own deadline timer.
 * @internal
 */
export function unrefConnector(connect: buildConnector.connector): buildConnector.connector {
  return (options, callback) => {
    connect(options, (...args) => {
      const socket = args[1];
      if (socket) {
        socket.unref();
        socket.ref = () => socket;
      }
      callback(...args);
    });
  };
}

/**
 * How long a new connection may stay without a byte written before it is
 * taken as unwanted. undici writes a pending request as soon as its
 * connection is up (a few microtasks later), so this is a bound, not a wait.
 */
const UNUSED_CONNECTION_MS = 100;

/**
 * Wraps a connector so a connection nobody sends on is closed at once rather
 * than left to idle. After an in-flight HTTP/1 request is aborted, undici
 * puts it back as pending and opens a new connection for it, then drops it
 * as aborted: the new socket never carries a request, so it has no
 * keep-alive timer and stays open until the server closes it
 * (nodejs/undici#5845; fix proposed in nodejs/undici#5846). Every abandoned
 * attempt (deadline, per-try timeout, caller abort) left one such connection
 * to a backend that never answers. A socket with nothing written
 * {@link UNUSED_CONNECTION_MS} after it connected is destroyed; undici then
 * sees a closed idle connection and opens a new one only for a real request.
 * @internal
 */
export function closeUnusedConnector(connect: buildConnector.connector): buildConnector.connector {
  return (options, callback) => {
    connect(options, (...args) => {
      const socket = args[1];
      if (socket) {
        setTimeout(() => {
          if (socket.bytesWritten === 0 && !socket.destroyed) socket.destroy();
        }, UNUSED_CONNECTION_MS).unref();
      }
      callback(...args);
    });
  };
}
