/**
 * Test support: a fault-injecting HTTP proxy in front of a real Consul agent.
 *
 * Everything goes to the real agent unless a fault or a hook says otherwise.
 * Two ways to inject, usable together:
 * - {@link FaultProxy.setFault} for the faults a healthy agent cannot produce
 *   on demand: a hung call, a made-up status (429, 500 with a message), a
 *   dropped connection, a request that reaches the agent late;
 * - {@link FaultProxy.hooks} to rewrite a request on its way (e.g. strip
 *   Enterprise-only parameters the free edition refuses, after recording
 *   them), answer it without the agent (an agent stand-in that echoes the
 *   token), or rewrite the agent's answer (a lagging follower's headers, an
 *   empty body).
 * Never a hand-written imitation of Consul: the data is real.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from 'node:events';

/** A request as the proxy received it. */
export interface ProxiedRequest {
  readonly method: string;
  /** Path and query as sent by the client. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The request body, as text. */
  readonly body: string;
  /** `Date.now()` when the proxy had read the whole request. */
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

/** A fault applied before the hooks, to the requests {@link FaultProxy.setFault} selects. */
export type Fault =
  | { kind: 'pass' }
  /** Never answer (until the proxy closes). */
  | { kind: 'hang' }
  /** Answer `status` with a plain-text `body`, without the agent. */
  | { kind: 'status'; status: number; body: string }
  /** Destroy the connection without an answer. */
  | { kind: 'drop' }
  /** Forward after `ms`, even if the caller has given up meanwhile (a request already on the wire). */
  | { kind: 'delay'; ms: number };

/** A running proxy. */
export interface FaultProxy {
  /** `127.0.0.1:port`, usable as a Consul address. */
  readonly addr: string;
  /** Every request received, in order. */
  readonly requests: ProxiedRequest[];
  hooks: FaultHooks;
  /** Applies `fault` to the requests whose URL contains `match` (default: all); `{ kind: 'pass' }` clears it. */
  setFault(fault: Fault, match?: string): void;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Starts a proxy on a free loopback port that forwards to `target` (`127.0.0.1:port`). */
export async function startFaultProxy(target: string, hooks: FaultHooks = {}): Promise<FaultProxy> {
  const [host, portText] = target.split(':');
  const requests: ProxiedRequest[] = [];
  let fault: Fault = { kind: 'pass' };
  let faultMatch: string | undefined;

  const send = (res: ServerResponse, out: ProxiedResponse): void => {
    const headers = Object.fromEntries(Object.entries(out.headers).filter(([name, value]) => value !== undefined && name !== 'transfer-encoding' && name !== 'content-length'));
    headers['content-length'] = String(out.body.length);
    res.writeHead(out.status, headers);
    res.end(out.body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req);
    const seen: ProxiedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body, at: Date.now() };
    requests.push(seen);
    const active = faultMatch === undefined || seen.url.includes(faultMatch) ? fault : undefined;
    if (active?.kind === 'hang') return;
    if (active?.kind === 'drop') {
      req.socket.destroy();
      return;
    }
    if (active?.kind === 'status') {
      send(res, { status: active.status, headers: { 'content-type': 'text/plain' }, body: Buffer.from(active.body) });
      return;
    }
    if (active?.kind === 'delay') await new Promise((resolve) => setTimeout(resolve, active.ms));
    const decided = proxy.hooks.request?.(seen);
    if (decided !== undefined && typeof decided !== 'string') {
      send(res, decided);
      return;
    }
    const upstream = httpRequest({ host, port: Number(portText), method: seen.method, path: decided ?? seen.url, headers: req.headers }, (up) => {
      const chunks: Buffer[] = [];
      up.on('data', (c: Buffer) => chunks.push(c));
      up.on('end', () => {
        const original: ProxiedResponse = { status: up.statusCode ?? 502, headers: { ...up.headers }, body: Buffer.concat(chunks) };
        send(res, proxy.hooks.response?.(seen, original) ?? original);
      });
      up.on('error', () => res.destroy());
    });
    upstream.on('error', () => res.destroy());
    // The client went away (e.g. an aborted long poll): drop the upstream request too. A delayed
    // request whose caller left during the delay is still forwarded (this listener never fires).
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    upstream.end(body);
  };

  const server = createServer((req, res) => {
    res.on('error', () => undefined); // the caller may be gone (delay, drop)
    handle(req, res).catch(() => res.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const proxy: FaultProxy = {
    addr: `127.0.0.1:${port}`,
    requests,
    hooks,
    setFault(next, match) {
      fault = next;
      faultMatch = match;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close').catch(() => undefined);
    },
  };
  return proxy;
}

/** A JSON response with the given body, keeping the agent's other headers. */
export function withJsonBody(res: ProxiedResponse, body: unknown): ProxiedResponse {
  return { ...res, body: Buffer.from(JSON.stringify(body)) };
}
