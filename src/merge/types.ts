import type { Engine, EngineInfo } from '../engine/types.js';
import type { DType, ModelReader } from '../io/types.js';
import type { Method, Params, Scalars, TensorJob, TensorKind, TensorMetrics } from '../methods/types.js';
import type { BufferPool } from './buffers.js';
import type { StateMeta } from './state.js';
import type { TensorRules } from './kinds.js';

export interface MergeProgress {
  t: number;
  phase: 'analysis' | 'update' | 'output';
  index: number;
  total: number;
  tensor: string;
}

export interface MergeRequest {
  base: string;
  stateDir: string;
  method: string;
  params?: Record<string, unknown>;
  checkpoints: string[];
  /** `.safetensors` file, or a folder (sharded past maxShardBytes) */
  out?: string;
  engine: Engine;
  rules?: TensorRules;
  maxShardBytes?: number;
  /** continue from this generation instead of CURRENT (the daemon keeps it in SQLite; 0: from the base) */
  fromGeneration?: number;
  /**
   * the number of the last checkpoint's generation; the states before it are intermediate (dot
   * names, removed as the run goes). Default: each step's generation numbered one above the one before
   */
  toGeneration?: number;
  /** move CURRENT to the new generation and drop older ones (default true) */
  commit?: boolean;
  /**
   * dtype of the output's float tensors (merged and copied ones); default: each the base's.
   * Integer, bool and float8 tensors are copied as stored.
   */
  outDtype?: DType;
  /** reject a checkpoint whose ‖τ‖ exceeds this multiple of ‖θ0‖ (over the merged tensors) */
  maxTaskNormRatio?: number;
  /** keep CountSketches of each task vector and report the retention row ρ[t][·] (see sketch.ts) */
  sketch?: boolean;
  /**
   * optional sha256 per checkpoint path, recorded in the state's lineage; a sha256 the lineage
   * already holds, or given twice, is refused (InputError) before anything is written
   */
  sha256?: Record<string, string>;
  /**
   * called once the output is written, before CURRENT moves (and with `commit: false`, before the
   * runner returns), with the report and the new state's metadata (its lineage); throwing stops the
   * merge: the new state is discarded, the output is the caller's to remove
   */
  beforeCommit?: (report: MergeReport, meta: StateMeta) => Promise<void>;
  /** called after each tensor of each pass; throwing stops the merge (nothing is kept) */
  onProgress?: (p: MergeProgress) => void;
  /**
   * what is worth a warning but does not stop the merge (an adapter whose base model cmerge cannot
   * compare), once every checkpoint was opened; default: the log's warn level
   */
  onWarning?: (message: string) => void;
}

/**
 * A checkpoint that was a PEFT LoRA adapter folder (docs/lora.md), for lineage: the configured
 * rank and alpha (rank_pattern / alpha_pattern may override them per module), the base tensors it
 * changes, and each file's sha256.
 */
export interface AdapterLineage {
  r: number;
  alpha: number;
  rslora: boolean;
  /** base tensor names the adapter changes (low-rank factors or saved modules), sorted */
  targets: string[];
  modules_to_save: string[];
  /** sha256 of adapter_config.json */
  config_sha256: string;
  /** sha256 of adapter_model.safetensors */
  weights_sha256: string;
}

export interface StepReport {
  t: number;
  checkpoint: string;
  /** what the checkpoint was when it was a LoRA adapter folder; null for a full checkpoint */
  adapter: AdapterLineage | null;
  /** the float dtypes the checkpoint was stored in: "F32", or e.g. "BF16+F32" when mixed */
  dtype: string;
  task_vector_norm: number;
  scalars: Scalars;
  summary: Record<string, unknown>;
  tensors: Record<string, TensorMetrics>;
  /** how each merged tensor was treated (the runner's rule, not a guess from its metrics) */
  kinds: Record<string, TensorKind>;
  /** sha256 of the new generation's state.safetensors */
  state_sha256: string;
  seconds: { analysis: number; update: number };
}

/** The device figures of a merge (cuda), from engine.stats(); null for the CPU engines. */
export interface GpuReport {
  gpu_seconds: number;
  peak_device_bytes: number;
  /** operations that ran on the CPU engine because the device lacked the memory */
  cpu_fallbacks: number;
}

export interface MergeReport {
  method: string;
  params: Record<string, unknown>;
  engine: string;
  /** the engine that made it, as each version records it (device, library versions) */
  engine_info: EngineInfo;
  gpu: GpuReport | null;
  from_step: number;
  step: number;
  steps: StepReport[];
  out_files: string[];
  /** sha256 of each output file (path → hex), computed while writing */
  out_sha256: Record<string, string>;
  /** ‖M_t − θ0‖ per merged tensor, from the output pass (when an output was written) */
  merged_norms: Record<string, number>;
  /** ρ[t][i] for the last step, estimated from sketches (with `sketch` and an output) */
  retention: { task: number; rho: number }[];
  seconds: { total: number; output: number };
  tensors: { linear: number; other: number; copied: number };
}

/** What every step and the output pass of one merge read; fixed for the whole merge. */
export interface MergeInputs {
  req: MergeRequest;
  method: Method;
  /** parsed, defaults filled */
  params: Params;
  base: ModelReader;
  /** the merged tensors, in the base's order */
  jobs: TensorJob[];
  kinds: Record<string, TensorKind>;
  /** the base's structure (see structureFingerprint) */
  fingerprint: string;
  /** tensor-sized buffers shared by the passes */
  pool: BufferPool;
}
