/**
 * The daemon's real clock against Node's real timers: a timer's callback never runs before
 * Date.now() reaches the time it was set for (Node's timers may fire a millisecond early; the
 * clock sets them again for the rest), each runs once, and a cancelled one never runs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { systemClock } from '../../src/daemon/backoff.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sets `n` timers of 0 to 21 ms on systemClock, cancels every tenth; resolves when the others have run. */
async function round(n: number) {
  const early: string[] = [];
  const calls = new Map<number, number>();
  const cancelled = new Set<number>();
  let left = 0;
  // half the timers are weak (unref): this one keeps the process up until all have run
  const keepAlive = setInterval(() => {}, 1_000);
  await new Promise<void>((resolve) => {
    for (let i = 0; i < n; i++) {
      // whole and fractional delays: with fractional ones Node's early firing is common
      const ms = (i % 21) + (i % 3) * 0.5;
      const due = Date.now() + ms; // read before the clock's own: its due time is this or later
      const cancel = systemClock.setTimer(
        () => {
          const at = Date.now();
          if (at < due) early.push(`timer ${i} (${ms} ms) ran at ${at}, ${due - at} ms before ${due}`);
          calls.set(i, (calls.get(i) ?? 0) + 1);
          if (--left === 0) resolve();
        },
        ms,
        { weak: i % 2 === 0 },
      );
      if (i % 10 === 9) {
        cancel();
        cancelled.add(i);
      } else left++;
    }
  });
  clearInterval(keepAlive);
  return { early, calls, cancelled };
}

test('systemClock: no callback before Date.now() reaches its due time; each once; cancelled ones never', async () => {
  const n = 500;
  // several rounds, each begun from a timer (as the daemon's are), a few ms apart
  for (let r = 0; r < 6; r++) {
    await sleep(3 + r);
    const { early, calls, cancelled } = await round(n);
    // the cancelled ones' time is past: give them a chance to run, wrongly
    await sleep(30);
    assert.deepEqual(early, [], `round ${r}`);
    assert.equal(calls.size, n - cancelled.size);
    assert.ok(
      [...calls].every(([i, c]) => c === 1 && !cancelled.has(i)),
      'each timer ran once, no cancelled one',
    );
  }
});
