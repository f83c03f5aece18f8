import type { z } from 'zod';
import type { Engine, EngineWork } from '../engine/types.js';

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

/** A method's parameters once parsed: every key present, defaults filled (JSON-serialisable). */
export type Params = Record<string, unknown>;

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
 * One tensor's inputs, decoded by the runner on demand (the method does no I/O). Either the lean
 * form (prev, tau, addPrev: one runner-owned buffer, the base and the previous state streamed in
 * chunks) or `tensors()` (all three whole); the checkpoint is read once, by tau() or tensors().
 * Buffers handed out belong to the method until it returns: it may overwrite them and return one
 * as the new state (the runner writes it out before reusing the buffer).
 */
export interface TaskSource {
  /** the previous state tensor (t ≥ 2) or null, decoded into the runner's buffer */
  prev(): Float32Array | null;
  /**
   * τ = ckpt − base as float32, decoded into the same runner buffer as prev() (it overwrites prev:
   * call it when prev is no longer needed), the base streamed in chunks, and ‖τ‖² (float64 sum over
   * the float32 τ) taken in the same pass. Call once.
   */
  tau(): { tau: Float32Array; sq: number };
  /** out[i] += prev[i] for every element, the previous state streamed in chunks; returns out */
  addPrev(out: Float32Array): Float32Array;
  /**
   * The base, the previous state (null at t = 1) and the checkpoint, each whole (the checkpoint in
   * the runner's buffer), for methods that combine them element by element. Instead of prev/tau;
   * call once.
   */
  tensors(): { base: Float32Array; prev: Float32Array | null; ckpt: Float32Array };
}

/** The new state tensor of one tensor, and figures about it. */
export interface StepUpdate {
  state: Float32Array;
  metrics?: TensorMetrics;
}

/** What a step keeps and reports once every tensor went through its update. */
export interface StepResult {
  /** the scalars of the new state (read back as StepContext.scalars at the next step) */
  scalars: Scalars;
  /** a summary for reports */
  summary: Record<string, unknown>;
  /** per-tensor figures that need the whole pass (merged into the update's metrics) */
  tensors?: Record<string, TensorMetrics>;
}

/**
 * One merge step (one checkpoint). The runner streams tensors through it: the analysis passes, if
 * any, then one updateTask per tensor (some may run side by side on engines that allow it), then
 * finish. Pure math over tensors and the scalars; nothing here does I/O.
 */
export interface MethodStep {
  /** number of global analysis passes before the update pass (TIES: quantiles and signs) */
  readonly analysisPasses: number;
  analyze?(pass: number, job: TensorJob, base: Float32Array, prev: Float32Array | null, ckpt: Float32Array): void;
  /** called after each analysis pass */
  endAnalysis?(pass: number): void;
  /** what updateTask runs on the engine for a linear tensor (Engine.concurrencyFor); default 'other' */
  readonly engineWork?: EngineWork;
  /** the new state tensor of `job`, from the inputs in `src` (element-wise methods: see elementwise()) */
  updateTask(job: TensorJob, src: TaskSource): Promise<StepUpdate>;
  finish(): StepResult;
}

/**
 * A merge method: its registry entry (src/methods/registry.ts). See docs/adding-a-method.md.
 * `params` is a strict zod object: it validates a pipeline's or the command line's parameters
 * (an unknown key is an error) and its `.default()`s are the method's defaults.
 */
export interface Method<P extends object = Params> {
  readonly name: string;
  readonly params: z.ZodType<P>;
  begin(ctx: StepContext<P>): MethodStep;
  /** the merged tensor from the new state: written to the output model; may overwrite and return `state` */
  output(job: TensorJob, base: Float32Array, state: Float32Array, scalars: Scalars, params: P): Float32Array;
}
