/**
 * Symmetric eigendecomposition in float64: Householder tridiagonalization + implicit QL with
 * Wilkinson shifts (the tred2/tql2 pair of EISPACK, as in the public-domain JAMA library).
 * O(n³), backward stable; meant for the few-hundred-sized Gram matrices of the portable engine.
 */
export interface SymmetricEigen {
  /** eigenvalues, descending */
  values: Float64Array;
  /** n×n row-major; column k is the unit eigenvector of values[k] */
  vectors: Float64Array;
}

/** `a` is n×n row-major and symmetric (only read, both triangles). */
export function symmetricEigen(a: Float64Array, n: number): SymmetricEigen {
  const v = Float64Array.from(a);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tred2(v, d, e, n);
  // tql2 rotates pairs of eigenvector columns; transposed they are contiguous rows.
  const w = transpose(v, n);
  tql2(w, d, e, n);

  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => d[j] - d[i]);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, k) => {
    values[k] = d[src];
    for (let i = 0; i < n; i++) vectors[i * n + k] = w[src * n + i];
  });
  return { values, vectors };
}

function transpose(x: Float64Array, n: number): Float64Array {
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = x[i * n + j];
  return t;
}

/** Reduces V (in: the matrix) to tridiagonal d, e; V out: the accumulated orthogonal transform. */
function tred2(V: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) d[j] = V[(n - 1) * n + j];
  for (let i = n - 1; i > 0; i--) d[i] = householderRow(V, d, e, n, i);
  accumulateTransforms(V, d, n);
  for (let j = 0; j < n; j++) {
    d[j] = V[(n - 1) * n + j];
    V[(n - 1) * n + j] = 0;
  }
  V[(n - 1) * n + n - 1] = 1;
  e[0] = 0;
}

/**
 * One Householder step of tred2: annihilates row i left of the subdiagonal (d holds that row,
 * scaled), updates the leading i×i block of V; returns h = ‖scaled row‖² − f·g (0 if the row is 0).
 */
function householderRow(V: Float64Array, d: Float64Array, e: Float64Array, n: number, i: number): number {
  let scale = 0;
  for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
  if (scale === 0) {
    e[i] = d[i - 1];
    for (let j = 0; j < i; j++) {
      d[j] = V[(i - 1) * n + j];
      V[i * n + j] = 0;
      V[j * n + i] = 0;
    }
    return 0;
  }
  let h = 0;
  for (let k = 0; k < i; k++) {
    d[k] /= scale;
    h += d[k] * d[k];
  }
  let f = d[i - 1];
  let g = Math.sqrt(h);
  if (f > 0) g = -g;
  e[i] = scale * g;
  h -= f * g;
  d[i - 1] = f - g;
  for (let j = 0; j < i; j++) e[j] = 0;
  for (let j = 0; j < i; j++) {
    f = d[j];
    V[j * n + i] = f;
    g = e[j] + V[j * n + j] * f;
    for (let k = j + 1; k <= i - 1; k++) {
      g += V[k * n + j] * d[k];
      e[k] += V[k * n + j] * f;
    }
    e[j] = g;
  }
  f = 0;
  for (let j = 0; j < i; j++) {
    e[j] /= h;
    f += e[j] * d[j];
  }
  const hh = f / (h + h);
  for (let j = 0; j < i; j++) e[j] -= hh * d[j];
  for (let j = 0; j < i; j++) {
    f = d[j];
    g = e[j];
    for (let k = j; k <= i - 1; k++) V[k * n + j] -= f * e[k] + g * d[k];
    d[j] = V[(i - 1) * n + j];
    V[i * n + j] = 0;
  }
  return h;
}

/** Second half of tred2: builds the orthogonal transform in V from the stored Householder vectors. */
function accumulateTransforms(V: Float64Array, d: Float64Array, n: number): void {
  for (let i = 0; i < n - 1; i++) {
    V[(n - 1) * n + i] = V[i * n + i];
    V[i * n + i] = 1;
    const h = d[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[k * n + i + 1] / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[k * n + i + 1] * V[k * n + j];
        for (let k = 0; k <= i; k++) V[k * n + j] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) V[k * n + i + 1] = 0;
  }
}

/** Implicit QL on the tridiagonal d, e; W (rows = vectors) accumulates the rotations. */
function tql2(W: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n && Math.abs(e[m]) > eps * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        // Converges in 1–3 iterations per eigenvalue; a runaway loop means non-finite input.
        if (++iter > 60) throw new Error('symmetric eigensolver did not converge');
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          const ri = i * n;
          const ri1 = (i + 1) * n;
          for (let k = 0; k < n; k++) {
            const t = W[ri1 + k];
            W[ri1 + k] = s * W[ri + k] + c * t;
            W[ri + k] = c * W[ri + k] - s * t;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
}
