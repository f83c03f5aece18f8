import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadLinalg } from '../../src/engine/native.js';
import { NativeEngine } from '../../src/engine/native-engine.js';
import { opcmClean } from '../../src/engine/ops/opcm-clean.js';
import { centred } from './reference.js';
const linalg = loadLinalg();

/** a rank-`rank` m×n matrix plus `noise` times dense noise */
function lowRank(m: number, n: number, rank: number, noise: number, rnd: () => number): Float32Array {
  const a = Float32Array.from({ length: m * rank }, rnd);
  const b = Float32Array.from({ length: rank * n }, rnd);
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < rank; k++) s += a[i * rank + k] * b[k * n + j];
      out[i * n + j] = s + noise * rnd();
    }
  return out;
}

// The addon's cleaning (NativeEngine.opcmClean: SVD with U and V kept native, then the products)
// must give the bits of the JavaScript cleaning (engine/ops/opcm-clean.ts) on the same engine:
// tall, wide, full-rank, rank-deficient (diagonal terms only below the rank), zero prev, k = 0.
test(
  'native OPCM cleaning gives the same bits as the JavaScript cleaning',
  { skip: linalg.addon === null },
  async () => {
    const engine = new NativeEngine(linalg.addon!);
    const rnd = centred(11);
    const cases: [number, number, number, number, number][] = [
      [48, 32, 4, 1e-3, 0.5],
      [32, 70, 5, 1e-3, 0.5],
      [40, 40, 3, 0, 0.5],
      [60, 20, 20, 0, 0.9],
      [30, 30, 2, 1e-4, 0.01],
      [24, 36, 0, 0, 0.5],
    ];
    for (const [m, n, rank, noise, alpha] of cases) {
      const prev = rank === 0 ? new Float32Array(m * n) : lowRank(m, n, rank, noise, rnd);
      const tau = lowRank(m, n, 3, 1e-3, rnd);
      const js = await opcmClean(engine, prev.slice(), () => tau.slice(), m, n, alpha);
      const native = await engine.opcmClean(prev.slice(), () => tau.slice(), m, n, alpha);
      const label = `${m}×${n} rank ${rank} noise ${noise} alpha ${alpha}`;
      assert.deepEqual(native.cleaned, js.cleaned, label);
      assert.deepEqual({ ...native, cleaned: null }, { ...js, cleaned: null }, label);
    }
    engine.close();
  },
);
