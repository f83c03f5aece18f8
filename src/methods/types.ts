import type { Engine } from '../engine/types.js';

/** How a merged tensor is treated: `linear` tensors get the matrix treatment (SVD projection,
 * DOP optimisation); `other` float tensors are merged element-wise. */
export type TensorKind = 'linear' | 'other';

/** One float tensor that takes part in the merge. */
export interface TensorJob {
  name: string;
  kind: TensorKind;
  shape: readonly number[];
  /** elements */
  size: number;
}

/** Method scalars kept in the merge state (JSON-serialisable). */
export type Scalars = Record<string, number | number[] | string | boolean | null>;

/** Per-tensor figures a method reports (norms, split ranks, losses, ...). */
export type TensorMetrics = Record<string, number>;

export interface StepContext<P> {
  /** 1-based index of the checkpoint being merged */
  t: number;
  params: P;
  /** scalars of the previous state ({} at t = 1) */
  scalars: Scalars;
  engine: Engine;
  tensors: readonly TensorJob[];
}

/**
 * One merge step. The runner streams tensors through it; nothing here does I/O.
 * Buffers handed to a step belong to it: it may overwrite them (the runner never reuses them).
 * `prev` is the previous state tensor, null at t = 1.
 */
/** What updateTask reads, on demand (see MethodStep.updateTask). */
export interface TaskSource {
  /** the previous state tensor (t ≥ 2) or null, decoded into the runner's buffer */
  prev(): Float32Array | null;
  /**
   * τ = ckpt − base, decoded into the same runner buffer as prev() (it overwrites prev: call it
   * when prev is no longer needed), the base streamed in chunks, and ‖τ‖² (float64 over the float32
   * τ) taken in the same pass. Call once.
   */
  tau(): { tau: Float32Array; sq: number };
  /** out[i] += prev[i] for every element, the previous state streamed in chunks; returns out */
  addPrev(out: Float32Array): Float32Array;
}

export interface MethodStep {
  /** number of global analysis passes before the update pass (TIES: quantiles and signs) */
  readonly analysisPasses: number;
  analyze?(pass: number, job: TensorJob, base: Float32Array, prev: Float32Array | null, ckpt: Float32Array): void;
  /** called after each analysis pass */
  endAnalysis?(pass: number): void;
  /** the new state tensor */
  update(
    job: TensorJob,
    base: Float32Array,
    prev: Float32Array | null,
    ckpt: Float32Array,
  ): Promise<{ state: Float32Array; metrics?: TensorMetrics }>;
  /**
   * Optional memory-lean form of `update` for methods that need only the previous state and
   * τ = ckpt − base (OPCM); the runner calls it instead of `update` when present. See TaskSource:
   * prev and τ share one runner-owned buffer, and the base and the previous state can be streamed
   * in chunks, so a method can hold a single tensor-sized buffer besides its own work space.
   */
  updateTask?(job: TensorJob, src: TaskSource): Promise<{ state: Float32Array; metrics?: TensorMetrics }>;
  /**
   * after the update pass: the scalars to keep, a summary for reports, and per-tensor figures that
   * need the whole pass (merged into the update's metrics)
   */
  finish(): { scalars: Scalars; summary: Record<string, unknown>; tensors?: Record<string, TensorMetrics> };
}

export interface Method<P extends object = Record<string, unknown>> {
  readonly name: string;
  readonly defaults: Readonly<P>;
  /** validated, complete parameters (defaults filled); throws with a clear message on bad keys/values */
  parseParams(raw: Record<string, unknown>): P;
  begin(ctx: StepContext<P>): MethodStep;
  /** the merged tensor from the new state: written to the output model; may overwrite and return `state` */
  output(job: TensorJob, base: Float32Array, state: Float32Array, scalars: Scalars, params: P): Float32Array;
}
