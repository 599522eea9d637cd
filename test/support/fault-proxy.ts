/**
 * Test support: a fault-injecting HTTP proxy in front of a real Consul agent.
 *
 * Everything goes to the real agent; hooks may rewrite a request on its way
 * (e.g. strip Enterprise-only parameters the free edition refuses, after
 * recording them), answer it themselves (an agent stand-in that echoes the
 * token), or rewrite the agent's answer (a lagging follower's headers, an
 * empty body). Never a hand-written imitation of Consul: the data is real.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { once } from 'node:events';

/** A request as the proxy received it. */
export interface ProxiedRequest {
  readonly method: string;
  /** Path and query as sent by the client. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly at: number;
}

/** An answer (from the agent, or made up by a hook). */
export interface ProxiedResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** Hooks of a {@link FaultProxy}; each may be replaced at any time. */
export interface FaultHooks {
  /** Return a string to forward another URL, a response to answer without the agent, or nothing. */
  request?: (req: ProxiedRequest) => string | ProxiedResponse | undefined;
  /** Return a changed response, or nothing to pass the agent's on. */
  response?: (req: ProxiedRequest, res: ProxiedResponse) => ProxiedResponse | undefined;
}

/** A running proxy. */
export interface FaultProxy {
  /** `127.0.0.1:port`, usable as a Consul address. */
  readonly addr: string;
  /** Every request received, in order. */
  readonly requests: ProxiedRequest[];
  hooks: FaultHooks;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/** Starts a proxy on a free loopback port that forwards to `target` (`127.0.0.1:port`). */
export async function startFaultProxy(target: string, hooks: FaultHooks = {}): Promise<FaultProxy> {
  const [host, portText] = target.split(':');
  const requests: ProxiedRequest[] = [];
  const proxy: FaultProxy = { addr: '', requests, hooks, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const seen: ProxiedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, at: Date.now() };
    requests.push(seen);
    const send = (out: ProxiedResponse): void => {
      const headers = Object.fromEntries(Object.entries(out.headers).filter(([name, value]) => value !== undefined && name !== 'transfer-encoding' && name !== 'content-length'));
      headers['content-length'] = String(out.body.length);
      res.writeHead(out.status, headers);
      res.end(out.body);
    };
    const decided = proxy.hooks.request?.(seen);
    if (decided !== undefined && typeof decided !== 'string') {
      req.resume();
      send(decided);
      return;
    }
    const upstream = httpRequest({ host, port: Number(portText), method: seen.method, path: decided ?? seen.url, headers: req.headers }, (up) => {
      const chunks: Buffer[] = [];
      up.on('data', (c: Buffer) => chunks.push(c));
      up.on('end', () => {
        const original: ProxiedResponse = { status: up.statusCode ?? 502, headers: { ...up.headers }, body: Buffer.concat(chunks) };
        send(proxy.hooks.response?.(seen, original) ?? original);
      });
      up.on('error', () => res.destroy());
    });
    upstream.on('error', () => res.destroy());
    // The client went away (e.g. an aborted long poll): drop the upstream request too.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  Object.assign(proxy, {
    addr: `127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close').catch(() => undefined);
    },
  });
  return proxy;
}

/** Reads a JSON body of a proxied response. */
export function jsonBody(res: ProxiedResponse): unknown {
  return res.body.length > 0 ? JSON.parse(res.body.toString('utf8')) : undefined;
}

/** A JSON response with the given body, keeping the agent's other headers. */
export function withJsonBody(res: ProxiedResponse, body: unknown): ProxiedResponse {
  return { ...res, body: Buffer.from(JSON.stringify(body)) };
}
