/**
 * The one Consul blocking-query loop. Every Consul watch in Proxyless (health
 * watches, the catalog watch, the registrar's own-health wait; prepared-query
 * watches too, as plain polls, since Consul does not block there) runs on it, so
 * the rules of Consul's blocking-query guidance live in one place:
 *
 * - the first call is immediate; later calls block on the last `X-Consul-Index`;
 * - an index that goes backwards resets to a non-blocking call; 0 is never sent
 *   (it would return at once, forever): it is sent as 1; an answer without a
 *   readable index is a {@link BadResponseError};
 * - the client timeout is `wait×17/16 + 5 s`, above Consul's own wait jitter;
 * - polls are rate-limited by a small token bucket: a burst of changes is
 *   followed by immediate re-polls, while an index that keeps moving (or an
 *   answer that returns at once) cannot spin the loop above the sustained rate;
 * - errors back off with full jitter and a cap suited to a local agent; when
 *   the agent cannot be reached at all, every watch of the same client parks
 *   on one shared reachability probe ({@link AgentProbe}) and, once the agent
 *   answers again, resumes after its own random delay so N watches do not
 *   come back in lockstep;
 * - a blocking query sends nothing for its whole wait, so silence proves
 *   nothing: while long polls are open and the agent has said nothing for
 *   `watchIdleMs`, one check per client ({@link AgentWatchdog}) asks it
 *   `GET /v1/status/leader` with a short deadline, and an agent that does not
 *   answer ends every long poll of that client as failed (its host went away
 *   without a reset, or it froze);
 * - an answer whose index went backwards is the start of a new history (agent
 *   restarted with its data gone, snapshot restored): `onReset` is called
 *   before it is handed over. Being unreachable for a while is not a reset by
 *   itself: after a blip (connections refused, same agent, same data) the
 *   index has not gone backwards, and an instance that left meanwhile has
 *   really left.
 */
import { BadResponseError, ConsulApiError, ConsulUnreachableError, h2StreamsPerConnection, type ConsulHttpClient, type ConsulRequest, type ConsulResponse } from './consul-http.js';
import { InvalidOptionError } from './errors.js';
import type { SnapshotSourceInfo } from './resolver.js';
import { backoffDelay, checkBackoff, type BackoffOptions } from './backoff.js';
import { sleep } from './sleep.js';
import { checkKnownKeys, checkNumber, optionKeys } from './validate.js';

/** Token-bucket rate limit of one blocking-query loop. */
export interface BlockingRateLimit {
  /** Polls allowed back to back (bucket size). Default 20. */
  burst?: number;
  /** One token comes back every this many ms: the sustained minimum gap between polls. Default 20. */
  minIntervalMs?: number;
  /** Random extra delay (0 to this many ms) when a poll has to wait for a token, so watches do not poll in lockstep. Default 5. */
  jitterMs?: number;
}

/** Settings of the blocking-query loop (shared by every Consul watch). */
export interface BlockingQueryOptions {
  /** Blocking-query wait, in ms (sent as whole seconds, at least 1 s). Default 60 000; Consul caps it at 10 minutes. */
  waitMs?: number;
  /**
   * Token bucket between polls. Default `{ burst: 20, minIntervalMs: 20, jitterMs: 5 }`: a deploy's
   * burst of changes is followed within a few ms, and even an index that moves on every call
   * costs at most 50 polls per second per watch.
   */
  rateLimit?: BlockingRateLimit;
  /** Backoff after a failed poll (full jitter). Default `{ initialMs: 100, maxMs: 1000 }`: an agent is local, so retry soon. */
  backoff?: BackoffOptions;
  /**
   * While the agent is unreachable, watches wait on one shared probe
   * (`GET /v1/status/leader`) polled with full-jitter backoff up to this cap, in ms. Default 500.
   */
  probeMaxMs?: number;
  /** Once the agent answers again, each parked watch resumes after a random delay in `[0, recoverySpreadMs)`. Default 250. */
  recoverySpreadMs?: number;
  /**
   * While long polls are open and the agent has answered nothing for this long, in ms, one check
   * per client (`GET /v1/status/leader` on another connection or stream) must answer within
   * `min(2000, watchIdleMs)` ms, or every long poll of the client fails (snapshots marked stale)
   * and retries. An agent whose host went away without a reset, or that froze, is so noticed
   * within `watchIdleMs` + 2 s instead of the long poll's own timeout (`wait×17/16 + 5 s`, 69 s
   * by default). Costs one check per client per `watchIdleMs` while nothing else is heard from
   * the agent. Default 10 000; at least 100.
   */
  watchIdleMs?: number;
}

/** Validated {@link BlockingQueryOptions}. @internal */
export interface ResolvedBlockingQueryOptions {
  readonly waitMs: number;
  readonly rateLimit: Required<BlockingRateLimit>;
  readonly backoff: Required<BackoffOptions>;
  readonly probeMaxMs: number;
  readonly recoverySpreadMs: number;
  readonly watchIdleMs: number;
}

function num(option: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  return checkNumber(option, value, fallback, { min, max });
}

/**
 * Validates loop settings once (constructor time).
 * @param prefix - option path prefix for error messages, e.g. `''` or `catalog.`.
 * @internal
 */
const rateLimitKeys = optionKeys<BlockingRateLimit>({ burst: true, minIntervalMs: true, jitterMs: true });

export function resolveBlockingQueryOptions(options: BlockingQueryOptions = {}, defaults: BlockingQueryOptions = {}, prefix = ''): ResolvedBlockingQueryOptions {
  const rate = options.rateLimit ?? {};
  const rateDefaults = defaults.rateLimit ?? {};
  if (typeof rate !== 'object' || rate === null) throw new InvalidOptionError(`${prefix}rateLimit`, rate, 'must be an object');
  checkKnownKeys(`${prefix}rateLimit`, rate, rateLimitKeys, 'the watch loop');
  return {
    waitMs: num(`${prefix}waitMs`, options.waitMs, defaults.waitMs ?? 60_000, 1000, 600_000),
    rateLimit: {
      burst: num(`${prefix}rateLimit.burst`, rate.burst, rateDefaults.burst ?? 20, 1, 1000),
      minIntervalMs: num(`${prefix}rateLimit.minIntervalMs`, rate.minIntervalMs, rateDefaults.minIntervalMs ?? 20, 1, 600_000),
      jitterMs: num(`${prefix}rateLimit.jitterMs`, rate.jitterMs, rateDefaults.jitterMs ?? 5, 0, 600_000),
    },
    backoff: checkBackoff(`${prefix}backoff`, options.backoff, { initialMs: defaults.backoff?.initialMs ?? 100, maxMs: defaults.backoff?.maxMs ?? 1000 }),
    probeMaxMs: num(`${prefix}probeMaxMs`, options.probeMaxMs, defaults.probeMaxMs ?? 500, 1, 600_000),
    recoverySpreadMs: num(`${prefix}recoverySpreadMs`, options.recoverySpreadMs, defaults.recoverySpreadMs ?? 250, 0, 600_000),
    watchIdleMs: num(`${prefix}watchIdleMs`, options.watchIdleMs, defaults.watchIdleMs ?? 10_000, 100, 3_600_000),
  };
}

/**
 * A token bucket: `burst` tokens, one back every `intervalMs`.
 * @internal
 */
export class TokenBucket {
  #tokens: number;
  #last: number;

  constructor(
    readonly burst: number,
    readonly intervalMs: number,
    readonly now: () => number = () => performance.now(),
  ) {
    this.#tokens = burst;
    this.#last = now();
  }

  /** Takes one token; returns how long to wait for it, in ms (0 when one was available). */
  take(): number {
    const now = this.now();
    this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#last) / this.intervalMs);
    this.#last = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : -this.#tokens * this.intervalMs;
  }
}

/** `X-Consul-*` headers of an answer, read strictly. */
export interface ConsulAnswerInfo extends SnapshotSourceInfo {
  /** `X-Consul-Index` (0 when absent). */
  readonly index: number;
}

function header(headers: ConsulResponse['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Reads `X-Consul-*` headers. Garbage values are ignored (never guessed at).
 * @internal
 */
export function consulInfo(headers: ConsulResponse['headers']): ConsulAnswerInfo & { indexValid: boolean } {
  const rawIndex = header(headers, 'x-consul-index');
  const indexValid = rawIndex !== undefined && /^\d{1,15}$/.test(rawIndex);
  const info: { index: number; indexValid: boolean; knownLeader?: boolean; lastContactMs?: number; cacheHit?: boolean; cacheAgeSeconds?: number; queryBackend?: string } = {
    index: indexValid ? Number(rawIndex) : 0,
    indexValid,
  };
  const leader = header(headers, 'x-consul-knownleader');
  if (leader === 'true' || leader === 'false') info.knownLeader = leader === 'true';
  const contact = header(headers, 'x-consul-lastcontact');
  if (contact !== undefined && /^\d{1,12}$/.test(contact)) info.lastContactMs = Number(contact);
  const cache = header(headers, 'x-cache');
  if (cache === 'HIT' || cache === 'MISS') info.cacheHit = cache === 'HIT';
  const backend = header(headers, 'x-consul-query-backend');
  if (backend !== undefined && /^[a-z-]{1,32}$/.test(backend)) info.queryBackend = backend;
  const age = header(headers, 'age');
  if (age !== undefined && /^\d{1,12}$/.test(age)) info.cacheAgeSeconds = Number(age);
  return info;
}

/**
 * One reachability probe per Consul client: while the agent refuses
 * connections, the watches of that client wait here instead of each retrying
 * on its own (1,000 watches would otherwise hammer a restarting agent).
 * @internal
 */
export class AgentProbe {
  #waiters = 0;
  #round: { done: Promise<void>; stop: AbortController } | undefined;

  constructor(
    readonly client: ConsulHttpClient,
    readonly maxMs: number,
  ) {}

  /** Resolves once the agent answered a probe (or `signal` aborted). */
  async untilReachable(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    this.#waiters++;
    if (!this.#round) {
      const stop = new AbortController();
      const round = { stop, done: this.#probe(stop.signal) };
      this.#round = round;
      void round.done.finally(() => {
        if (this.#round === round) this.#round = undefined;
      });
    }
    const { done, stop } = this.#round;
    try {
      await new Promise<void>((resolve) => {
        const finish = (): void => {
          signal.removeEventListener('abort', finish);
          resolve();
        };
        signal.addEventListener('abort', finish, { once: true });
        void done.then(finish);
      });
    } finally {
      // The last waiter to leave stops the probe: no timer outlives the watches.
      if (--this.#waiters === 0) stop.abort();
    }
  }

  async #probe(stop: AbortSignal): Promise<void> {
    for (let attempt = 0; !stop.aborted && !this.client.closed; attempt++) {
      await sleep(backoffDelay(attempt, { initialMs: 50, maxMs: this.maxMs }), stop);
      if (stop.aborted || this.client.closed) return;
      try {
        await this.client.request({ path: '/v1/status/leader', timeoutMs: 1000, signal: stop, background: true });
        return;
      } catch (error) {
        // Anything but "cannot connect" means the agent is there again.
        if (!(error instanceof ConsulUnreachableError)) return;
      }
    }
  }
}

/**
 * Notices an agent gone quiet under the long polls of one client. Every
 * answer the client gets refreshes {@link ConsulHttpClient.lastAnswerAt};
 * once nothing was heard for `idleMs` while long polls are open, one check
 * (`GET /v1/status/leader`, its own deadline) runs for all of them. An agent
 * that answers (any HTTP status) is alive and the polls go on; one that does
 * not has every open long poll ended with the check's error.
 * @internal
 */
export class AgentWatchdog {
  readonly #polls = new Set<AbortController>();
  #timer: NodeJS.Timeout | undefined;
  #checking = false;

  constructor(
    readonly client: ConsulHttpClient,
    readonly idleMs: number,
  ) {}

  /** The check's deadline: short, since a live agent answers it at once. */
  get checkTimeoutMs(): number {
    return Math.min(2000, this.idleMs);
  }

  /**
   * Watches one long poll: its request runs on the returned signal, which also
   * aborts (with the check's error as reason) when the agent stays silent.
   */
  watch(signal: AbortSignal): { signal: AbortSignal; release: () => void } {
    const poll = new AbortController();
    const forward = (): void => poll.abort(signal.reason);
    // An abort event never fires for a signal that is already aborted.
    if (signal.aborted) forward();
    else signal.addEventListener('abort', forward, { once: true });
    this.#polls.add(poll);
    this.#schedule();
    return {
      signal: poll.signal,
      release: () => {
        signal.removeEventListener('abort', forward);
        this.#polls.delete(poll);
        if (this.#polls.size === 0 && this.#timer) {
          clearTimeout(this.#timer);
          this.#timer = undefined;
        }
      },
    };
  }

  #schedule(): void {
    if (this.#timer || this.#checking || this.#polls.size === 0) return;
    const quietMs = performance.now() - this.client.lastAnswerAt;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#check();
    }, Math.max(0, this.idleMs - quietMs));
    // A long poll keeps the process alive by itself; this timer must not.
    this.#timer.unref();
  }

  async #check(): Promise<void> {
    if (this.#polls.size === 0 || this.client.closed) return;
    if (performance.now() - this.client.lastAnswerAt < this.idleMs) {
      this.#schedule();
      return;
    }
    this.#checking = true;
    try {
      // Part of the watches: like their long polls, it never holds the process open.
      await this.client.request({ path: '/v1/status/leader', timeoutMs: this.checkTimeoutMs, background: true });
    } catch (error) {
      // An HTTP answer of any kind comes from a live agent; silence or no connection does not.
      if (!(error instanceof ConsulApiError) && !this.client.closed) {
        const polls = [...this.#polls];
        this.#polls.clear();
        for (const poll of polls) poll.abort(error);
      }
    } finally {
      this.#checking = false;
      this.#schedule();
    }
  }
}

const watchdogs = new WeakMap<ConsulHttpClient, Map<number, AgentWatchdog>>();

function watchdogFor(client: ConsulHttpClient, idleMs: number): AgentWatchdog {
  let byIdle = watchdogs.get(client);
  if (!byIdle) watchdogs.set(client, (byIdle = new Map<number, AgentWatchdog>()));
  let dog = byIdle.get(idleMs);
  if (!dog) byIdle.set(idleMs, (dog = new AgentWatchdog(client, idleMs)));
  return dog;
}

/**
 * How many long polls a client may hold at once. Over HTTP/1.1 each holds a
 * connection, and a request queued behind held connections would sit there
 * with its deadline running: so long polls take a slot first, and a few
 * connections stay free for plain reads (confirmations, probes, `resolve()`).
 * Over HTTP/2 they are streams, {@link h2StreamsPerConnection} per connection.
 * When more watches want a slot than there are, every long poll uses a short
 * wait, so the watches take turns instead of starving.
 * @internal
 */
export class LongPollSlots {
  #used = 0;
  readonly #queue: (() => void)[] = [];

  constructor(readonly capacity: number) {}

  /** True while some watch is waiting for a slot. */
  get contended(): boolean {
    return this.#queue.length > 0;
  }

  /** Long polls held now. */
  get used(): number {
    return this.#used;
  }

  /** Resolves with a release function once a slot is free, or with `undefined` if `signal` aborted first. */
  acquire(signal: AbortSignal): Promise<(() => void) | undefined> {
    if (signal.aborted) return Promise.resolve(undefined);
    if (this.#used < this.capacity && this.#queue.length === 0) {
      this.#used++;
      return Promise.resolve(this.#releaser());
    }
    return new Promise((resolve) => {
      const grant = (): void => {
        signal.removeEventListener('abort', abort);
        this.#used++;
        resolve(this.#releaser());
      };
      const abort = (): void => {
        const at = this.#queue.indexOf(grant);
        if (at >= 0) this.#queue.splice(at, 1);
        resolve(undefined);
      };
      signal.addEventListener('abort', abort, { once: true });
      this.#queue.push(grant);
    });
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#used--;
      const next = this.#queue.shift();
      if (next) next();
    };
  }
}

const slots = new WeakMap<ConsulHttpClient, LongPollSlots>();

function slotsFor(client: ConsulHttpClient): LongPollSlots {
  let found = slots.get(client);
  if (!found) {
    const { maxConnections, http2 } = client.connection;
    // Keep a quarter of the connections (at most 8) for plain reads.
    const spare = Math.min(8, Math.floor(maxConnections / 4));
    found = new LongPollSlots(http2 ? maxConnections * h2StreamsPerConnection - spare : Math.max(1, maxConnections - spare));
    slots.set(client, found);
  }
  return found;
}

/** The wait of a long poll while watches queue for slots: short, so they take turns. */
const contendedWaitMs = 1000;

const probes = new WeakMap<ConsulHttpClient, AgentProbe>();

function probeFor(client: ConsulHttpClient, maxMs: number): AgentProbe {
  let probe = probes.get(client);
  if (!probe || probe.maxMs !== maxMs) {
    probe = new AgentProbe(client, maxMs);
    probes.set(client, probe);
  }
  return probe;
}

/** What {@link runBlockingQuery} does. */
export interface BlockingQuery<T> {
  /** Path starting with `/v1/`, dynamic segments already encoded. */
  path: string;
  /** Query parameters other than `index` and `wait`. */
  query?: ConsulRequest['query'];
  /** Ends the loop (and aborts the request in flight). */
  signal: AbortSignal;
  /** Turns a body into a value; throws (typically {@link BadResponseError}) for a malformed one, which counts as a failed poll. */
  decode: (body: unknown, info: ConsulAnswerInfo) => T;
  /**
   * Receives each decoded answer (also answers that changed nothing: compare before acting).
   * Return `false` to end the loop; `'retry'` when the answer is not trustworthy (e.g. from a
   * server without a leader): the next poll is a plain read after a backoff, not a blocking one
   * that could sit on old data for the whole wait; throw to count the poll as failed.
   */
  // eslint-disable-next-line @typescript-eslint/no-invalid-void-type -- callbacks that return nothing are the common case
  onAnswer: (value: T, info: ConsulAnswerInfo) => void | boolean | 'retry' | Promise<void | boolean | 'retry'>;
  /** Receives each failure, typed (`ConsulApiError`, `ConsulUnreachableError`, `TimeoutError`, `BadResponseError`…). */
  onError?: (error: Error) => void;
  /**
   * The agent's history started over: the next answer carries an index lower than the last one
   * (agent restarted with its data gone, snapshot restored). Not called for an answer after the
   * agent was merely unreachable (a blip: same agent, same data). Called just before that answer's `onAnswer`.
   */
  onReset?: () => void;
  /**
   * The endpoint answers at once and ignores `index`/`wait` (prepared-query execution): every
   * call is a plain read with the client's deadline, paced by the token bucket alone (the first
   * call takes a token too). Default false.
   */
  poll?: boolean;
  /** A 404 is an answer (`decode` gets an undefined body) rather than a failed poll: a KV key that does not exist (yet). Default false. */
  allowNotFound?: boolean;
}

/**
 * Runs a blocking-query loop until `signal` aborts or `onAnswer` returns `false`.
 * Never rejects because of Consul: failures go to `onError`.
 * @example
 * ```ts
 * const stop = new AbortController();
 * await runBlockingQuery(client, {
 *   path: '/v1/catalog/services',
 *   signal: stop.signal,
 *   decode: (body) => body as Record<string, string[]>,
 *   onAnswer: (services) => console.log(Object.keys(services)),
 * });
 * ```
 */
export async function runBlockingQuery<T>(client: ConsulHttpClient, spec: BlockingQuery<T>, options: BlockingQueryOptions = {}): Promise<void> {
  const settings = resolveBlockingQueryOptions(options);
  const { signal } = spec;
  const bucket = new TokenBucket(settings.rateLimit.burst, settings.rateLimit.minIntervalMs);
  const longPolls = slotsFor(client);
  let index: number | undefined; // undefined: the next call is immediate (non-blocking)
  let failures = 0;
  let first = true;
  let lastIndex = 0; // the last answer's index, kept across failures: one lower is a new history
  const watchdog = watchdogFor(client, settings.watchIdleMs);
  while (!signal.aborted) {
    if (!first || spec.poll) {
      const delay = bucket.take();
      if (delay > 0) await sleep(delay + Math.random() * settings.rateLimit.jitterMs, signal);
      if (signal.aborted) return;
    }
    first = false;
    let release: (() => void) | undefined;
    let watched: { signal: AbortSignal; release: () => void } | undefined;
    try {
      let res: ConsulResponse;
      if (index === undefined || spec.poll) {
        res = await client.request({ path: spec.path, query: spec.query, signal, background: true, allowNotFound: spec.allowNotFound }); // a watch never holds the process open
      } else {
        release = await longPolls.acquire(signal);
        if (!release) return; // aborted while queued
        const waitMs = longPolls.contended ? Math.min(contendedWaitMs, settings.waitMs) : settings.waitMs;
        watched = watchdog.watch(signal);
        res = await client.request({
          path: spec.path,
          query: { ...spec.query, index: String(index), wait: `${Math.max(1, Math.ceil(waitMs / 1000))}s` },
          signal: watched.signal,
          // Consul adds up to wait/16 of jitter to a blocking query: stay above it.
          timeoutMs: Math.ceil((waitMs * 17) / 16) + 5000,
          background: true,
          allowNotFound: spec.allowNotFound,
        });
        watched.release();
        release();
      }
      if (signal.aborted) return;
      const { indexValid, ...info } = consulInfo(res.headers);
      if (!indexValid) throw new BadResponseError(`Consul GET ${spec.path} answered without a valid X-Consul-Index`);
      const value = spec.decode(res.body, info);
      // Never block on 0 (it returns at once): 0 counts as 1. An index that went
      // backwards (agent restarted, snapshot restore) starts over with a plain read.
      const next = Math.max(1, info.index);
      index = index !== undefined && next < index ? undefined : next;
      // Consul's rule: an index that went backwards means a new history; an outage alone does not.
      if (next < lastIndex) spec.onReset?.();
      lastIndex = next;
      const verdict = await spec.onAnswer(value, info);
      if (verdict === false) return;
      if (verdict === 'retry') {
        index = undefined;
        await sleep(backoffDelay(failures++, settings.backoff), signal);
        continue;
      }
      failures = 0;
    } catch (error) {
      watched?.release();
      release?.();
      if (signal.aborted) return;
      // Ended by the watchdog: the agent's silence (the check's error) is the failure.
      const reason: unknown = watched?.signal.aborted ? watched.signal.reason : error;
      const failure = reason instanceof Error ? reason : new Error(String(reason));
      spec.onError?.(failure);
      // After a failure the server's index may be unrelated to ours: ask plainly once back.
      index = undefined;
      if (failure instanceof ConsulUnreachableError) {
        await probeFor(client, settings.probeMaxMs).untilReachable(signal);
        await sleep(Math.random() * settings.recoverySpreadMs, signal);
        failures = 0;
      } else {
        await sleep(backoffDelay(failures++, settings.backoff), signal);
      }
    }
  }
}
