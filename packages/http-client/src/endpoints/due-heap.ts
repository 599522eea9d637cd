/**
 * The due times of an endpoint set's timed states (`open`, `ejected`), earliest
 * first: a binary min-heap, so the set runs one timer armed at the top
 * (grpc-js `runChecks` checks every entry from one timer; this checks only
 * what is due). Entries are not removed when their state ends early (a trial,
 * a removal): the set drops an entry whose endpoint is no longer due at that
 * time when it reaches the top. Each transition adds at most one entry.
 * @internal
 * @module
 */

/** @internal */
export class DueHeap<T> {
  readonly #at: number[] = [];
  readonly #items: T[] = [];

  get size(): number {
    return this.#at.length;
  }

  /** The earliest due time, or Infinity. */
  get nextAt(): number {
    return this.#at.length === 0 ? Infinity : (this.#at[0] as number);
  }

  push(atMs: number, item: T): void {
    const at = this.#at;
    const items = this.#items;
    let i = at.length;
    at.push(atMs);
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((at[parent] as number) <= atMs) break;
      at[i] = at[parent] as number;
      items[i] = items[parent] as T;
      i = parent;
    }
    at[i] = atMs;
    items[i] = item;
  }

  /** Removes and returns the earliest entry's item (call only when `size > 0`). */
  pop(): T {
    const at = this.#at;
    const items = this.#items;
    const top = items[0] as T;
    const lastAt = at.pop() as number;
    const lastItem = items.pop() as T;
    const n = at.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && (at[r] as number) < (at[l] as number) ? r : l;
        if ((at[c] as number) >= lastAt) break;
        at[i] = at[c] as number;
        items[i] = items[c] as T;
        i = c;
      }
      at[i] = lastAt;
      items[i] = lastItem;
    }
    return top;
  }

  clear(): void {
    this.#at.length = 0;
    this.#items.length = 0;
  }
}
