import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventEmitter } from 'eventemitter3';
import { diffInstances, type Resolver, type ServiceInstance, type ServiceSnapshot, type ServiceWatch, type ServiceWatchEvents, type CallOptions } from '@proxyless/core';
import { until as untilHolds } from '../../../test/support/wait.js';

/** A fake resolver implementing the public Resolver interface; `set()` publishes a snapshot. */
export class FakeResolver implements Resolver {
  readonly watches = new Set<FakeWatch>();
  current: ServiceSnapshot | undefined;

  set(instances: readonly ServiceInstance[], options: { stale?: boolean } = {}): void {
    const snapshot: ServiceSnapshot = { service: 'svc', instances: Object.freeze([...instances]), stale: options.stale ?? false, updatedAt: Date.now(), source: 'fake' };
    this.current = snapshot;
    for (const w of this.watches) w.publish(snapshot);
  }

  /** The source fails: the last set stays, marked stale (stale-if-error), and `error` is reported. */
  fail(error: Error): void {
    const last = this.current;
    if (last === undefined) throw new Error('fail() needs a set first');
    const snapshot: ServiceSnapshot = { ...last, stale: true };
    this.current = snapshot;
    for (const w of this.watches) w.fail(snapshot, error);
  }

  async resolve(): Promise<readonly ServiceInstance[]> {
    return this.current?.instances ?? [];
  }

  watch(service: string): ServiceWatch {
    const w = new FakeWatch(service, this);
    this.watches.add(w);
    if (this.current) {
      const snap = this.current;
      setImmediate(() => w.publish(snap));
    }
    return w;
  }

  async close(): Promise<void> {
    for (const w of this.watches) await w.close();
  }
}

class FakeWatch extends EventEmitter<ServiceWatchEvents> implements ServiceWatch {
  current: ServiceSnapshot | undefined;
  lastError: Error | undefined;
  readonly #waiters: ((s: ServiceSnapshot) => void)[] = [];
  constructor(
    readonly service: string,
    readonly owner: FakeResolver,
  ) {
    super();
  }
  publish(snapshot: ServiceSnapshot): void {
    // As the watch contract says: the change since what this subscriber last heard (from empty first).
    const change = diffInstances(this.current?.instances ?? [], snapshot.instances);
    this.current = snapshot;
    this.lastError = undefined;
    this.emit('update', snapshot, change);
    for (const w of this.#waiters.splice(0)) w(snapshot);
  }
  fail(snapshot: ServiceSnapshot, error: Error): void {
    this.current = snapshot;
    this.lastError = error;
    this.emit('update', snapshot, diffInstances(snapshot.instances, snapshot.instances));
    this.emit('error', error);
  }
  ready(options?: CallOptions): Promise<ServiceSnapshot> {
    if (this.current) return Promise.resolve(this.current);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('ready timeout')), options?.timeoutMs ?? 10_000);
      t.unref();
      this.#waiters.push((s) => {
        clearTimeout(t);
        resolve(s);
      });
    });
  }
  async close(): Promise<void> {
    this.owner.watches.delete(this);
    this.removeAllListeners();
  }
}

export function instance(port: number, address = '127.0.0.1'): ServiceInstance {
  return Object.freeze({
    key: `${address}:${port}`,
    id: `svc-${port}`,
    service: 'svc',
    address,
    port,
    tags: [],
    meta: {},
    weights: { passing: 1, warning: 1 },
    health: 'passing' as const,
  });
}

export interface TestServer {
  server: Server;
  port: number;
  hits: number;
  close(): Promise<void>;
}

export async function startServer(handler: (req: IncomingMessage, res: ServerResponse, s: TestServer) => void, port = 0): Promise<TestServer> {
  const server = createServer();
  const s: TestServer = {
    server,
    port: 0,
    hits: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    s.hits++;
    handler(req, res, s);
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  s.port = (server.address() as AddressInfo).port;
  return s;
}

export const ok = (_req: IncomingMessage, res: ServerResponse, s: TestServer): void => {
  res.end(`ok ${s.port}`);
};

/** Polls `condition` until true or the deadline passes (test/support/wait.ts `until`, in this package's argument order). */
export function until(condition: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  return untilHolds(what, condition, timeoutMs);
}

/** A free loopback port (listen on 0, close). */
export async function freePort(): Promise<number> {
  const s = await startServer(ok);
  const port = s.port;
  await s.close();
  return port;
}
