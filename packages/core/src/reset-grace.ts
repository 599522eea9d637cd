/**
 * Registry resets. When a registry's history starts over (etcd wiped or
 * restored: its revision went back or its cluster ID changed; a Consul agent
 * restarted with its data gone, or a snapshot restored: its index went
 * backwards; an agent merely unreachable for a while is no reset), its
 * first answers lack every instance that has not registered again yet. Live
 * instances come back at their next heartbeat, so for a grace period an
 * instance missing from the answers is held (and the snapshot marked stale);
 * an instance that appears is added at once; one seen again is believed from
 * then on; the instances still missing leave when the grace ends.
 * @internal
 */

/**
 * Default grace after a registry reset, in ms: the registrar's default TTL
 * (15 s). A live registrar touches the registry at least twice per TTL (its
 * heartbeat interval is at most TTL/2) and, while the registry is away,
 * retries with a backoff capped at its heartbeat interval; so it registers
 * again within about TTL/2 of the registry's return, and one TTL leaves room
 * for a slow call. An instance silent for a whole TTL would have expired in
 * the registry anyway, so the grace keeps nothing longer than the registry
 * itself would have.
 * @internal
 */
export const defaultResetGraceMs = 15_000;

/**
 * Holds the entries a registry dropped at a reset for a grace period. One per
 * watch; `keyOf` names an entry's identity.
 * @internal
 */
export class ResetGrace<V> {
  #pending = false;
  #held = new Map<string, V>();
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param graceMs - how long missing entries are held after a reset; 0 turns holding off.
   * @param keyOf - an entry's identity.
   * @param onExpire - called when the grace ends with entries still missing (publish the last answer again).
   */
  constructor(
    readonly graceMs: number,
    readonly keyOf: (entry: V) => string,
    readonly onExpire: () => void,
  ) {}

  /** True while entries missing since a reset are held. */
  get holding(): boolean {
    return this.#held.size > 0;
  }

  /** The registry's history reset: the next answer is compared with what subscribers have then. */
  reset(): void {
    this.#pending = true;
  }

  /**
   * The entries to publish for a registry answer: the answer itself, plus
   * the entries held since a reset that it lacks.
   * @param answer - what the registry answered.
   * @param published - what subscribers have now (the reference right after a reset).
   */
  hold(answer: readonly V[], published: readonly V[] | undefined): readonly V[] {
    if (this.#pending) {
      this.#pending = false;
      this.stop();
      if (this.graceMs > 0 && published) for (const entry of published) this.#held.set(this.keyOf(entry), entry);
    }
    if (this.#held.size === 0) return answer;
    for (const entry of answer) this.#held.delete(this.keyOf(entry));
    if (this.#held.size === 0) {
      this.stop(); // everything is back: fresh before the grace ends
      return answer;
    }
    if (!this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#held.clear();
        this.onExpire();
      }, this.graceMs);
      this.#timer.unref();
    }
    return [...answer, ...this.#held.values()];
  }

  /** Drops what is held and its timer (the watch stopped, or everything came back). */
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#held.clear();
  }
}
