import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { engineCases } from '../engine/engines.js';
import { frobenius, randomF32 } from '../engine/reference.js';

/**
 * The reference's literal cleaning (methods.py, full-matrices SVD): P = UᵀτV with its leading k×k
 * block and its diagonal zeroed, cleaned = U P Vᵀ = τ − Σ_{i,j<k} P_ij u_i v_jᵀ − Σ_{k≤i<r} P_ii u_i v_iᵀ,
 * in float64 from the known factors of prev. Only the r leading singular pairs enter.
 */
function literalClean(
  tau: Float32Array,
  u: Float64Array,
  v: Float64Array,
  m: number,
  n: number,
  r: number,
  k: number,
): Float64Array {
  const tv = new Float64Array(m * r); // τ V
  for (let i = 0; i < m; i++)
    for (let p = 0; p < n; p++) {
      const t = tau[i * n + p];
      if (t !== 0) for (let c = 0; c < r; c++) tv[i * r + c] += t * v[p * r + c];
    }
  const pm = (a: number, b: number) => {
    let s = 0;
    for (let i = 0; i < m; i++) s += u[i * r + a] * tv[i * r + b];
    return s;
  };
  const q = new Float64Array(r * r); // the entries of P that are removed
  for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) q[a * r + b] = pm(a, b);
  for (let a = k; a < r; a++) q[a * r + a] = pm(a, a);
  const uq = new Float64Array(m * r); // U Q
  for (let i = 0; i < m; i++)
    for (let a = 0; a < r; a++) {
      const x = u[i * r + a];
      if (x !== 0) for (let b = 0; b < r; b++) uq[i * r + b] += x * q[a * r + b];
    }
  const out = Float64Array.from(tau);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < n; p++) {
      let s = 0;
      for (let b = 0; b < r; b++) s += uq[i * r + b] * v[p * r + b];
      out[i * n + p] -= s;
    }
  return out;
}

/** argmax(cumsum(σ)/sum(σ) > α), as the reference */
function splitRank(s: number[], alpha: number): number {
  const total = s.reduce((x, y) => x + y, 0);
  let c = 0;
  for (let i = 0; i < s.length; i++) if ((c += s[i]) / total > alpha) return i;
  return 0;
}

/**
 * prev = U diag(σ) Vᵀ exactly representable in float32, so the literal form from the known factors
 * is exact and any difference is the implementation's: prev = H_m diag(c) H_nᵀ with Sylvester–
 * Hadamard columns (±1; m and n powers of 2) and c_k = 2r − k (integers, so every entry is an
 * integer below 2^24), i.e. U = H_m/√m, V = H_n/√n, σ_k = c_k √(mn). Gaps of √(mn) keep the
 * singular pairs well defined.
 */
function exactFactors(m: number, n: number): { prev: Float32Array; u: Float64Array; v: Float64Array; sigma: number[] } {
  const r = Math.min(m, n);
  const sign = (i: number, k: number) => {
    let bits = i & k;
    let parity = 0;
    while (bits) {
      parity ^= bits & 1;
      bits >>>= 1;
    }
    return parity ? -1 : 1;
  };
  const had = (size: number) => {
    const q = new Float64Array(size * r);
    for (let i = 0; i < size; i++) for (let k = 0; k < r; k++) q[i * r + k] = sign(i, k) / Math.sqrt(size);
    return q;
  };
  const c = Array.from({ length: r }, (_, k) => 2 * r - k);
  const hn = Array.from({ length: n * r }, (_, x) => sign(Math.floor(x / r), x % r));
  const prev = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    const row = c.map((ck, k) => sign(i, k) * ck);
    for (let j = 0; j < n; j++) {
      let t = 0;
      for (let k = 0; k < r; k++) t += row[k] * hn[j * r + k];
      prev[i * n + j] = t;
    }
  }
  return { prev, u: had(m), v: had(n), sigma: c.map((ck) => ck * Math.sqrt(m * n)) };
}

for (const ec of engineCases) {
  describe(`OPCM cleaning (${ec.name}) against the reference's literal form`, { skip: ec.skip }, () => {
    const engine = ec.skip ? null : ec.make();
    after(() => engine?.close());
    const cases: [string, number, number, number][] = [
      ['tall', 64, 16, 0.5],
      ['wide', 16, 64, 0.5],
      ['square', 64, 64, 0.3],
      ['square, α = 0.9', 64, 64, 0.9],
    ];
    // 2 row blocks of the products and 2 panels of the native SVD
    if (ec.name === 'native') cases.push(['tall over two row blocks and SVD panels', 131072, 64, 0.5]);
    for (const [label, m, n, alpha] of cases) {
      test(`${label}: ${m}×${n}, α = ${alpha}`, async () => {
        const r = Math.min(m, n);
        const { prev, u, v, sigma } = exactFactors(m, n);
        const tau = randomF32(m * n, 17 + m);
        const k = splitRank(sigma, alpha);
        const want = literalClean(tau, u, v, m, n, r, k);
        const { cleaned, split, removedSq } = await engine!.opcmClean(prev, () => Float32Array.from(tau), m, n, alpha);
        assert.equal(split, k);
        const err = frobenius(want.map((x, i) => x - cleaned[i])) / frobenius(tau);
        assert.ok(err < 1e-6, `‖cleaned − literal‖/‖τ‖ = ${err}`);
        const removed = frobenius(want.map((x, i) => tau[i] - x));
        assert.ok(
          Math.abs(Math.sqrt(removedSq) - removed) <= 1e-6 * frobenius(tau),
          `‖removed‖ ${Math.sqrt(removedSq)} vs ${removed}`,
        );
      });
    }
  });
}
