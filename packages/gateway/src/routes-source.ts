/**
 * Routes hot-reloaded from a registry key (`routesSource`): watches the key,
 * checks each new value exactly like the config file's routes, and hands a
 * new {@link RouteTable} to the gateway, which swaps it in whole. A refused
 * value keeps the last good table; an absent key means the file's routes.
 */
import type { GatewayConfig, RoutesSourceConfig } from './config.js';
import { resolveRouteTable, type RouteTable } from './routing.js';
import type { RoutesSourceStatus } from './status-page.js';
import type { Upstreams } from './upstreams.js';

/** Runs the watch of a `routesSource` key and keeps its status. */
export class RoutesSource {
  readonly #key: string;
  readonly #registry: 'consul' | 'etcd';
  readonly #config: Pick<GatewayConfig, 'defaults'>;
  readonly #apply: (table: RouteTable | undefined) => void;
  readonly #log: (line: string) => void;
  readonly #stop = new AbortController();
  /** The last value handled (undefined: absent), to act on real changes only (a watch answer is no proof of one). */
  #last: { value: string | undefined } | undefined;
  #revision: number | null = null;
  #active: 'key' | 'file' = 'file';
  #valueError: string | null = null;
  #watchError: Error | undefined;
  #updatedAt: number | null = null;
  #firstAnswer: (() => void) | undefined;
  /** While {@link RoutesSource.start} waits: told each failure, to stop waiting on an unreachable registry. */
  #failedAtStart: ((error: Error) => void) | undefined;
  #started = false;
  readonly #answered: Promise<void>;

  /**
   * @param apply - gets the key's table, or `undefined` to go back to the file's routes.
   */
  constructor(source: RoutesSourceConfig, config: Pick<GatewayConfig, 'defaults'>, apply: (table: RouteTable | undefined) => void, log: (line: string) => void) {
    this.#registry = source.etcdKey === undefined ? 'consul' : 'etcd';
    this.#key = source.etcdKey ?? source.consulKey ?? '';
    this.#config = config;
    this.#apply = apply;
    this.#log = log;
    this.#answered = new Promise((resolve) => (this.#firstAnswer = resolve));
  }

  /**
   * Starts watching; resolves once the key was read once (its routes, if valid, in place), or with false
   * after `timeoutMs`, or at once when the registry is unreachable (see {@link Upstreams.isUnreachable}).
   */
  async start(upstreams: Upstreams, timeoutMs: number): Promise<boolean> {
    if (this.#watchError && upstreams.isUnreachable(this.#watchError)) return false;
    const unreachable = new Promise<boolean>((resolve) => {
      this.#failedAtStart = (error) => {
        if (upstreams.isUnreachable(error)) resolve(false);
      };
    });
    if (!this.#started) {
      this.#started = true;
      // The loops report failures and retry; they end only with the signal. A throw would be a bug: reported, not a crash.
      upstreams.watchKey(this.#key, { value: (value, revision) => this.#onValue(value, revision), fail: (error) => this.#onFail(error) }, this.#stop.signal).catch((error: unknown) => {
        this.#onFail(error instanceof Error ? error : new Error(String(error)));
      });
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    try {
      return await Promise.race([this.#answered.then(() => true), timedOut, unreachable]);
    } finally {
      clearTimeout(timer);
      this.#failedAtStart = undefined;
    }
  }

  /** The watched key. */
  get key(): string {
    return this.#key;
  }

  /** The watch's last failure, until the next answer. */
  get watchFailure(): Error | undefined {
    return this.#watchError;
  }

  #onValue(value: string | undefined, revision: number): void {
    this.#watchError = undefined;
    this.#firstAnswer?.();
    this.#firstAnswer = undefined;
    if (this.#last && this.#last.value === value) return;
    this.#last = { value };
    const where = `${this.#registry} key ${this.#key}`;
    if (value === undefined) {
      this.#valueError = null;
      if (this.#active === 'key') this.#log(`routes: ${where} is gone (revision ${revision}): back to the config file's routes`);
      this.#active = 'file';
      this.#revision = null;
      this.#updatedAt = Date.now();
      this.#apply(undefined);
      return;
    }
    let table: RouteTable;
    try {
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch (error) {
        throw new Error(`is not JSON (${(error as Error).message})`, { cause: error });
      }
      table = resolveRouteTable(parsed, this.#config, this.#key);
    } catch (error) {
      this.#valueError = `revision ${revision} refused: ${(error as Error).message}`;
      this.#log(`routes: ${where} revision ${revision} refused, keeping the ${this.#active === 'key' ? `routes of revision ${String(this.#revision)}` : "config file's routes"}: ${(error as Error).message}`);
      return;
    }
    this.#valueError = null;
    this.#active = 'key';
    this.#revision = revision;
    this.#updatedAt = Date.now();
    this.#apply(table);
    this.#log(`routes: ${where} revision ${revision}: ${table.routes.length} route${table.routes.length === 1 ? '' : 's'} in use`);
  }

  #onFail(error: Error): void {
    // Reported, not logged per attempt: the loop retries with backoff, and a down registry shows in the catalog too.
    this.#watchError = error;
    this.#failedAtStart?.(error);
  }

  status(): RoutesSourceStatus {
    return {
      key: this.#key,
      registry: this.#registry,
      active: this.#active,
      revision: this.#revision,
      lastError: this.#valueError ?? this.#watchError?.message ?? null,
      updatedAt: this.#updatedAt,
    };
  }

  close(): void {
    this.#stop.abort();
  }
}
