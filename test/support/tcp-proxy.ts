/**
 * A TCP pass-through proxy on loopback that can cut every connection and
 * refuse new ones (a network partition between a client and a real server),
 * or stall them (a server that stopped answering: connections stay open,
 * nothing flows, new ones are accepted and left hanging), then let traffic
 * through again.
 */
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';

export interface TcpProxy {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Destroys every open connection and drops new ones until {@link TcpProxy.restore}. */
  cut(): void;
  /** Stops forwarding bytes either way on every connection, open or new, until {@link TcpProxy.restore}. */
  stall(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  let open = true;
  let stalled = false;
  const sockets = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  // Unpiped, paused sockets read nothing, so nothing is forwarded either way.
  const flow = ([a, b]: [Socket, Socket]): void => {
    if (stalled) {
      a.unpipe(b);
      b.unpipe(a);
      a.pause();
      b.pause();
    } else {
      a.pipe(b);
      b.pipe(a);
    }
  };
  const track = (s: Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const server = createServer((client) => {
    track(client);
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    track(upstream);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.once('close', () => pairs.delete(pair));
    flow(pair);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
    },
    stall() {
      stalled = true;
      for (const pair of pairs) flow(pair);
    },
    restore() {
      open = true;
      if (stalled) {
        stalled = false;
        for (const pair of pairs) flow(pair);
      }
    },
    async close() {
      open = false;
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
