import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadLinalg } from '../../src/engine/native.js';
import { NativeEngine, OPCM_SOLO_MIN_ELEMENTS, SOLO_MIN_ELEMENTS } from '../../src/engine/native-engine.js';
import type { Svd } from '../../src/engine/types.js';
import { frobenius, matmulRef, orthogonalityError, randomF32, reconstructionError } from './reference.js';

const linalg = loadLinalg();

/** max over k < count of ‖A v_k − σ_k u_k‖ / σ_max: O(m·n) per triplet */
function tripletResidual(a: Float32Array, r: Svd, m: number, n: number, count: number): number {
  const rank = Math.min(m, n);
  let worst = 0;
  for (let k = 0; k < count; k++) {
    let sq = 0;
    for (let i = 0; i < m; i++) {
      let av = 0;
      for (let j = 0; j < n; j++) av += a[i * n + j] * r.v[j * rank + k];
      sq += (av - r.s[k] * r.u[i * rank + k]) ** 2;
    }
    worst = Math.max(worst, Math.sqrt(sq) / r.s[0]);
  }
  return worst;
}

// Jobs on matrices over SOLO_MIN_ELEMENTS wait for the lanes to empty and run alone with every BLAS
// thread; smaller ones share the lanes single-threaded. Submitted all at once, every job must finish
// with the same bits as when it runs by itself.
test(
  'solo (large) and lane (small) jobs submitted together all finish, each as when run alone',
  { skip: linalg.addon ? false : `native addon absent: ${linalg.error?.message}` },
  async () => {
    const engine = new NativeEngine(linalg.addon!, { jobs: 2 });
    try {
      const big = 2048; // 4 Mi elements per operand: solo
      const a = randomF32(big * big, 1);
      const b = randomF32(big * big, 2);
      const small = randomF32(300 * 200, 3);
      const sq = randomF32(1700 * 1700, 4); // 2.9 Mi elements: a lane job
      const wide = randomF32(1600 * 2100, 5); // 3.4 Mi elements: solo
      assert.ok(big * big > SOLO_MIN_ELEMENTS && 1600 * 2100 > SOLO_MIN_ELEMENTS && 1700 * 1700 <= SOLO_MIN_ELEMENTS);
      // what callers (the runner) are told: large ones one at a time, small ones two at once
      assert.deepEqual(
        [big * big, 1600 * 2100, 1700 * 1700].map((e) => engine.concurrencyFor(e)),
        [1, 1, 2],
      );
      // OPCM's cleaning pairs up to a larger size: TinyLlama's MLP tensors do, 7B's 4096×4096 do not
      assert.ok(OPCM_SOLO_MIN_ELEMENTS > SOLO_MIN_ELEMENTS);
      assert.deepEqual(
        [5632 * 2048, 4096 * 4096, 1700 * 1700].map((e) => engine.concurrencyFor(e, 'opcm-clean')),
        [2, 1, 2],
      );
      assert.equal(engine.concurrencyFor(5632 * 2048, 'other'), 1);
      const run = () =>
        [
          () => engine.svd(small, 300, 200),
          () => engine.matmul(a, b, big, big, big),
          () => engine.matmul(small, small, 300, 200, 300, { transB: true }),
          () => engine.svd(wide, 1600, 2100),
          () => engine.matmul(sq, sq, 1700, 1700, 1700),
          () => engine.svd(sq, 1700, 1700),
        ] as const;

      const together = await Promise.all(run().map((job) => job()));
      const alone = [];
      for (const job of run()) alone.push(await job());
      assert.deepEqual(together, alone);

      const [s1, c, d, s2] = together as [Svd, Float32Array, Float32Array, Svd];
      assert.ok(reconstructionError(small, s1.u, s1.s, s1.v, 300, 200) < 2e-7);
      assert.ok(orthogonalityError(s1.u, 300, 200) < 2e-7);
      assert.ok(tripletResidual(wide, s2, 1600, 2100, 4) < 1e-6);
      for (const [out, x, y, m, k, n, transB] of [
        [c, a, b, big, big, big, false],
        [d, small, small, 300, 200, 300, true],
      ] as const) {
        for (const i of [0, m >> 1, m - 1]) {
          const ref = matmulRef(x.subarray(i * k, (i + 1) * k), y, 1, k, n, false, transB).c;
          const got = out.subarray(i * n, (i + 1) * n);
          assert.ok(frobenius(ref.map((v, j) => v - got[j])) < 1e-5 * frobenius(ref), `product row ${i}`);
        }
      }
    } finally {
      engine.close();
    }
  },
);
