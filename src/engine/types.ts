/**
 * The linear-algebra engine: the only place matrix products and decompositions run.
 * All matrices are dense, row-major. Implementations: native (OpenBLAS/LAPACK through an N-API
 * addon, jobs on the libuv pool), portable (TypeScript) and cuda (cuBLAS/cuSOLVER opened at run
 * time, docs/cuda-engine.md). Methods see only this interface: the fine operations (matmul, svd)
 * and the coarse ones of one tensor (opcmClean, dopOptimize), which a GPU engine runs with the
 * tensor resident on the device.
 */
export type EngineName = 'native' | 'portable' | 'cuda';

/** What a version records about the engine that made it (docs/cuda-engine.md). */
export interface EngineInfo {
  name: EngineName;
  /** cuda: "0: NVIDIA H200 (sm_90, 139.8 GiB)" */
  device?: string;
  /** library versions, e.g. { driver: '13.0', runtime: '13.0', cublas: '13.1.0', cusolver: '12.0.4' } */
  versions?: Record<string, string>;
  /** cuda: products in TF32 (engine.tf32 in the config) */
  tf32?: boolean;
  /** native: the OpenBLAS kernel set that ran the products, e.g. "SkylakeX" */
  blas_core?: string;
}

/** Device figures since the last resetStats() (cuda only). */
export interface EngineStats {
  /** time the device spent on this engine's jobs (CUDA events), seconds */
  gpuSeconds: number;
  /** the most device memory this engine held at once, bytes */
  peakDeviceBytes: number;
  /** operations that ran on the CPU fallback because the device lacked the memory */
  cpuFallbacks: number;
}

/** OPCM's cleaning of one linear tensor (see engine/ops/opcm-clean.ts for the arithmetic). */
export interface Cleaning {
  /** τ − U Q Vᵀ, written over τ */
  cleaned: Float32Array;
  /** k: the leading block of P kept in Q */
  split: number;
  /** ‖U Q Vᵀ‖² and ‖cleaned‖² */
  removedSq: number;
  cleanedSq: number;
  /** ‖prev‖² = Σ σ_i², and Σ_{i<k} σ_i² */
  prevSq: number;
  leadSq: number;
}

/** DOP's parameters for one tensor's optimisation (docs/methods.md#dop). */
export interface DopOptions {
  lr: number;
  num_steps: number;
  mgda: boolean;
  ema: boolean;
  ema_beta: number;
  alpha: number;
  svd_epsilon: number;
  svd_proj_space: 'uv' | 'u' | 'v';
}

export interface DopResult {
  w: Float32Array;
  lossA: number;
  lossB: number;
  weights: [number, number];
  rankA: number;
  rankB: number;
}

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

/**
 * What a caller runs on a tensor, for Engine.concurrencyFor. OPCM's cleaning holds one
 * tensor-sized buffer and the SVD's work per job (see methods/opcm.ts), so larger tensors can go
 * side by side than for DOP's loop or a caller's own products.
 */
export type EngineWork = 'opcm-clean' | 'other';

export interface Engine {
  readonly name: EngineName;
  /** how many jobs run at once (callers gain throughput by keeping this many in flight) */
  readonly concurrency: number;
  /**
   * how many jobs on matrices of `elements` elements run at once (1 where large ones run alone);
   * `work`: what the caller runs on each (default 'other'), since that decides each job's memory
   */
  concurrencyFor(elements: number, work?: EngineWork): number;
  /** C (m×n) = op(A) · op(B), op(A) m×k, op(B) k×n, float32 in and out. */
  matmul(
    a: Float32Array,
    b: Float32Array,
    m: number,
    k: number,
    n: number,
    opts?: MatmulOptions,
  ): Promise<Float32Array>;
  /**
   * Reduced SVD of the m×n float32 matrix A, accurate to float64 working precision on the
   * decomposition (Gram matrix of the short side + symmetric eigensolver in float64, or better).
   * Singular vectors of zero singular values are completed to an orthonormal set.
   */
  svd(a: Float32Array, m: number, n: number): Promise<Svd>;
  /**
   * OPCM's cleaning of one m×n linear tensor against the previous state `prev` (docs/methods.md#opcm).
   * `loadTau` is called once, after prev is no longer needed (it may reuse prev's buffer); the
   * cleaned tensor is written over the τ it returns.
   */
  opcmClean(prev: Float32Array, loadTau: () => Float32Array, m: number, n: number, alpha: number): Promise<Cleaning>;
  /** DOP's whole optimisation of one m×n linear tensor between wa (merged) and wb (new). */
  dopOptimize(
    base: Float32Array,
    wa: Float32Array,
    wb: Float32Array,
    m: number,
    n: number,
    o: DopOptions,
  ): Promise<DopResult>;
  /** which engine, device and libraries (recorded with each version) */
  info(): EngineInfo;
  /** device time and memory since resetStats (null for CPU engines) */
  stats(): EngineStats | null;
  resetStats(): void;
  /** Release native resources (device memory and handles); the engine is unusable afterwards. */
  close(): void;
}

/** The fine operations the CPU form of the coarse ones (engine/ops) is written with. */
export type Linalg = Pick<Engine, 'matmul' | 'svd'>;
