/**
 * The linear-algebra engine: the only place matrix products and decompositions run.
 * All matrices are dense, row-major. Implementations: native (OpenBLAS/LAPACK through an N-API
 * addon, jobs on the libuv pool) and portable (TypeScript). Methods see only this interface.
 */
export type EngineName = 'native' | 'portable';

export interface MatmulOptions {
  /** use Aᵀ: A is stored k×m */
  transA?: boolean;
  /** use Bᵀ: B is stored n×k */
  transB?: boolean;
}

/** Reduced SVD A = U diag(s) Vᵀ, r = min(m, n), s descending and ≥ 0. */
export interface Svd {
  /** m×r row-major */
  u: Float32Array;
  /** r singular values, descending, computed in float64 */
  s: Float64Array;
  /** n×r row-major (columns are the right singular vectors) */
  v: Float32Array;
}

export interface Engine {
  readonly name: EngineName;
  /** how many jobs run at once (callers gain throughput by keeping this many in flight) */
  readonly concurrency: number;
  /** how many jobs on matrices of `elements` elements run at once (1 where large ones run alone) */
  concurrencyFor(elements: number): number;
  /** C (m×n) = op(A) · op(B), op(A) m×k, op(B) k×n, float32 in and out. */
  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, opts?: MatmulOptions): Promise<Float32Array>;
  /**
   * Reduced SVD of the m×n float32 matrix A, accurate to float64 working precision on the
   * decomposition (Gram matrix of the short side + symmetric eigensolver in float64, or better).
   * Singular vectors of zero singular values are completed to an orthonormal set.
   */
  svd(a: Float32Array, m: number, n: number): Promise<Svd>;
  /** Release native resources; the engine is unusable afterwards. */
  close(): void;
}
