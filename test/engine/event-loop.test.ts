import assert from 'node:assert/strict';
import { test } from 'node:test';
import { engineCases } from './engines.js';
import { randomF32 } from './reference.js';

const native = engineCases.find((c) => c.name === 'native')!;

test('native svd of 1024×1024 leaves the event loop free', { skip: native.skip }, async (t) => {
  const engine = native.make();
  const a = randomF32(1024 * 1024, 11);
  let last = performance.now();
  let maxGap = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks++;
  }, 10);
  const t0 = performance.now();
  try {
    const r = await engine.svd(a, 1024, 1024);
    assert.equal(r.s.length, 1024);
  } finally {
    clearInterval(timer);
    engine.close();
  }
  const elapsed = performance.now() - t0;
  t.diagnostic(`svd ${elapsed.toFixed(0)} ms, ${ticks} ticks, max gap ${maxGap.toFixed(1)} ms`);
  // A blocked loop would show one gap as long as the whole job; a free one ticks every ~10 ms.
  assert.ok(elapsed > 50, `job too short to tell (${elapsed.toFixed(0)} ms)`);
  assert.ok(maxGap < 100, `max gap between 10 ms ticks: ${maxGap.toFixed(1)} ms over ${elapsed.toFixed(0)} ms`);
  assert.ok(ticks >= Math.floor(elapsed / 10) / 2, `${ticks} ticks in ${elapsed.toFixed(0)} ms`);
});
