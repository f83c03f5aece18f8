/**
 * C (m×n) = op(A)·op(B) for row-major Float32Array, accumulated in float64 (one rounding per
 * output). Loop order i-p-j with tiles over rows, depth and columns keeps the B tile and the
 * accumulator tile in cache and the innermost loop contiguous; ~1 GFLOP/s in V8.
 */
const TILE_M = 32;
const TILE_K = 128;
const TILE_N = 256;

export function matmulF32(
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
  transA = false,
  transB = false,
): Float32Array {
  // op(B) is walked along rows; a transposed B is copied once (k·n) rather than read strided.
  const bRows = transB ? transposeF32(b, n, k) : b;
  const c = new Float32Array(m * n);
  const acc = new Float64Array(TILE_M * TILE_N);
  for (let i0 = 0; i0 < m; i0 += TILE_M) {
    const i1 = Math.min(m, i0 + TILE_M);
    for (let j0 = 0; j0 < n; j0 += TILE_N) {
      const j1 = Math.min(n, j0 + TILE_N);
      const w = j1 - j0;
      acc.fill(0);
      for (let p0 = 0; p0 < k; p0 += TILE_K) {
        const p1 = Math.min(k, p0 + TILE_K);
        for (let i = i0; i < i1; i++) {
          const accRow = (i - i0) * TILE_N;
          for (let p = p0; p < p1; p++) {
            const aip = transA ? a[p * m + i] : a[i * k + p];
            if (aip === 0) continue;
            const bRow = p * n + j0;
            for (let j = 0; j < w; j++) acc[accRow + j] += aip * bRows[bRow + j];
          }
        }
      }
      for (let i = i0; i < i1; i++) {
        const accRow = (i - i0) * TILE_N;
        for (let j = 0; j < w; j++) c[i * n + j0 + j] = acc[accRow + j];
      }
    }
  }
  return c;
}

/** rows×cols row-major → cols×rows row-major */
export function transposeF32(x: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = x[i * cols + j];
  return t;
}
