/**
 * Bench helper: a child process running one checkout's build
 * (build-worker.ts), so this tree's build and a BEFORE build each run alone
 * in their own process, called in turn by one bench (interleaved, in one run).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeCheckout } from './builds.js';

interface Reply {
  id?: number;
  ok?: boolean;
  value?: unknown;
  error?: string;
  ready?: boolean;
  versions?: string;
}

export class BuildProcess {
  readonly label: string;
  readonly dir: string;
  readonly versions: string;
  readonly #child: ChildProcess;
  #next = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(label: string, dir: string, child: ChildProcess, versions: string) {
    this.label = label;
    this.dir = dir;
    this.#child = child;
    this.versions = versions;
    child.on('message', (m: Reply) => {
      if (m.id === undefined) return;
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      if (m.ok === true) p?.resolve(m.value);
      else p?.reject(new Error(`[${label}] ${m.error ?? 'failed'}`));
    });
    child.once('exit', (code, signal) => {
      for (const p of this.#pending.values()) p.reject(new Error(`[${label}] worker exited (${String(code ?? signal)})`));
      this.#pending.clear();
    });
  }

  /** Starts a worker for the build in `dir` (its own process: `node --import tsx`, no source condition). */
  static async start(label: string, dir: string, timeoutMs = 60_000): Promise<BuildProcess> {
    const child = fork(fileURLToPath(new URL('./build-worker.ts', import.meta.url)), [dir], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const ready = new Promise<Reply>((resolve, reject) => {
      child.on('message', (m: Reply) => {
        if (m.ready === true) resolve(m);
      });
      child.once('exit', (code) => reject(new Error(`[${label}] worker for ${dir} exited (${String(code)}) before it was ready`)));
    });
    const timer = sleep(timeoutMs, undefined, { ref: false }).then(() => {
      throw new Error(`[${label}] worker for ${dir} not ready within ${timeoutMs} ms`);
    });
    try {
      const m = await Promise.race([ready, timer]);
      return new BuildProcess(label, dir, child, m.versions ?? '');
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
  }

  /** Calls `fn(build, args)` of a bench/support module (path relative to bench/support/) in the worker. */
  call<T>(module: string, fn: string, args: unknown = {}): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#child.send({ id, module, fn, args });
    });
  }

  /** `label: dir at commit …`, for the report. */
  describe(): string {
    return `${this.label}: ${describeCheckout(this.dir)}; ${this.versions}`;
  }

  /** Stops the worker (its `finally` blocks have run: every call has returned). */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.disconnect();
    await Promise.race([exited, sleep(5_000).then(() => child.kill('SIGKILL'))]);
  }
}

/** Starts one worker per checkout (in order); stops those started if one fails. */
export async function startBuildProcesses(checkouts: { label: string; dir: string }[]): Promise<BuildProcess[]> {
  const started: BuildProcess[] = [];
  try {
    for (const c of checkouts) started.push(await BuildProcess.start(c.label, c.dir));
    return started;
  } catch (e) {
    for (const p of started) await p.stop();
    throw e;
  }
}
