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
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/** GET against the agent; returns status and parsed JSON (or undefined). */
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
  [key: string]: any;
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
