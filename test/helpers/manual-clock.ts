import type { Clock } from '../../src/daemon/backoff.js';

/**
 * A clock that moves only when told; due timers fire in time order (then in the order set).
 * `earlyMs`: timers fire that long before now() reaches their time, as Node's setTimeout may
 * (its loop time and Date.now() are read at different moments).
 */
export class ManualClock implements Clock {
  private time: number;
  private timers: { at: number; seq: number; fn: () => void }[] = [];
  private seq = 0;

  constructor(
    start = Date.UTC(2030, 0, 1),
    private readonly earlyMs = 0,
  ) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.time + ms, seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** when the pending timers are due */
  get pending(): number[] {
    return this.timers.map((t) => t.at).sort((a, b) => a - b);
  }

  /** Moves to the earliest timer due by `until` and fires it; false (time at `until`) when none is. */
  fireNext(until: number): boolean {
    const next = this.timers
      .filter((t) => t.at - this.earlyMs <= until)
      .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
    if (!next) {
      this.time = Math.max(this.time, until);
      return false;
    }
    this.timers = this.timers.filter((t) => t !== next);
    this.time = Math.max(this.time, next.at - this.earlyMs);
    next.fn();
    return true;
  }

  /** Moves `ms` ahead at once, then fires every timer due by then. */
  advance(ms: number): void {
    this.time += ms;
    while (this.fireNext(this.time));
  }
}
