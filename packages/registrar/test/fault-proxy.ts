/**
 * A pass-through proxy in front of the real agent that records what the
 * registrar sends and injects the faults a healthy agent cannot produce on
 * demand: a hung call, 429, a 500 with a given message, a dropped connection.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import type { Socket } from 'node:net';

export type Fault =
  | { kind: 'pass' }
  | { kind: 'hang' }
  | { kind: 'status'; status: number; body: string }
  | { kind: 'drop' }
  /** Forward after `ms`, even if the caller has given up meanwhile (a request already on the wire). */
  | { kind: 'delay'; ms: number };

export interface RecordedRequest {
  method: string;
  url: string;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface FaultProxy {
  readonly address: string;
  readonly requests: RecordedRequest[];
  /** Fault for requests whose URL contains `match` (default: all). */
  setFault(fault: Fault, match?: string): void;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

export async function startFaultProxy(targetHost: string, targetPort: number): Promise<FaultProxy> {
  let fault: Fault = { kind: 'pass' };
  let match: string | undefined;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });
  const handle = async (req: IncomingMessage, res: import('node:http').ServerResponse): Promise<void> => {
    const body = await readBody(req);
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', body, headers: req.headers });
    const active = match === undefined || (req.url ?? '').includes(match) ? fault : { kind: 'pass' as const };
    if (active.kind === 'hang') return; // never answer
    if (active.kind === 'drop') {
      req.socket.destroy();
      return;
    }
    if (active.kind === 'status') {
      res.writeHead(active.status, { 'content-type': 'text/plain' });
      res.end(active.body);
      return;
    }
    if (active.kind === 'delay') await new Promise((r) => setTimeout(r, active.ms));
    const upstream = request(
      { host: targetHost, port: targetPort, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    res.on('error', () => undefined); // the caller may be gone (delay)
    upstream.end(body);
  };
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    address: `127.0.0.1:${port}`,
    requests,
    setFault(f, m) {
      fault = f;
      match = m;
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
