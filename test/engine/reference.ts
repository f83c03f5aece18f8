/** Float64 reference math and matrix builders for the engine tests (independent of the engines). */

/**
 * Deterministic uniform [0, 1) generator, so failures reproduce: xorshift32 over a seed scrambled
 * by a Weyl step (a generator of its own, not the engines' completion PRNG).
 */
export function rng(seed: number): () => number {
  let x = (Math.imul(seed >>> 0, 0x9e3779b1) ^ 0x2545f491) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/** Deterministic uniform values in [-0.5, 0.5). */
export function centred(seed: number): () => number {
  const r = rng(seed);
  return () => r() - 0.5;
}

export function randomF32(len: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: len }, () => 2 * r() - 1);
}

/** op(A)·op(B) in float64, plus Σ_p |op(A)_ip||op(B)_pj| for rounding-error bounds. */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
  transA = false,
  transB = false,
): { c: Float64Array; abs: Float64Array } {
  const c = new Float64Array(m * n);
  const abs = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let t = 0;
      for (let p = 0; p < k; p++) {
        const x = transA ? a[p * m + i] : a[i * k + p];
        const y = transB ? b[j * k + p] : b[p * n + j];
        s += x * y;
        t += Math.abs(x * y);
      }
      c[i * n + j] = s;
      abs[i * n + j] = t;
    }
  }
  return { c, abs };
}

/** rows×cols row-major matrix with orthonormal columns (Gram–Schmidt twice on Gaussian-ish data). */
export function orthonormal(rows: number, cols: number, seed: number): Float64Array {
  const r = rng(seed);
  const q: Float64Array[] = [];
  for (let c = 0; c < cols; c++) {
    const x = Float64Array.from({ length: rows }, () => r() + r() + r() - 1.5);
    for (let pass = 0; pass < 2; pass++) {
      for (const y of q) {
        let d = 0;
        for (let i = 0; i < rows; i++) d += x[i] * y[i];
        for (let i = 0; i < rows; i++) x[i] -= d * y[i];
      }
    }
    const nrm = frobenius(x);
    for (let i = 0; i < rows; i++) x[i] /= nrm;
    q.push(x);
  }
  const out = new Float64Array(rows * cols);
  q.forEach((x, c) => x.forEach((v, i) => (out[i * cols + c] = v)));
  return out;
}

/** A = U diag(s) Vᵀ from known factors (float64), and its float32 rounding. */
export function fromFactors(
  m: number,
  n: number,
  s: number[],
  seed: number,
): { a64: Float64Array; a32: Float32Array; u: Float64Array; v: Float64Array } {
  const r = s.length;
  const u = orthonormal(m, r, seed);
  const v = orthonormal(n, r, seed + 1);
  const a64 = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let t = 0;
      for (let k = 0; k < r; k++) t += u[i * r + k] * s[k] * v[j * r + k];
      a64[i * n + j] = t;
    }
  }
  return { a64, a32: Float32Array.from(a64), u, v };
}

export function frobenius(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

/** ‖A − U diag(s) Vᵀ‖_F / ‖A‖_F, in float64. */
export function reconstructionError(
  a: ArrayLike<number>,
  u: ArrayLike<number>,
  s: ArrayLike<number>,
  v: ArrayLike<number>,
  m: number,
  n: number,
): number {
  const r = s.length;
  let err = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let t = 0;
      for (let k = 0; k < r; k++) t += u[i * r + k] * s[k] * v[j * r + k];
      err += (a[i * n + j] - t) ** 2;
    }
  }
  return Math.sqrt(err) / (frobenius(a) || 1);
}

/** max |QᵀQ − I| over entries, Q rows×cols row-major. */
export function orthogonalityError(q: ArrayLike<number>, rows: number, cols: number): number {
  let worst = 0;
  for (let a = 0; a < cols; a++) {
    for (let b = a; b < cols; b++) {
      let d = 0;
      for (let i = 0; i < rows; i++) d += q[i * cols + a] * q[i * cols + b];
      worst = Math.max(worst, Math.abs(d - (a === b ? 1 : 0)));
    }
  }
  return worst;
}

/** |⟨x_k, y_k⟩| for column k of two rows×cols matrices: 1 when the columns agree up to sign. */
export function columnAlignment(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  rows: number,
  cols: number,
  k: number,
): number {
  let d = 0;
  for (let i = 0; i < rows; i++) d += x[i * cols + k] * y[i * cols + k];
  return Math.abs(d);
}
