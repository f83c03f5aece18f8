import { symmetricEigen } from './symmetric-eigen.js';
import type { Svd } from './types.js';

/**
 * The same algorithm as the native SVD (native/src/linalg/svd.cc), in TypeScript float64:
 * Gram matrix of the short side, symmetric eigensolver, X = A·V, then the columns of X that
 * squaring the condition number left non-orthogonal go through Gram–Schmidt (twice: "twice is
 * enough" for orthogonality to working precision). Tolerances match native/src/linalg/svd.h.
 */
export const NULL_TOLERANCE = 1e-7;
export const ORTHO_TOLERANCE = 1e-3;

export function svdGram(a: Float32Array, m: number, n: number): Svd {
  const tall = m >= n;
  const S = tall ? n : m;
  const L = tall ? m : n;

  // P: A viewed as L×S (A itself if tall, Aᵀ if wide), in float64 so the Gram products are exact.
  const p = new Float64Array(L * S);
  if (tall) p.set(a);
  else for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) p[j * S + i] = a[i * n + j];

  const g = new Float64Array(S * S);
  for (let r = 0; r < L; r++) {
    const row = r * S;
    for (let i = 0; i < S; i++) {
      const pri = p[row + i];
      if (pri === 0) continue;
      const gi = i * S;
      for (let j = i; j < S; j++) g[gi + j] += pri * p[row + j];
    }
  }
  for (let i = 0; i < S; i++) for (let j = 0; j < i; j++) g[i * S + j] = g[j * S + i];

  const { vectors: vs } = symmetricEigen(g, S);

  // Columns of X = P·V, stored as rows of xt (S×L) so column operations are contiguous.
  const x = new Float64Array(L * S);
  for (let r = 0; r < L; r++) {
    const row = r * S;
    for (let i = 0; i < S; i++) {
      const pri = p[row + i];
      if (pri === 0) continue;
      const vi = i * S;
      for (let k = 0; k < S; k++) x[row + k] += pri * vs[vi + k];
    }
  }
  const cols: Float64Array[] = [];
  for (let k = 0; k < S; k++) {
    const col = new Float64Array(L);
    for (let r = 0; r < L; r++) col[r] = x[r * S + k];
    cols.push(col);
  }

  const norms = cols.map(norm2);
  const nmax = Math.max(0, ...norms);
  // 0 head, 1 small, 2 null (all null when A = 0).
  const cls = (k: number): number =>
    !(norms[k] > NULL_TOLERANCE * nmax) ? 2 : norms[k] >= ORTHO_TOLERANCE * nmax ? 0 : 1;
  const order = Array.from({ length: S }, (_, k) => k).sort((i, j) => cls(i) - cls(j) || i - j);
  const head = order.filter((k) => cls(k) === 0).length;
  const good = head + order.filter((k) => cls(k) === 1).length;

  const rand = prng(0x9e3779b9);
  const q: Float64Array[] = [];
  const sigma = new Float64Array(S);
  for (let c = 0; c < S; c++) {
    const k = order[c];
    let col = cols[k];
    if (c < head) {
      sigma[c] = norms[k];
      scale(col, 1 / norms[k]);
    } else {
      let nrm = c < good ? orthogonalize(col, q) : 0;
      if (nrm > NULL_TOLERANCE * nmax) {
        sigma[c] = nrm;
      } else {
        // Null, or a small column numerically in the span of the others: complete with a random
        // vector (almost surely not in that span, unlike a unit vector e_i).
        do {
          col = randomVector(L, rand);
          nrm = orthogonalize(col, q);
        } while (!(nrm > 1e-8 * Math.sqrt(L)));
      }
      scale(col, 1 / nrm);
    }
    q.push(col);
  }

  // σ_k from the projected norms can swap nearly equal neighbours: sort, moving u and v together.
  const perm = Array.from({ length: S }, (_, c) => c).sort((i, j) => sigma[j] - sigma[i] || i - j);
  const s = Float64Array.from(perm, (c) => sigma[c]);
  const longF = new Float32Array(L * S);
  const shortF = new Float32Array(S * S);
  perm.forEach((c, out) => {
    const qc = q[c];
    for (let r = 0; r < L; r++) longF[r * S + out] = qc[r];
    const k = order[c];
    for (let i = 0; i < S; i++) shortF[i * S + out] = vs[i * S + k];
  });
  return tall ? { u: longF, s, v: shortF } : { u: shortF, s, v: longF };
}

function norm2(x: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

function scale(x: Float64Array, f: number): void {
  for (let i = 0; i < x.length; i++) x[i] *= f;
}

/** Removes from x its components along the orthonormal columns q, twice; returns ‖x‖ after. */
function orthogonalize(x: Float64Array, q: Float64Array[]): number {
  for (let pass = 0; pass < 2; pass++) {
    for (const qj of q) {
      let d = 0;
      for (let i = 0; i < x.length; i++) d += qj[i] * x[i];
      for (let i = 0; i < x.length; i++) x[i] -= d * qj[i];
    }
  }
  return norm2(x);
}

/** Deterministic (mulberry32) so repeated runs give the same completion vectors. */
function prng(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r ^= r + Math.imul(r ^ (r >>> 7), 61 | r);
    return ((r ^ (r >>> 14)) >>> 0) / 2 ** 32;
  };
}

function randomVector(len: number, rand: () => number): Float64Array {
  return Float64Array.from({ length: len }, () => 2 * rand() - 1);
}
