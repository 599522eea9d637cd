/**
 * Test support: when did this process's event loop stand still?
 *
 * Timing tests on a shared machine need to tell "the code was late" from "the
 * process was not running" (CPU starvation, GC). A 5 ms interval ticks through
 * the test; a tick that comes more than {@link StallRecorder.thresholdMs} late
 * marks the time since the previous tick as a stall. Afterwards,
 * `stalledMs(t0, t1)` says how much of an operation's own interval was spent
 * stalled, so each late operation can be checked against what stole its time,
 * instead of one global allowance.
 *
 * Not part of any package's public API.
 */

const TICK_MS = 5;

export class StallRecorder {
  /** Stalls as [start, end] in `performance.now()` time, in order. */
  readonly stalls: [number, number][] = [];
  readonly thresholdMs: number;
  #last = performance.now();
  readonly #timer: NodeJS.Timeout;
  #stopped = false;

  /** @param thresholdMs how late a tick must be to count as a stall (default 10 ms). */
  constructor(thresholdMs = 10) {
    this.thresholdMs = thresholdMs;
    this.#timer = setInterval(() => {
      const now = performance.now();
      if (now - this.#last > TICK_MS + thresholdMs) this.stalls.push([this.#last + TICK_MS, now]);
      this.#last = now;
    }, TICK_MS);
    this.#timer.unref();
  }

  /** Milliseconds of [t0, t1] this process spent in recorded stalls. Call after `stop()` to see the last one. */
  stalledMs(t0: number, t1: number): number {
    let total = 0;
    for (const [a, b] of this.stalls) {
      if (b <= t0) continue;
      if (a >= t1) break;
      total += Math.min(b, t1) - Math.max(a, t0);
    }
    return total;
  }

  /** The longest recorded stall, ms. */
  get longestMs(): number {
    let longest = 0;
    for (const [a, b] of this.stalls) longest = Math.max(longest, b - a);
    return longest;
  }

  /** Stops ticking; records a stall still going on at this moment. Idempotent. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    const now = performance.now();
    if (now - this.#last > TICK_MS + this.thresholdMs) this.stalls.push([this.#last + TICK_MS, now]);
  }
}
