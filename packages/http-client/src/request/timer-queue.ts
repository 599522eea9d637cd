/**
 * The client's own timer queue for per-try timeouts and deadlines: one
 * Node timer per client (ref'd only while calls are in progress) instead of a `setTimeout`/`clearTimeout` pair
 * (a `Timeout` object, its list and ref bookkeeping) per attempt.
 *
 * Entries that share a duration expire in the order they were added, so each
 * duration keeps a FIFO list (sorted by expiry: an entry that expires before
 * the tail, such as a retry bounded by its request's deadline, is placed by
 * walking back from the tail). Adding at the tail and removing are O(1) and
 * allocate nothing: the entry carries its own links. The one Node timer is
 * armed for the earliest head and only moved earlier: removing an entry
 * leaves it armed, and when it fires it reports what is due, drops empty
 * lists and re-arms for the earliest head left, if any — so a steady stream
 * of requests costs about one Node timer per timeout period, not one per
 * request. An entry is never reported before its time: the Node timer may
 * fire up to a loop turn early (libuv's cached, millisecond-truncated clock),
 * so due is decided against `performance.now()`, and an early firing re-arms.
 * @internal
 * @module
 */

/** What the queue needs of an entry: its links and expiry (kept by the queue), and what to do when it is due. @internal */
export interface TimerEntry {
  /** `performance.now()` at which the entry is due. */
  timerAt: number;
  timerPrev: TimerEntry | undefined;
  timerNext: TimerEntry | undefined;
  /** The list the entry is in, or undefined when it is in none. */
  timerList: TimerList | undefined;
  /** Called once when the entry is due (it is already out of the queue), with the `performance.now()` at which the queue found it due. */
  expired(nowMs: number): void;
}

/** The entries of one duration, earliest first. @internal */
export class TimerList {
  readonly durationMs: number;
  head: TimerEntry | undefined = undefined;
  tail: TimerEntry | undefined = undefined;

  constructor(durationMs: number) {
    this.durationMs = durationMs;
  }
}

/** @internal */
export class TimerQueue {
  /** Lists by duration (a client sees a handful: one per policy's per-try timeout and deadline). */
  readonly #lists = new Map<number, TimerList>();
  #timer: NodeJS.Timeout | undefined;
  /** When the armed timer is meant to fire (`performance.now()` ms); Infinity when none is armed. */
  #armedFor = Infinity;
  /** While true the Node timer is ref'd: a call in progress keeps the process alive until it settles. */
  #held = false;
  readonly #onTimer = (): void => this.#fire();

  /**
   * Refs the Node timer while the client has calls in progress (every such
   * call has an entry at or before its deadline), and unrefs it when none is
   * left, so a pending call is never cut short by the process exiting and an
   * idle client never holds the process. Toggling is O(1) (no new timer).
   */
  hold(held: boolean): void {
    this.#held = held;
    if (this.#timer === undefined) return;
    if (held) this.#timer.ref();
    else this.#timer.unref();
  }

  /** Entries in the queue (for tests and stats). */
  get size(): number {
    let n = 0;
    for (const list of this.#lists.values()) for (let e = list.head; e !== undefined; e = e.timerNext) n++;
    return n;
  }

  /**
   * Adds `entry`, due at `atMs`, to the list of `durationMs`: a per-try
   * timeout goes to its own duration's list, a deadline to the list of the
   * request's whole timeout (its first attempt arrives in start order there
   * too; a retry cut short by its deadline is placed by a walk from the tail).
   */
  add(entry: TimerEntry, durationMs: number, atMs: number): void {
    let list = this.#lists.get(durationMs);
    if (list === undefined) {
      list = new TimerList(durationMs);
      this.#lists.set(durationMs, list);
    }
    entry.timerAt = atMs;
    entry.timerList = list;
    let before = list.tail;
    while (before !== undefined && before.timerAt > atMs) before = before.timerPrev;
    // Insert after `before` (at the head when undefined).
    const after = before === undefined ? list.head : before.timerNext;
    entry.timerPrev = before;
    entry.timerNext = after;
    if (before === undefined) list.head = entry;
    else before.timerNext = entry;
    if (after === undefined) list.tail = entry;
    else after.timerPrev = entry;
    if (atMs < this.#armedFor) this.#arm(atMs);
  }

  /** Takes `entry` out (nothing when it is in no list). The Node timer stays armed (see above). */
  remove(entry: TimerEntry): void {
    const list = entry.timerList;
    if (list !== undefined) this.#unlink(list, entry);
  }

  /** Clears the Node timer and forgets every entry (they are never reported): for a closed client. */
  clear(): void {
    for (const list of this.#lists.values()) {
      while (list.head !== undefined) this.#unlink(list, list.head);
    }
    this.#lists.clear();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
  }

  #unlink(list: TimerList, entry: TimerEntry): void {
    const prev = entry.timerPrev;
    const next = entry.timerNext;
    if (prev === undefined) list.head = next;
    else prev.timerNext = next;
    if (next === undefined) list.tail = prev;
    else next.timerPrev = prev;
    entry.timerPrev = undefined;
    entry.timerNext = undefined;
    entry.timerList = undefined;
  }

  #arm(atMs: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#armedFor = atMs;
    // setTimeout has millisecond resolution: round up so nothing is looked at before it is due.
    this.#timer = setTimeout(this.#onTimer, Math.max(1, Math.ceil(atMs - performance.now())));
    if (!this.#held) this.#timer.unref();
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = performance.now();
    let due: TimerEntry[] | undefined;
    let next = Infinity;
    for (const list of this.#lists.values()) {
      let head = list.head;
      while (head !== undefined && head.timerAt <= now) {
        this.#unlink(list, head);
        (due ??= []).push(head);
        head = list.head;
      }
      if (head === undefined) this.#lists.delete(list.durationMs);
      else if (head.timerAt < next) next = head.timerAt;
    }
    if (next !== Infinity) this.#arm(next);
    // Reported after the queue is consistent again: an entry's `expired` may add or remove entries.
    if (due !== undefined) for (const entry of due) entry.expired(now);
  }
}
