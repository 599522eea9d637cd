import { EventEmitter } from 'eventemitter3';
import { constants } from 'node:os';
import { InvalidOptionError, TimeoutError } from '@proxyless/core';
import { checkKnownKeys, checkNumber, optionKeys, withDeadline } from '@proxyless/core/internal';
import type { RegistrarState } from './registrar-events.js';
import { drainServer, type DrainableServer } from './server-drain.js';

/** An app hook run after the servers are closed; it gets a signal that fires at the deadline. */
export type ShutdownHook = (signal: AbortSignal) => void | Promise<void>;

/** Names of the ordered shutdown steps, as reported by the `step` event. */
export type ShutdownStep = 'outOfRotation' | 'propagation' | 'drainDelay' | 'deregister' | 'closeServers' | 'hooks';

/**
 * What the coordinator needs of a registration: a {@link Registrar} is one.
 * Declared here, and implemented by the registrar, so this module never
 * imports the registrar (grpc-js `ChannelControlHelper` style).
 */
export interface ShutdownParticipant {
  readonly state: RegistrarState;
  /** Whether a registration still in progress may already be in the registry. */
  readonly maybeRegistered: boolean;
  readonly options: { readonly id: string };
  /** Named in the log when a registration never reached it. */
  readonly registry: { readonly label: string };
  /** Reports critical on every beat: out of rotation. */
  drain(): Promise<void>;
  /** Switches maintenance mode on: out of rotation. */
  enableMaintenance(reason?: string): Promise<void>;
  /** Resolves true once clients no longer see the instance as healthy, false at `timeoutMs`. */
  waitUntilOutOfRotation(options: { timeoutMs?: number }): Promise<boolean>;
  /** Deregisters. */
  stop(options: { timeoutMs?: number }): Promise<void>;
}

/** Options of a {@link ShutdownCoordinator}. Durations are in milliseconds. */
export interface ShutdownOptions {
  /** Registrations to take out of rotation and deregister. */
  registrars?: readonly ShutdownParticipant[];
  /** HTTP servers to close after deregistration. */
  servers?: readonly DrainableServer[];
  /** App hooks, run in order after the servers are closed. */
  hooks?: readonly ShutdownHook[];
  /** Signals that start the shutdown. Default `['SIGTERM', 'SIGINT']`. */
  signals?: readonly NodeJS.Signals[];
  /** Total time from the signal to exit. Default 9000: inside Docker's 10 s stop grace period. */
  deadlineMs?: number;
  /**
   * How the instance leaves rotation: `'check'` reports its health critical on
   * every beat (Consul: fails the TTL check; etcd: writes `health: critical`;
   * the default), `'maintenance'` switches maintenance mode on.
   */
  outOfRotation?: 'check' | 'maintenance';
  /**
   * Longest wait until clients no longer see the instance (Consul: gone from the
   * passing health query; etcd: key critical or gone). Default 3000.
   */
  propagationTimeoutMs?: number;
  /**
   * Extra time after that for watchers that poll or cache (blocking-query
   * watchers see the change at once). Default 1000.
   */
  drainDelayMs?: number;
  /** Time kept in reserve for deregistration and closing servers. Default `min(3000, deadlineMs / 3)`. */
  reserveMs?: number;
  /**
   * Exit at the end: `true` (default) calls `process.exit`, a function is
   * called with the exit code instead, `false` does not exit.
   */
  exit?: boolean | ((code: number) => void);
  /** Deregister and exit non-zero on an uncaught exception. Default `true`. */
  handleUncaughtExceptions?: boolean;
  /** Where progress lines go. Default: one line per step to stderr. */
  log?: (message: string) => void;
}

/** Events of a {@link ShutdownCoordinator}. */
export interface ShutdownEvents {
  /** A shutdown started, because of a signal name or a reason given to {@link ShutdownCoordinator.shutdown}. */
  start: [reason: string];
  /** A step finished, `elapsedMs` after the start. */
  step: [step: ShutdownStep, elapsedMs: number];
  /** A step failed or ran out of time; the shutdown goes on. */
  error: [error: Error, step: ShutdownStep];
  /** The shutdown finished; `code` is the exit code. */
  done: [code: number];
}

/** Runs `work` but gives up (rejecting with a TimeoutError) after `ms`, even if a hook ignores its deadline. */
function bounded<T>(what: string, ms: number, work: () => Promise<T>): Promise<T> {
  return withDeadline(undefined, Math.max(0, Math.round(ms)), work, { settleAtDeadline: true, what });
}

function signalNumber(signal: NodeJS.Signals): number {
  return (constants.signals as Record<string, number | undefined>)[signal] ?? 15;
}

const shutdownKeys = optionKeys<ShutdownOptions>({
  registrars: true, servers: true, hooks: true, signals: true, deadlineMs: true, outOfRotation: true, propagationTimeoutMs: true,
  drainDelayMs: true, reserveMs: true, exit: true, handleUncaughtExceptions: true, log: true,
});

/**
 * Maps signals to an ordered, deadline-bounded drain:
 * take the instance out of rotation → wait until clients no longer see it
 * (bounded) → a short delay for polling watchers → deregister →
 * close the HTTP servers (stop accepting, finish in-flight requests, close
 * idle keep-alive sockets, force-close at the deadline) → run the app's hooks
 * → exit (0 when every step succeeded, 1 otherwise). A second signal exits at
 * once with `128 + signal number`.
 *
 * ## Events
 *
 * Subscribe with `on(name, listener)`; the listener's arguments are typed by {@link ShutdownEvents}.
 *
 * - {@link ShutdownEvents.start | `start`} `(reason)`: A shutdown started, because of a signal name or a reason given to {@link ShutdownCoordinator.shutdown}.
 * - {@link ShutdownEvents.step | `step`} `(step, elapsedMs)`: A step finished, `elapsedMs` after the start.
 * - {@link ShutdownEvents.error | `error`} `(error, step)`: A step failed or ran out of time; the shutdown goes on.
 * - {@link ShutdownEvents.done | `done`} `(code)`: The shutdown finished; `code` is the exit code.
 *
 * @example
 * ```ts
 * const shutdown = new ShutdownCoordinator({ registrars: [registrar], servers: [server] });
 * shutdown.addHook(async () => { await db.end(); });
 * shutdown.install();
 * ```
 */
export class ShutdownCoordinator extends EventEmitter<ShutdownEvents> {
  readonly #registrars: ShutdownParticipant[];
  readonly #servers: DrainableServer[];
  readonly #hooks: ShutdownHook[];
  readonly #signals: readonly NodeJS.Signals[];
  readonly #deadlineMs: number;
  readonly #outOfRotation: 'check' | 'maintenance';
  readonly #propagationTimeoutMs: number;
  readonly #drainDelayMs: number;
  readonly #reserveMs: number;
  readonly #exit: ((code: number) => void) | undefined;
  readonly #handleUncaught: boolean;
  readonly #log: (message: string) => void;
  #installed = false;
  #running: Promise<number> | undefined;
  readonly #onSignal = (signal: NodeJS.Signals): void => {
    if (this.#running) {
      this.#log(`second ${signal}: exiting now`);
      this.#exitNow(128 + signalNumber(signal));
      return;
    }
    void this.shutdown(signal);
  };
  readonly #onUncaught = (error: Error): void => {
    this.#log(`uncaught exception: ${error.stack ?? error.message}`);
    if (this.#running) {
      this.#exitNow(1);
      return;
    }
    // The process is in an unknown state: skip the drain, only deregister (briefly) and exit.
    this.#running = (async () => {
      await Promise.allSettled(this.#registrars.map((r) => r.stop({ timeoutMs: 2000 })));
      this.#exitNow(1);
      return 1;
    })();
  };

  /** Validates options; nothing happens until {@link ShutdownCoordinator.install} or {@link ShutdownCoordinator.shutdown}. */
  constructor(options: ShutdownOptions = {}) {
    super();
    checkKnownKeys('', options, shutdownKeys, 'ShutdownCoordinator');
    this.#registrars = [...(options.registrars ?? [])];
    this.#servers = [...(options.servers ?? [])];
    this.#hooks = [...(options.hooks ?? [])];
    this.#signals = options.signals ?? ['SIGTERM', 'SIGINT'];
    if (!Array.isArray(this.#signals) || this.#signals.some((s) => typeof s !== 'string' || !(s in constants.signals))) {
      throw new InvalidOptionError('signals', this.#signals, 'must be an array of signal names');
    }
    this.#deadlineMs = checkNumber('deadlineMs', options.deadlineMs, 9000, { min: 100 });
    this.#outOfRotation = options.outOfRotation ?? 'check';
    if (this.#outOfRotation !== 'check' && this.#outOfRotation !== 'maintenance') {
      throw new InvalidOptionError('outOfRotation', this.#outOfRotation, 'must be "check" or "maintenance"');
    }
    this.#propagationTimeoutMs = checkNumber('propagationTimeoutMs', options.propagationTimeoutMs, 3000, { min: 0 });
    this.#drainDelayMs = checkNumber('drainDelayMs', options.drainDelayMs, 1000, { min: 0 });
    this.#reserveMs = checkNumber('reserveMs', options.reserveMs, Math.min(3000, this.#deadlineMs / 3), { min: 0 });
    if (this.#reserveMs >= this.#deadlineMs) {
      throw new InvalidOptionError('reserveMs', this.#reserveMs, `must be less than deadlineMs (${this.#deadlineMs})`);
    }
    const exit = options.exit ?? true;
    this.#exit = exit === true ? (code) => process.exit(code) : exit === false ? undefined : exit;
    this.#handleUncaught = options.handleUncaughtExceptions ?? true;
    this.#log = options.log ?? ((message) => process.stderr.write(`[proxyless shutdown] ${message}\n`));
  }

  /** Adds a registrar to drain and deregister. */
  addRegistrar(registrar: ShutdownParticipant): this {
    this.#registrars.push(registrar);
    return this;
  }

  /** Adds an HTTP server to close. */
  addServer(server: DrainableServer): this {
    this.#servers.push(server);
    return this;
  }

  /** Adds an app hook, run after the servers are closed. */
  addHook(hook: ShutdownHook): this {
    this.#hooks.push(hook);
    return this;
  }

  /** True once a shutdown has started. */
  get shuttingDown(): boolean {
    return this.#running !== undefined;
  }

  /** Installs the signal (and uncaught exception) handlers. Idempotent. */
  install(): this {
    if (this.#installed) return this;
    this.#installed = true;
    for (const signal of this.#signals) process.on(signal, this.#onSignal);
    if (this.#handleUncaught) process.on('uncaughtException', this.#onUncaught);
    return this;
  }

  /** Removes the handlers installed by {@link ShutdownCoordinator.install}. */
  uninstall(): this {
    if (!this.#installed) return this;
    this.#installed = false;
    for (const signal of this.#signals) process.off(signal, this.#onSignal);
    process.off('uncaughtException', this.#onUncaught);
    return this;
  }

  /**
   * Runs the ordered shutdown once (later calls return the same promise) and
   * resolves with the exit code; exits the process unless `exit: false`.
   */
  shutdown(reason = 'shutdown'): Promise<number> {
    this.#running ??= this.#run(reason);
    return this.#running;
  }

  #exitNow(code: number): void {
    if (this.#exit) this.#exit(code);
  }

  async #run(reason: string): Promise<number> {
    const started = Date.now();
    const deadline = started + this.#deadlineMs;
    const deadlineAbort = new AbortController();
    let ok = true;
    this.#log(`${reason}: draining (deadline ${this.#deadlineMs} ms)`);
    this.emit('start', reason);
    // The last resort: whatever is still pending at the deadline, exit.
    const hardStop = setTimeout(() => {
      deadlineAbort.abort();
      this.#log(`deadline of ${this.#deadlineMs} ms reached: forcing exit`);
      for (const server of this.#servers) server.closeAllConnections();
      this.emit('done', 1);
      this.#exitNow(1);
    }, this.#deadlineMs);
    const softBudget = (): number => Math.max(0, deadline - this.#reserveMs - Date.now());
    const step = async (name: ShutdownStep, budgetMs: number, work: () => Promise<unknown>): Promise<void> => {
      try {
        await bounded(name, budgetMs, work);
      } catch (error) {
        ok = false;
        const e = error instanceof Error ? error : new Error(String(error));
        this.#log(`${name} failed: ${e.message}`);
        this.emit('error', e, name);
      }
      this.emit('step', name, Date.now() - started);
    };

    // 'registering' too: the register PUT may already be applied while start()
    // still waits for its first heartbeat; skipping it would leave it behind.
    // Only a registration that may have reached the registry; one still retrying against an
    // unreachable registry was never seen there, so nothing is drained, deregistered or claimed.
    const pending = this.#registrars.filter((r) => r.state === 'registering' && !r.maybeRegistered);
    for (const r of pending) this.#log(`${r.options.id} was never registered (${r.registry.label} has not been reached): nothing to take out of rotation`);
    const registrars = this.#registrars.filter((r) => r.state === 'registered' || r.state === 'lost' || (r.state === 'registering' && r.maybeRegistered));
    await step('outOfRotation', softBudget(), () =>
      Promise.all(registrars.map((r) => (this.#outOfRotation === 'maintenance' ? r.enableMaintenance('shutting down') : r.drain()))),
    );
    await step('propagation', softBudget(), async () => {
      const budget = Math.min(this.#propagationTimeoutMs, softBudget());
      const gone = await Promise.all(registrars.map((r) => r.waitUntilOutOfRotation({ timeoutMs: budget })));
      const unconfirmed = registrars.filter((_, i) => !gone[i]).map((r) => r.options.id);
      // Not "still passing": an unreachable registry confirms nothing either way.
      if (unconfirmed.length > 0) this.#log(`${unconfirmed.join(', ')}: not confirmed out of rotation within ${budget} ms; going on`);
    });
    // A ref'd timer on purpose (not core's unref'd sleep): the drain delay must keep the process alive.
    await step('drainDelay', softBudget() + 1, () => new Promise((r) => setTimeout(r, Math.min(this.#drainDelayMs, softBudget()))));
    await step('deregister', Math.max(0, deadline - Date.now() - 100), () =>
      Promise.all([...registrars, ...pending].map((r) => r.stop({ timeoutMs: Math.max(1, Math.min(3000, deadline - Date.now() - 200)) }))),
    );
    await step('closeServers', Math.max(0, deadline - Date.now()), async () => {
      const results = await Promise.all(this.#servers.map((s) => drainServer(s, { deadline: deadline - 50 })));
      if (results.some((r) => r.forced)) throw new TimeoutError('closing HTTP servers', this.#deadlineMs);
    });
    await step('hooks', Math.max(0, deadline - Date.now()), async () => {
      for (const hook of this.#hooks) await hook(deadlineAbort.signal);
    });
    clearTimeout(hardStop);
    const code = ok ? 0 : 1;
    // Only when this coordinator ends the process is its code the process's exit code; otherwise the owner decides.
    this.#log(
      this.#exit
        ? `done in ${Date.now() - started} ms, exit code ${code}`
        : `done in ${Date.now() - started} ms, ${ok ? 'every step succeeded' : 'a step failed'}`,
    );
    this.emit('done', code);
    this.uninstall();
    this.#exitNow(code);
    return code;
  }
}
