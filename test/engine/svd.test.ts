import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { Svd } from '../../src/engine/types.js';
import { engineCases } from './engines.js';
import { fromFactors, frobenius, orthogonalityError, randomF32, reconstructionError } from './reference.js';

/** Singular values σ_max·cond^(−k/(r−1)), k = 0..r−1: condition number `cond`. */
const geometric = (r: number, cond: number, smax = 3): number[] =>
  Array.from({ length: r }, (_, k) => smax * cond ** (-k / (r - 1)));

// U and V come back as float32: storing a unit vector in float32 alone costs ~1e-8 per inner
// product and ~4e-8 relative reconstruction error here, so these bounds sit a few times above that
// (a float32 Gram + eigensolver misses them by orders of magnitude on the ill-conditioned cases).
const ORTHO_MAX = 2e-7;
const RECON_MAX = 2e-7;
// Reported as 0 below this fraction of σ_max (native/src/linalg/svd.h, src/engine/portable-svd.ts).
const NULL_TOL = 1e-7;

function checkShape(r: Svd, m: number, n: number): void {
  const k = Math.min(m, n);
  assert.ok(r.u instanceof Float32Array && r.v instanceof Float32Array && r.s instanceof Float64Array);
  assert.equal(r.u.length, m * k);
  assert.equal(r.v.length, n * k);
  assert.equal(r.s.length, k);
  assert.ok(r.u.every(Number.isFinite) && r.v.every(Number.isFinite) && r.s.every(Number.isFinite), 'finite outputs');
  for (let i = 1; i < k; i++) assert.ok(r.s[i] <= r.s[i - 1], `s descending at ${i}`);
  assert.ok(r.s[k - 1] >= 0, 's ≥ 0');
}

function checkFactors(r: Svd, a: Float32Array, m: number, n: number): void {
  const k = Math.min(m, n);
  const ou = orthogonalityError(r.u, m, k);
  const ov = orthogonalityError(r.v, n, k);
  const rec = reconstructionError(a, r.u, r.s, r.v, m, n);
  assert.ok(ou < ORTHO_MAX, `‖UᵀU − I‖max = ${ou}`);
  assert.ok(ov < ORTHO_MAX, `‖VᵀV − I‖max = ${ov}`);
  assert.ok(rec < RECON_MAX, `‖A − UΣVᵀ‖/‖A‖ = ${rec}`);
}

for (const ec of engineCases) {
  describe(`svd (${ec.name})`, { skip: ec.skip }, () => {
    const engine = ec.skip ? null : ec.make();
    after(() => engine?.close());

    // Known factors: A = U diag(σ) Vᵀ rounded to float32. By Weyl, rounding moves each σ by at
    // most δ = ‖A32 − A64‖_F, so the computed values must lie within δ (+ the null cutoff for
    // values reported as 0, + float64 working error).
    const known: [string, number, number, number[]][] = [
      ['tall', 300, 120, geometric(120, 10)],
      ['wide', 120, 300, geometric(120, 10)],
      ['square', 160, 160, geometric(160, 100)],
      ['ill-conditioned tall, cond 1e6', 250, 150, geometric(150, 1e6)],
      ['ill-conditioned wide, cond 1e7', 150, 250, geometric(150, 1e7)],
      ['rank-deficient tall, rank 60 of 150', 200, 150, [...geometric(60, 100), ...Array<number>(90).fill(0)]],
      ['rank-deficient wide, rank 30 of 100', 100, 180, [...geometric(30, 1e3), ...Array<number>(70).fill(0)]],
      // the null directions' random starters lie almost wholly in the span of the head
      ['square, 197 head directions and 3 null', 200, 200, [...geometric(197, 900), 0, 0, 0]],
    ];
    for (const [label, m, n, sigma] of known) {
      test(`${label}: ${m}×${n}`, async () => {
        const { a32, a64, u: u0, v: v0 } = fromFactors(m, n, sigma, m * 7 + n);
        const r = await engine!.svd(a32, m, n);
        checkShape(r, m, n);
        checkFactors(r, a32, m, n);

        const delta = frobenius(a32.map((x, i) => x - a64[i]));
        for (let k = 0; k < sigma.length; k++) {
          const tol = delta + (r.s[k] === 0 ? NULL_TOL * sigma[0] : 0) + 1e-12 * sigma[0];
          assert.ok(Math.abs(r.s[k] - sigma[k]) <= tol, `σ${k} = ${r.s[k]}, known ${sigma[k]}, tolerance ${tol}`);
        }
        // The leading singular vectors (well separated: relative gaps ≥ 1 %) match the known ones
        // up to sign: perturbation δ over gap bounds the angle.
        const rank = Math.min(m, n);
        for (let k = 0; k < 5; k++) {
          let du = 0;
          let dv = 0;
          for (let i = 0; i < m; i++) du += r.u[i * rank + k] * u0[i * sigma.length + k];
          for (let j = 0; j < n; j++) dv += r.v[j * rank + k] * v0[j * sigma.length + k];
          assert.ok(
            1 - Math.abs(du) < 1e-6 && 1 - Math.abs(dv) < 1e-6,
            `vector ${k}: |⟨u,u0⟩| = ${du}, |⟨v,v0⟩| = ${dv}`,
          );
          assert.ok(du * dv > 0, `vector ${k}: u and v signs agree so σ u vᵀ keeps its sign`);
        }
      });
    }

    // (the tail's re-orthogonalization, below kOrthoTol = 1e-4, is exercised by the cond 1e6 and 1e7 cases)
    test('random square 200×200 (σ_min/σ_max ≈ 6e-4)', async () => {
      const a = randomF32(200 * 200, 99);
      const r = await engine!.svd(a, 200, 200);
      checkShape(r, 200, 200);
      assert.ok(r.s[199] < 1e-3 * r.s[0], `σ_min/σ_max = ${r.s[199] / r.s[0]}`);
      checkFactors(r, a, 200, 200);
    });

    test('zero matrix: all σ = 0, U and V still orthonormal', async () => {
      const r = await engine!.svd(new Float32Array(50 * 40), 50, 40);
      checkShape(r, 50, 40);
      assert.ok(r.s.every((x) => x === 0));
      assert.ok(orthogonalityError(r.u, 50, 40) < ORTHO_MAX);
      assert.ok(orthogonalityError(r.v, 40, 40) < ORTHO_MAX);
    });

    test('rank one with exact zeros (duplicated rows)', async () => {
      const row = randomF32(30, 5);
      const a = new Float32Array(20 * 30);
      for (let i = 0; i < 20; i++) a.set(row, i * 30);
      const r = await engine!.svd(a, 20, 30);
      checkShape(r, 20, 30);
      checkFactors(r, a, 20, 30);
      assert.ok(Math.abs(r.s[0] - Math.sqrt(20) * frobenius(row)) < 1e-6 * r.s[0]);
      assert.ok(
        r.s.slice(1).every((x) => x === 0),
        `trailing σ: ${r.s.slice(1, 4).join(', ')}`,
      );
    });

    test('vectors 1×n and m×1', async () => {
      const row = randomF32(17, 3);
      for (const [m, n] of [
        [1, 17],
        [17, 1],
      ]) {
        const r = await engine!.svd(row, m, n);
        checkShape(r, m, n);
        assert.ok(Math.abs(r.s[0] - frobenius(row)) < 1e-12 * frobenius(row));
        checkFactors(r, row, m, n);
      }
    });

    test('rejects non-finite input and mismatched lengths', async () => {
      const a = randomF32(12, 1);
      a[5] = Number.NaN;
      await assert.rejects(engine!.svd(a, 3, 4), /non-finite value at index 5/);
      await assert.rejects(engine!.svd(new Float32Array(11), 3, 4), RangeError);
    });
  });
}

// The native SVD streams A through float64 panels of ~32 MB (4 Mi doubles): with a short side of
// 32 that is 131072 long-side rows per panel, so 131172 rows take two, the second ragged.
const native = engineCases.find((c) => c.name === 'native')!;
describe('svd (native) across panels', { skip: native.skip }, () => {
  const engine = native.skip ? null : native.make();
  after(() => engine?.close());
  for (const [m, n] of [
    [131172, 32],
    [32, 131172],
  ]) {
    test(`${m}×${n}, cond 1e6`, async () => {
      const sigma = geometric(32, 1e6);
      const { a32, a64 } = fromFactors(m, n, sigma, 5);
      const r = await engine!.svd(a32, m, n);
      checkShape(r, m, n);
      checkFactors(r, a32, m, n);
      const delta = frobenius(a32.map((x, i) => x - a64[i]));
      for (let k = 0; k < 32; k++) assert.ok(Math.abs(r.s[k] - sigma[k]) <= delta + 1e-12 * sigma[0], `σ${k}`);
    });
  }
});

// A head of 700 directions, a small tail down to ~1e-7 σ_max and 8 null directions: the random
// starters of the null ones are ~99 % in the head's span, so projecting them off it once would
// leave the head's own departure from orthonormality amplified ~100× in their norm (measured
// ‖UᵀU − I‖ 1.8e-7 that way, 1.1e-8 with the second projection). Float32 storage alone gives ~1e-8.
describe('svd (native): null directions behind a large head', { skip: native.skip }, () => {
  const engine = native.skip ? null : native.make();
  after(() => engine?.close());
  test('768×768: U and V orthonormal to 5e-8', async () => {
    const sigma = [...geometric(700, 990), ...geometric(60, 1e4, 2.9e-3), ...Array<number>(8).fill(0)];
    const { a32 } = fromFactors(768, 768, sigma, 768 * 8);
    const r = await engine!.svd(a32, 768, 768);
    checkShape(r, 768, 768);
    checkFactors(r, a32, 768, 768);
    const ou = orthogonalityError(r.u, 768, 768);
    const ov = orthogonalityError(r.v, 768, 768);
    assert.ok(ou < 5e-8 && ov < 5e-8, `‖UᵀU − I‖max = ${ou}, ‖VᵀV − I‖max = ${ov}`);
  });
});
