import { symmetricEigen } from './symmetric-eigen.js';
import type { Svd } from './types.js';

/**
 * The same algorithm as the native SVD (native/src/linalg/svd.cc), in TypeScript float64:
 * Gram matrix of the short side, symmetric eigensolver, X = A·V, then the columns of X that
 * squaring the condition number left non-orthogonal go through Gram–Schmidt (twice: "twice is
 * enough" for orthogonality to working precision). Tolerances match native/src/linalg/svd.h.
 */
export const NULL_TOLERANCE = 1e-7;
export const ORTHO_TOLERANCE = 1e-4;

export function svdGram(a: Float32Array, m: number, n: number): Svd {
  const tall = m >= n;
  const S = tall ? n : m;
  const L = tall ? m : n;

  const p = longSideView(a, m, n, tall);
  const { vectors: vs } = symmetricEigen(gramOfShortSide(p, L, S), S);
  const cols = projectedColumns(p, vs, L, S);
  const split = classifyColumns(cols);
  const { q, sigma } = orthonormalColumns(cols, split, L);
  const { long, s, short } = sortedFactors(q, sigma, vs, split.order, L, S);
  return tall ? { u: long, s, v: short } : { u: short, s, v: long };
}

/** P: A viewed as L×S (A itself if tall, Aᵀ if wide), in float64 so the Gram products are exact. */
function longSideView(a: Float32Array, m: number, n: number, tall: boolean): Float64Array {
  const S = tall ? n : m;
  const p = new Float64Array(m * n);
  if (tall) p.set(a);
  else for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) p[j * S + i] = a[i * n + j];
  return p;
}

/** G = PᵀP (S×S), the upper triangle accumulated row by row of P, then mirrored. */
function gramOfShortSide(p: Float64Array, L: number, S: number): Float64Array {
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
  return g;
}

/** The columns of X = P·V, each as its own contiguous vector of length L. */
function projectedColumns(p: Float64Array, vs: Float64Array, L: number, S: number): Float64Array[] {
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
  return cols;
}

/** How the columns of X split: well-conditioned head, small (re-orthogonalized), null. */
interface ColumnSplit {
  /** ‖X_k‖ per column k */
  norms: number[];
  /** the largest of `norms` (0 when A = 0) */
  nmax: number;
  /** column indices: head first, then small, then null; each group in index order */
  order: number[];
  /** number of head columns */
  head: number;
  /** number of head + small columns */
  good: number;
}

function classifyColumns(cols: Float64Array[]): ColumnSplit {
  const norms = cols.map(norm2);
  const nmax = Math.max(0, ...norms);
  // 0 head, 1 small, 2 null (all null when A = 0).
  const cls = (k: number): number =>
    !(norms[k] > NULL_TOLERANCE * nmax) ? 2 : norms[k] >= ORTHO_TOLERANCE * nmax ? 0 : 1;
  const order = Array.from({ length: cols.length }, (_, k) => k).sort((i, j) => cls(i) - cls(j) || i - j);
  const head = order.filter((k) => cls(k) === 0).length;
  const good = head + order.filter((k) => cls(k) === 1).length;
  return { norms, nmax, order, head, good };
}

/**
 * Normalizes the head columns, Gram–Schmidts the small ones, and completes null (or numerically
 * dependent) ones with random vectors; q[c] is the c-th column in `order`, σ_c its norm (0 when
 * completed). Normalizes the columns of `cols` in place.
 */
function orthonormalColumns(
  cols: Float64Array[],
  { norms, nmax, order, head, good }: ColumnSplit,
  L: number,
): { q: Float64Array[]; sigma: Float64Array } {
  const S = cols.length;
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
  return { q, sigma };
}

/**
 * σ_k from the projected norms can swap nearly equal neighbours: sorts descending, moving the
 * long-side vectors (u when tall) and short-side vectors (v when tall) together, into float32.
 */
function sortedFactors(
  q: Float64Array[],
  sigma: Float64Array,
  vs: Float64Array,
  order: number[],
  L: number,
  S: number,
): { long: Float32Array; s: Float64Array; short: Float32Array } {
  const perm = Array.from({ length: S }, (_, c) => c).sort((i, j) => sigma[j] - sigma[i] || i - j);
  const s = Float64Array.from(perm, (c) => sigma[c]);
  const long = new Float32Array(L * S);
  const short = new Float32Array(S * S);
  perm.forEach((c, out) => {
    const qc = q[c];
    for (let r = 0; r < L; r++) long[r * S + out] = qc[r];
    const k = order[c];
    for (let i = 0; i < S; i++) short[i * S + out] = vs[i * S + k];
  });
  return { long, s, short };
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
