import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadLinalg } from '../../src/engine/native.js';
import { NativeEngine } from '../../src/engine/native-engine.js';
import { dopOptimize } from '../../src/engine/ops/dop-optimize.js';
import type { DopOptions } from '../../src/engine/types.js';
import { centred } from './reference.js';
const linalg = loadLinalg();

/** base plus a rank-3 task vector and a little dense noise, like synth.py's */
function fineTune(base: Float32Array, m: number, n: number, rnd: () => number): Float32Array {
  const a = Float32Array.from({ length: m * 3 }, rnd);
  const b = Float32Array.from({ length: 3 * n }, rnd);
  const w = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < 3; k++) s += a[i * 3 + k] * b[k * n + j];
      w[i * n + j] = base[i * n + j] + 0.01 * s + 1e-4 * rnd();
    }
  return w;
}

// The addon's Adam loop (NativeEngine.dopOptimize) must give the bits of the JavaScript loop
// (engine/ops/dop-optimize.ts) run with the same engine's products: dense and factored sides,
// tall and wide tensors, every weighting rule, and no steps at all.
test('native DOP loop gives the same bits as the JavaScript loop', { skip: linalg.addon === null }, async () => {
  const engine = new NativeEngine(linalg.addon!);
  const cases: [number, number, DopOptions['svd_proj_space'], boolean, boolean, number][] = [
    [40, 24, 'uv', true, true, 30],
    [24, 60, 'uv', true, false, 20],
    [50, 30, 'u', false, true, 10],
    [30, 30, 'v', true, true, 0],
    [96, 16, 'uv', true, true, 25],
  ];
  const rnd = centred(7);
  for (const [m, n, space, mgda, ema, steps] of cases) {
    const base = Float32Array.from({ length: m * n }, () => rnd() * 0.1);
    const wa = fineTune(base, m, n, rnd);
    const wb = fineTune(base, m, n, rnd);
    const o: DopOptions = {
      lr: 1e-4,
      num_steps: steps,
      mgda,
      ema,
      ema_beta: 0.999,
      alpha: 0.8,
      svd_epsilon: 0.99,
      svd_proj_space: space,
    };
    const js = await dopOptimize(engine, base, wa, wb, m, n, o);
    const native = await engine.dopOptimize(base, wa, wb, m, n, o);
    const label = `${m}×${n} ${space} mgda=${mgda} ema=${ema} steps=${steps}`;
    assert.deepEqual(native.w, js.w, label);
    assert.equal(native.lossA, js.lossA, label);
    assert.equal(native.lossB, js.lossB, label);
    assert.deepEqual(native.weights, js.weights, label);
    assert.equal(native.rankA, js.rankA, label);
    assert.equal(native.rankB, js.rankB, label);
  }
  engine.close();
});
