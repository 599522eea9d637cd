import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = resolve(packageRoot, '..', '..');

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  { timeoutMs = 20_000, intervalMs = 25 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError instanceof Error ? ` (last error: ${lastError.message})` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/** GET against the agent; returns status and parsed JSON (or undefined). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function consulGet(httpUrl: string, path: string): Promise<{ status: number; body: any; index: string | null }> {
  const res = await fetch(`${httpUrl}${path}`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  return { status: res.status, body, index: res.headers.get('x-consul-index') };
}

/** IDs of the instances of `name` in the passing set. */
export async function passingIds(httpUrl: string, name: string): Promise<string[]> {
  const { status, body } = await consulGet(httpUrl, `/v1/health/service/${name}?passing`);
  if (status !== 200) throw new Error(`health query answered ${status}`);
  return (body as { Service: { ID: string } }[]).map((e) => e.Service.ID);
}

/** The status of a check on the agent, or undefined when the agent does not know it. */
export async function checkStatus(httpUrl: string, checkId: string): Promise<string | undefined> {
  const { body } = await consulGet(httpUrl, '/v1/agent/checks');
  return (body as Record<string, { Status: string }>)[checkId]?.Status;
}

/** One JSON line a child reported. */
export interface ChildEvent {
  event: string;
  t: number;
  [key: string]: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** A child process that reports JSON lines on stdout. */
export interface ReportingChild {
  readonly child: ChildProcess;
  readonly events: ChildEvent[];
  readonly stderr: () => string;
  waitEvent(event: string, timeoutMs?: number): Promise<ChildEvent>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; t: number }>;
}

/** Spawns `node --conditions=proxyless-source --import tsx <script> ...args`. */
export function spawnNode(script: string, args: string[], env: NodeJS.ProcessEnv): ReportingChild {
  const child = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', script, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return wrap(child);
}

/** Wraps a spawned child whose stdout carries JSON lines. */
export function wrap(child: ChildProcess): ReportingChild {
  const events: ChildEvent[] = [];
  let errText = '';
  let buffer = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        events.push(JSON.parse(line) as ChildEvent);
      } catch {
        // not ours (the wrapped command's output)
      }
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    errText = (errText + chunk.toString()).slice(-20_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; t: number }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal, t: Date.now() }));
  });
  return {
    child,
    events,
    stderr: () => errText,
    exited,
    async waitEvent(event, timeoutMs = 30_000) {
      return waitFor(
        `child event "${event}"; stderr:\n${errText}`,
        () => {
          if (child.exitCode !== null || child.signalCode !== null) {
            const found = events.find((e) => e.event === event);
            if (found) return found;
            throw new Error(`child exited (${String(child.exitCode ?? child.signalCode)}) before "${event}": ${errText}`);
          }
          return events.find((e) => e.event === event);
        },
        { timeoutMs },
      );
    },
  };
}

export const fixture = (file: string): string => join(packageRoot, 'test', 'fixtures', file);

/** One request of the load client. */
export interface ClientRequest {
  instance: string;
  start: number;
  end: number;
  status?: number;
  error?: string;
}

/**
 * A client that discovers `name` through blocking queries on the passing
 * health endpoint (as Proxyless clients do) and keeps `concurrency` requests
 * in flight against the instances it currently sees.
 */
export function startWatchingClient(httpUrl: string, name: string, concurrency = 4, delayMs = 40) {
  let endpoints: { id: string; url: string }[] = [];
  const changes: { t: number; ids: string[] }[] = [];
  const requests: ClientRequest[] = [];
  let stopped = false;
  const stop = new AbortController();

  const watch = async (): Promise<void> => {
    let index = '0';
    while (!stopped) {
      try {
        const res = await fetch(`${httpUrl}/v1/health/service/${name}?passing&index=${index}&wait=5s`, {
          signal: AbortSignal.any([stop.signal, AbortSignal.timeout(10_000)]),
        });
        const body = (await res.json()) as { Service: { ID: string; Address: string; Port: number } }[];
        index = res.headers.get('x-consul-index') ?? index;
        const next = body.map((e) => ({ id: e.Service.ID, url: `http://${e.Service.Address}:${e.Service.Port}` }));
        const ids = next.map((e) => e.id).sort();
        const last = changes[changes.length - 1];
        if (!last || last.ids.join() !== ids.join()) changes.push({ t: Date.now(), ids });
        endpoints = next;
      } catch {
        if (!stopped) await sleep(50);
      }
    }
  };

  const worker = async (w: number): Promise<void> => {
    let i = w;
    while (!stopped) {
      const list = endpoints;
      if (list.length === 0) {
        await sleep(10);
        continue;
      }
      const target = list[i++ % list.length]!;
      const entry: ClientRequest = { instance: target.id, start: Date.now(), end: 0 };
      requests.push(entry);
      try {
        const res = await fetch(`${target.url}/?delay=${delayMs}`, { signal: AbortSignal.timeout(10_000) });
        await res.text();
        entry.status = res.status;
      } catch (error) {
        entry.error = String((error as Error & { cause?: unknown }).cause ?? error);
      }
      entry.end = Date.now();
    }
  };

  const running = Promise.all([watch(), ...Array.from({ length: concurrency }, (_, w) => worker(w))]);
  return {
    requests,
    changes,
    /** First time after `after` at which the client's view no longer contains `id`. */
    leftAt(id: string, after: number): number | undefined {
      return changes.find((c) => c.t >= after && !c.ids.includes(id))?.t;
    },
    sees(id: string): boolean {
      return endpoints.some((e) => e.id === id);
    },
    async stop(): Promise<void> {
      stopped = true;
      stop.abort();
      await running;
    },
  };
}
