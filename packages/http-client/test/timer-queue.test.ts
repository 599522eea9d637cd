import assert from 'node:assert/strict';
import { TimerQueue, type TimerEntry, type TimerList } from '../src/request/timer-queue.js';
import { until } from '../../../test/support/wait.js';

/** An entry that records when it was reported, and whether the queue had already let it go. */
class Entry implements TimerEntry {
  timerAt = 0;
  timerPrev: TimerEntry | undefined = undefined;
  timerNext: TimerEntry | undefined = undefined;
  timerList: TimerList | undefined = undefined;
  readonly name: string;
  readonly #log: { name: string; at: number; due: number; inList: boolean }[];

  constructor(name: string, log: { name: string; at: number; due: number; inList: boolean }[]) {
    this.name = name;
    this.#log = log;
  }

  expired(): void {
    this.#log.push({ name: this.name, at: performance.now(), due: this.timerAt, inList: this.timerList !== undefined });
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('http-client: timer queue (per-try timeouts and deadlines)', () => {
  it('reports every entry once, never before it is due, each duration in expiry order', async () => {
    const q = new TimerQueue();
    const log: { name: string; at: number; due: number; inList: boolean }[] = [];
    const t0 = performance.now();
    const entries: Entry[] = [];
    // Two durations interleaved; within a duration, added in expiry order.
    for (let i = 0; i < 20; i++) {
      const now = performance.now();
      const a = new Entry(`a${i}`, log);
      const b = new Entry(`b${i}`, log);
      q.add(a, 30, now + 30);
      q.add(b, 10, now + 10);
      entries.push(a, b);
    }
    await until('every entry reported', () => log.length === entries.length, 5_000);
    assert.equal(new Set(log.map((r) => r.name)).size, entries.length, 'each entry reported once');
    for (const r of log) {
      assert.ok(r.at >= r.due, `${r.name} reported ${(r.due - r.at).toFixed(3)} ms early`);
      assert.equal(r.inList, false, `${r.name} still linked when reported`);
    }
    const order = (prefix: string): string[] => log.filter((r) => r.name.startsWith(prefix)).map((r) => r.name);
    assert.deepEqual(order('a'), entries.filter((e) => e.name.startsWith('a')).map((e) => e.name));
    assert.deepEqual(order('b'), entries.filter((e) => e.name.startsWith('b')).map((e) => e.name));
    assert.ok(log[0]!.at - t0 >= 10);
    assert.equal(q.size, 0);
    await sleep(50);
    assert.equal(log.length, entries.length, 'nothing reported twice');
  });

  it('places an entry that is due before the tail (a deadline inside a later list) in expiry order', async () => {
    const q = new TimerQueue();
    const log: { name: string; at: number; due: number; inList: boolean }[] = [];
    const now = performance.now();
    const late = new Entry('late', log);
    const middle = new Entry('middle', log);
    const early = new Entry('early', log);
    q.add(late, 40, now + 40);
    q.add(middle, 40, now + 25);
    q.add(early, 40, now + 5);
    assert.equal(q.size, 3);
    await until('three reports', () => log.length === 3, 5_000);
    assert.deepEqual(log.map((r) => r.name), ['early', 'middle', 'late']);
    for (const r of log) assert.ok(r.at >= r.due, `${r.name} reported early`);
  });

  it('never reports a removed entry, whether it was the head, the tail or in between', async () => {
    const q = new TimerQueue();
    const log: { name: string; at: number; due: number; inList: boolean }[] = [];
    const now = performance.now();
    const es = ['0', '1', '2', '3', '4'].map((n) => new Entry(n, log));
    es.forEach((e, i) => q.add(e, 15, now + 15 + i));
    q.remove(es[0]!); // head
    q.remove(es[2]!); // middle
    q.remove(es[4]!); // tail
    q.remove(es[4]!); // twice: nothing
    assert.equal(es[0]!.timerList, undefined);
    assert.equal(q.size, 2);
    await until('two reports', () => log.length === 2, 5_000);
    await sleep(30);
    assert.deepEqual(log.map((r) => r.name), ['1', '3']);
  });

  it('reports again an entry re-added from its own expiry, and after a removal emptied the queue, the next entry at its own time', async () => {
    const q = new TimerQueue();
    let count = 0;
    const entry: TimerEntry = {
      timerAt: 0,
      timerPrev: undefined,
      timerNext: undefined,
      timerList: undefined,
      expired() {
        count++;
        if (count < 3) q.add(entry, 5, performance.now() + 5);
      },
    };
    q.add(entry, 5, performance.now() + 5);
    await until('three expiries', () => count === 3, 5_000);
    assert.equal(q.size, 0);
    // Empty after a removal: the next add arms a fresh timer for its own time.
    const log: { name: string; at: number; due: number; inList: boolean }[] = [];
    const gone = new Entry('gone', log);
    q.add(gone, 5, performance.now() + 5);
    q.remove(gone);
    const kept = new Entry('kept', log);
    q.add(kept, 20, performance.now() + 20);
    await until('one report', () => log.length === 1, 5_000);
    assert.equal(log[0]!.name, 'kept');
    assert.ok(log[0]!.at >= log[0]!.due);
  });

  it('clear() forgets every entry: none is reported, and each is unlinked', async () => {
    const q = new TimerQueue();
    const log: { name: string; at: number; due: number; inList: boolean }[] = [];
    const now = performance.now();
    const es = ['x', 'y', 'z'].map((n, i) => {
      const e = new Entry(n, log);
      q.add(e, 5 + i, now + 5 + i);
      return e;
    });
    q.clear();
    assert.equal(q.size, 0);
    for (const e of es) assert.equal(e.timerList, undefined);
    await sleep(30);
    assert.deepEqual(log, []);
  });
});
