/**
 * Every core: the `proxyless-gateway` primary forks workers under
 * `node:cluster` (they share one listening port), merges their status for
 * `status.json`, and restarts them one by one on SIGHUP: a new worker listens
 * before an old one drains, so a connection always has a worker to go to.
 * @internal
 * @module
 */
import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import type { EndpointStatus, GatewayStatus, RouteCounters, RoutesSourceStatus, UpstreamEvent } from './status-page.js';
import type { GatewayServer, WorkerStatus } from './gateway.js';
import { summarizeLatency } from './upstreams.js';
import type { TlsStatus } from './tls.js';

/** Messages between the primary and its workers. */
type Message =
  | { readonly type: 'ready'; readonly url: string }
  | { readonly type: 'failed'; readonly message: string; readonly code: number }
  | { readonly type: 'drain'; readonly graceMs: number }
  | { readonly type: 'statusRequest'; readonly id: number }
  | { readonly type: 'statusQuery'; readonly id: number }
  | { readonly type: 'statusReply'; readonly id: number; readonly status: WorkerStatus }
  | { readonly type: 'statusResult'; readonly id: number; readonly status?: GatewayStatus; readonly error?: string };

const isMessage = (value: unknown): value is Message => typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';

/** How long the primary waits for each worker's part of the status, ms. */
const statusTimeoutMs = 1_000;

/** Options of {@link ClusterPrimary}. */
export interface ClusterPrimaryOptions {
  readonly workers: number;
  /** Grace for in-flight requests when a worker drains, ms. */
  readonly graceMs: number;
  readonly log: (line: string) => void;
}

/** The primary: forks, watches and restarts workers, answers their status requests. */
export class ClusterPrimary {
  readonly #options: ClusterPrimaryOptions;
  /** Workers that listen and take traffic. */
  readonly #ready = new Set<Worker>();
  /** Workers told to drain (restart or shutdown): their exit is expected. */
  readonly #leaving = new Set<Worker>();
  #stopping = false;
  #restarting: Promise<void> | undefined;
  #nextQuery = 0;
  readonly #queries = new Map<number, { parts: { pid: number; status: WorkerStatus }[]; expected: number; done: () => void }>();

  constructor(options: ClusterPrimaryOptions) {
    this.#options = options;
  }

  /** Forks every worker; resolves with the URL once all listen, or rejects with the first failure (its line and exit code). */
  async start(): Promise<string> {
    // Every worker asks for the same address and port (0 too): the primary holds one listening
    // socket per such request, so they share it, and it stays open while any worker listens.
    const urls = await Promise.all(Array.from({ length: this.#options.workers }, () => this.#fork()));
    return urls[0] ?? '';
  }

  /** Worker pids now taking traffic. */
  get pids(): number[] {
    return [...this.#ready].map((w) => w.process.pid ?? 0);
  }

  #fork(): Promise<string> {
    const worker = cluster.fork();
    return new Promise<string>((resolve, reject) => {
      let settled = false;
      worker.on('message', (message: unknown) => {
        if (!isMessage(message)) return;
        if (message.type === 'ready' && !settled) {
          settled = true;
          this.#ready.add(worker);
          resolve(message.url);
        } else if (message.type === 'failed' && !settled) {
          settled = true;
          reject(Object.assign(new Error(message.message), { exitCode: message.code }));
        } else if (message.type === 'statusRequest') {
          void this.#status().then(
            (status) => worker.send({ type: 'statusResult', id: message.id, status } satisfies Message),
            (error: unknown) => worker.send({ type: 'statusResult', id: message.id, error: (error as Error).message } satisfies Message),
          );
        } else if (message.type === 'statusReply') {
          const query = this.#queries.get(message.id);
          if (query) {
            query.parts.push({ pid: worker.process.pid ?? 0, status: message.status });
            if (query.parts.length >= query.expected) query.done();
          }
        }
      });
      worker.once('exit', (code, signal) => {
        this.#ready.delete(worker);
        const expected = this.#leaving.delete(worker);
        if (!settled) {
          settled = true;
          reject(Object.assign(new Error(`worker ${String(worker.process.pid)} exited before listening (${signal ?? `code ${String(code)}`})`), { exitCode: 1 }));
          return;
        }
        if (!expected && !this.#stopping) {
          // A crash: replace the worker so the gateway keeps its cores.
          this.#options.log(`worker ${String(worker.process.pid)} exited unexpectedly (${signal ?? `code ${String(code)}`}); starting another`);
          this.#fork().catch((error: unknown) => this.#options.log(`replacement worker failed: ${(error as Error).message}`));
        }
      });
    });
  }

  /** Drains `worker` and waits for its exit (killed after the grace and 2 s more). */
  async #drain(worker: Worker): Promise<void> {
    this.#ready.delete(worker);
    this.#leaving.add(worker);
    const exited = once(worker, 'exit');
    if (worker.isConnected()) worker.send({ type: 'drain', graceMs: this.#options.graceMs } satisfies Message);
    const timer = setTimeout(() => worker.process.kill('SIGKILL'), this.#options.graceMs + 2_000);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Replaces every worker, one at a time: the new one listens before the old
   * one stops accepting and drains, so no request meets a closed port.
   * A second call while one runs joins it.
   */
  rollingRestart(): Promise<void> {
    this.#restarting ??= (async () => {
      try {
        for (const old of [...this.#ready]) {
          if (this.#stopping) return;
          await this.#fork();
          await this.#drain(old);
        }
      } finally {
        this.#restarting = undefined;
      }
    })();
    return this.#restarting;
  }

  /** Drains every worker (SIGTERM). */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#restarting?.catch(() => undefined);
    await Promise.all([...cluster.workers ? Object.values(cluster.workers) : []].filter((w): w is Worker => w !== undefined).map((w) => this.#drain(w)));
  }

  /** Asks every listening worker for its status and merges them. */
  async #status(): Promise<GatewayStatus> {
    const workers = [...this.#ready].filter((w) => w.isConnected());
    const id = this.#nextQuery++;
    const parts: { pid: number; status: WorkerStatus }[] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, statusTimeoutMs);
      this.#queries.set(id, {
        parts,
        expected: workers.length,
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      for (const w of workers) w.send({ type: 'statusQuery', id } satisfies Message);
      if (workers.length === 0) resolve();
    });
    this.#queries.delete(id);
    if (parts.length === 0) throw new Error('no worker answered');
    return mergeStatuses(parts);
  }
}

/** Runs in a worker: answers the primary's status queries, asks it for the merged status, drains when told to. */
export function serveAsWorker(gateway: GatewayServer): void {
  let nextId = 0;
  const pending = new Map<number, { resolve: (s: GatewayStatus) => void; reject: (e: Error) => void }>();
  gateway.statusSource = () =>
    new Promise<GatewayStatus>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error('the primary did not answer'));
      }, statusTimeoutMs * 2);
      pending.set(id, {
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
        reject,
      });
      process.send?.({ type: 'statusRequest', id } satisfies Message);
    });
  const drain = (graceMs: number): void => {
    void gateway.close({ graceMs }).finally(() => process.exit(0));
  };
  process.on('message', (message: unknown) => {
    if (!isMessage(message)) return;
    if (message.type === 'statusQuery') process.send?.({ type: 'statusReply', id: message.id, status: gateway.workerStatus() } satisfies Message);
    else if (message.type === 'statusResult') {
      const p = pending.get(message.id);
      pending.delete(message.id);
      if (message.status) p?.resolve(message.status);
      else p?.reject(new Error(message.error ?? 'status failed'));
    } else if (message.type === 'drain') drain(message.graceMs);
  });
  // The primary orchestrates shutdown; a terminal's Ctrl-C reaches the whole group, so workers wait for its word.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => undefined);
  // The primary died (SIGKILL): nobody will say drain.
  process.once('disconnect', () => drain(5_000));
}

/** Tells the primary this worker listens (or could not start). */
export function reportToPrimary(message: { type: 'ready'; url: string } | { type: 'failed'; message: string; code: number }): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) resolve();
    else process.send(message satisfies Message, undefined, {}, () => resolve());
  });
}

/** Every worker's certificate state as one: a worker whose reload was refused shows (each reloads on its own), counts summed. */
function mergeTls(all: readonly (TlsStatus | undefined)[]): { tls?: TlsStatus } {
  const present = all.filter((t): t is TlsStatus => t !== undefined);
  const shown = present.find((t) => t.lastError !== null) ?? present.sort((a, b) => b.loadedAt - a.loadedAt)[0];
  if (!shown) return {};
  return { tls: { ...shown, reloads: present.reduce((a, t) => a + t.reloads, 0), failedReloads: present.reduce((a, t) => a + t.failedReloads, 0) } };
}

const breakerRank = { closed: 0, halfOpen: 1, open: 2 } as const;

/** One document from every worker's: counters summed, latency windows merged, the worst breaker state shown. */
export function mergeStatuses(parts: readonly { pid: number; status: WorkerStatus }[]): GatewayStatus {
  const first = parts[0]?.status.status;
  if (!first) throw new Error('no worker status to merge');
  const sum = <T extends object>(items: readonly T[], keys: readonly (keyof T)[]): Record<string, number> =>
    Object.fromEntries(keys.map((k) => [k, items.reduce((a, i) => a + (i[k] as number), 0)]));
  const counterKeys: (keyof RouteCounters)[] = ['requests', 'succeeded', 'clientErrors', 'rejected', 'clientHangups', 'upstreamFailures'];
  const routes = new Map<string, { id: string; service: string } & RouteCounters>();
  for (const { status } of parts) {
    for (const r of status.status.routes) {
      const seen = routes.get(r.id);
      routes.set(r.id, seen ? { id: r.id, service: r.service, ...(sum([seen, r], counterKeys) as unknown as RouteCounters) } : { ...r });
    }
  }
  const services = new Map<string, { name: string; routes: Set<string>; endpoints: Map<string, EndpointStatus>; samples: Map<string, number[]> }>();
  for (const { status } of parts) {
    for (const svc of status.status.services) {
      let s = services.get(svc.name);
      if (!s) services.set(svc.name, (s = { name: svc.name, routes: new Set(), endpoints: new Map(), samples: new Map() }));
      for (const r of svc.routes) s.routes.add(r);
      for (const e of svc.endpoints) {
        const seen = s.endpoints.get(e.key);
        s.endpoints.set(e.key, seen ? {
          ...seen,
          inFlight: seen.inFlight + e.inFlight,
          successes: seen.successes + e.successes,
          failures: seen.failures + e.failures,
          costMs: Math.max(seen.costMs, e.costMs),
          breaker: breakerRank[e.breaker] > breakerRank[seen.breaker] ? e.breaker : seen.breaker,
          ejected: seen.ejected || e.ejected,
          // Each worker holds its own last report: show the freshest.
          reportedLoad: seen.reportedLoad === null || (e.reportedLoad !== null && e.reportedLoad.ageMs < seen.reportedLoad.ageMs) ? e.reportedLoad : seen.reportedLoad,
        } : e);
      }
      for (const [label, values] of Object.entries(status.samples[svc.name] ?? {})) s.samples.set(label, [...(s.samples.get(label) ?? []), ...values]);
    }
  }
  const events: UpstreamEvent[] = parts.flatMap((p) => p.status.status.events).sort((a, b) => b.at - a.at).slice(0, 20);
  const gateways = parts.map((p) => p.status.status.gateway);
  return {
    gateway: {
      name: first.gateway.name,
      startedAt: Math.min(...gateways.map((g) => g.startedAt)),
      uptimeMs: Math.max(...gateways.map((g) => g.uptimeMs)),
      requests: gateways.reduce((a, g) => a + g.requests, 0),
      inFlight: gateways.reduce((a, g) => a + g.inFlight, 0),
      noRoute: gateways.reduce((a, g) => a + g.noRoute, 0),
      outcomes: sum(gateways.map((g) => g.outcomes), counterKeys) as unknown as RouteCounters,
      catalogError: gateways.find((g) => g.catalogError !== null)?.catalogError ?? null,
      catalogStale: gateways.some((g) => g.catalogStale),
      upgrades: {
        requests: gateways.reduce((a, g) => a + (g.upgrades?.requests ?? 0), 0),
        upgraded: gateways.reduce((a, g) => a + (g.upgrades?.upgraded ?? 0), 0),
        open: gateways.reduce((a, g) => a + (g.upgrades?.open ?? 0), 0),
        failed: gateways.reduce((a, g) => a + (g.upgrades?.failed ?? 0), 0),
      },
      ...mergeTls(gateways.map((g) => g.tls)),
    },
    ...mergeRoutesSource(parts.map((p) => p.status.status.routesSource)),
    workers: parts.map(({ pid, status }) => ({ pid, uptimeMs: status.status.gateway.uptimeMs, requests: status.status.gateway.requests, inFlight: status.status.gateway.inFlight })),
    routes: [...routes.values()],
    events,
    services: [...services.values()].sort((a, b) => a.name.localeCompare(b.name)).map((s) => ({
      name: s.name,
      routes: [...s.routes],
      endpoints: [...s.endpoints.values()].sort((a, b) => a.key.localeCompare(b.key)).map((e) => ({ ...e, latency: summarizeLatency(s.samples.get(e.label) ?? []) })),
    })),
    generatedAt: Date.now(),
  };
}

/** Each worker watches the routes key itself: show the newest revision any of them uses, and any error one reports. */
function mergeRoutesSource(all: readonly (RoutesSourceStatus | undefined)[]): { routesSource?: RoutesSourceStatus } {
  const present = all.filter((r): r is RoutesSourceStatus => r !== undefined);
  const newest = present.reduce<RoutesSourceStatus | undefined>((a, r) => (a === undefined || (r.updatedAt ?? 0) > (a.updatedAt ?? 0) ? r : a), undefined);
  if (!newest) return {};
  return { routesSource: { ...newest, lastError: newest.lastError ?? present.find((r) => r.lastError !== null)?.lastError ?? null } };
}
