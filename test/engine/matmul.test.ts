import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { engineCases } from './engines.js';
import { matmulRef, randomF32 } from './reference.js';

const u32 = 2 ** -24;

for (const ec of engineCases) {
  describe(`matmul (${ec.name})`, { skip: ec.skip }, () => {
    const engine = ec.skip ? null : ec.make();
    after(() => engine?.close());

    // Shapes: non-square, odd sizes (kernel edges), degenerate 1s, and one past BLAS blocking.
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [1, 7, 1],
      [5, 1, 3],
      [37, 53, 29],
      [64, 128, 96],
      [130, 300, 70],
    ];
    for (const [m, k, n] of shapes) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          test(`${m}×${k} · ${k}×${n}${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''}`, async () => {
            const a = randomF32(m * k, m * 1000 + k);
            const b = randomF32(k * n, n * 1000 + k + 7);
            const c = await engine!.matmul(a, b, m, k, n, { transA, transB });
            assert.ok(c instanceof Float32Array);
            assert.equal(c.length, m * n);
            const ref = matmulRef(a, b, m, k, n, transA, transB);
            for (let i = 0; i < m * n; i++) {
              // Float32 accumulation bound (k+2)·u·Σ|a||b|, plus the output rounding.
              const bound = (k + 2) * u32 * ref.abs[i] + u32 * Math.abs(ref.c[i]) + 1e-30;
              assert.ok(Math.abs(c[i] - ref.c[i]) <= bound, `C[${i}] = ${c[i]}, reference ${ref.c[i]}, bound ${bound}`);
            }
          });
        }
      }
    }

    test('rejects mismatched lengths, bad dimensions and a closed engine', async () => {
      const a = new Float32Array(6);
      await assert.rejects(engine!.matmul(a, new Float32Array(5), 2, 3, 2), RangeError);
      await assert.rejects(engine!.matmul(a, new Float32Array(6), 2, 3, 0), RangeError);
      await assert.rejects(engine!.matmul(a, new Float32Array(6), 2.5, 3, 2), RangeError);
      const closed = ec.make();
      closed.close();
      await assert.rejects(closed.matmul(a, new Float32Array(6), 2, 3, 2), /closed/);
    });

    test('concurrent calls are serialized and each gets its own result', async () => {
      const a = randomF32(40 * 30, 1);
      const results = await Promise.all(
        [1, 2, 3, 4].map((s) => engine!.matmul(a, randomF32(30 * 20, s), 40, 30, 20).then((c) => ({ s, c }))),
      );
      for (const { s, c } of results) {
        const ref = matmulRef(a, randomF32(30 * 20, s), 40, 30, 20);
        for (let i = 0; i < c.length; i++) assert.ok(Math.abs(c[i] - ref.c[i]) <= 32 * u32 * ref.abs[i] + 1e-30);
      }
    });
  });
}
