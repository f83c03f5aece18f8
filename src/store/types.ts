/**
 * Rows as the store returns them. Keys are snake_case like the columns, the config file and the
 * JSON that `cmerge status/history/show --json` prints, so one vocabulary runs end to end.
 * JSON columns come back parsed; booleans as booleans.
 */
export type CheckpointStatus = 'queued' | 'merging' | 'merged' | 'rejected';
export type MergeStatus = 'running' | 'committed' | 'failed' | 'interrupted';

export interface Checkpoint {
  /** also the queue position: arrival order within the whole database */
  id: number;
  pipeline: string;
  name: string;
  /** where it was dropped */
  path: string;
  quarantine_path: string | null;
  sha256: string | null;
  size: number | null;
  arrived_at: string;
  status: CheckpointStatus;
  reason: string | null;
  /** merge step t once merged */
  step: number | null;
  merged_at: string | null;
  /** what the adapter was, when the checkpoint was a PEFT LoRA adapter folder; null otherwise */
  adapter: AdapterRecord | null;
  /** the float dtypes it was stored in ("F32", "BF16+F32"), recorded when merged; null before */
  dtype: string | null;
  /** merged, then taken out of the lineage: by a rollback to a version before it, or a revert of it */
  retired: 'rolled_back' | 'reverted' | null;
  retired_at: string | null;
  /** when it was rejected (null: not rejected, or before migration 7) */
  rejected_at: string | null;
  /** an operator's `requeue` cleared its rejection then */
  requeued_at: string | null;
  /** where a merged checkpoint is kept (config `archive`), recorded before it is moved there */
  archive_path: string | null;
  /** when it got there; from then on its files are at archive_path, not path */
  archived_at: string | null;
}

/**
 * A checkpoint that was a PEFT LoRA adapter folder (docs/lora.md), as recorded at intake. Its
 * checkpoint sha256 covers both files (src/daemon/checkpoint-hash.ts); each file's own is here.
 */
export interface AdapterRecord {
  /** lora_r as configured (rank_pattern may give some modules another) */
  r: number;
  /** lora_alpha as configured (alpha_pattern may give some modules another) */
  alpha: number;
  use_rslora: boolean;
  /** how many base tensors the adapter changes (low-rank factors or saved modules) */
  target_tensors: number;
  /** adapter_config.json's target_modules as written: a list, PEFT's regular expression, or null */
  target_modules: string[] | string | null;
  modules_to_save: string[];
  /** sha256 of adapter_config.json */
  config_sha256: string;
  /** sha256 of adapter_model.safetensors */
  weights_sha256: string;
}

export interface Merge {
  id: number;
  checkpoint_id: number;
  pipeline: string;
  step: number;
  method: string;
  params: Record<string, unknown>;
  engine: string | null;
  started_at: string;
  finished_at: string | null;
  status: MergeStatus;
  error: string | null;
  timings: Record<string, number> | null;
  peak_rss: number | null;
  scalars: Record<string, number> | null;
  state_generation: number | null;
  state_path: string | null;
  state_sha256: string | null;
  /** where the running merge was at its last report */
  progress: ProgressRecord | null;
  /** the engine that made the merge (committed merges) */
  engine_info: EngineRecord | null;
  /** device figures of the merge; null for the CPU engines */
  gpu_seconds: number | null;
  peak_device_bytes: number | null;
  cpu_fallbacks: number | null;
}

/** The engine a merge ran on, as recorded (src/engine's EngineInfo). */
export interface EngineRecord {
  name: string;
  /** cuda: e.g. "0: NVIDIA H200 (sm_90, 139.8 GiB)" */
  device?: string;
  /** library versions (driver, runtime, cublas, cusolver) */
  versions?: Record<string, string>;
  tf32?: boolean;
  /** native: the OpenBLAS kernel set, e.g. "SkylakeX" */
  blas_core?: string;
}

/** A merge's device figures (cuda only). */
export interface GpuFigures {
  gpu_seconds: number;
  peak_device_bytes: number;
  cpu_fallbacks: number;
}

/**
 * A running merge's position as recorded for `cmerge status` (another process): tensor `done` of
 * `total` in pass `phase` (analysis, update, output). The live report it is made from is the
 * merge runner's MergeProgress.
 */
export interface ProgressRecord {
  phase: string;
  done: number;
  total: number;
  /** when it was reported (ISO-8601) */
  at: string;
}

export interface Version {
  id: number;
  pipeline: string;
  number: number;
  parent: number | null;
  merge_id: number;
  /** merge step t of the model in this version */
  step: number;
  path: string;
  /** relative path → sha256 */
  files: Record<string, string>;
  manifest_sha256: string;
  created_at: string;
  pinned: boolean;
  removed_at: string | null;
  /** the engine the version was made with (what a replay for rollback or revert uses) */
  engine: EngineRecord | null;
  /** ids of the checkpoints it holds, in merge order (length = step) */
  lineage: number[];
  /** how it was made: a merge of the next checkpoint, or a revert that rebuilt a lineage */
  kind: 'merge' | 'revert';
}

/** The merge state a pipeline resumes from (docs/architecture.md). */
export interface StateRef {
  generation: number;
  /** as given to commitMerge (the store does not interpret it) */
  path: string;
  sha256: string | null;
  /** merges folded into this state */
  step: number;
}

export interface TensorMetric {
  tensor: string;
  kind?: 'linear' | 'other' | null;
  tv_norm?: number | null;
  merged_norm?: number | null;
  removed_share?: number | null;
  interference?: number | null;
  split_rank?: number | null;
  /** method-specific (DOP losses and final weights, ...) */
  extra?: Record<string, unknown> | null;
}

export interface RetentionEntry {
  /** step i at which the task was merged (1 ≤ i ≤ t) */
  task: number;
  rho: number;
}

export interface Notification {
  id: number;
  notifier: string;
  attempt: number;
  outcome: 'ok' | 'failed';
  detail: string | null;
  duration_ms: number | null;
  at: string;
}

export interface Evaluation {
  task: string;
  score: number;
  evaluated_at: string;
}

/**
 * Why a drop-folder entry is not complete yet: a file shorter than its prefix, header or data say
 * (still being written), a shard its index names or the adapter's weights not there yet, or a
 * folder with no weights at all yet.
 */
export type WaitingReason = 'growing' | 'missing_shard' | 'missing_adapter_file' | 'no_weights';

/** A drop-folder entry the intake waits for (migration 7). */
export interface WaitingEntry {
  pipeline: string;
  /** where it was dropped (absolute) */
  path: string;
  name: string;
  /** bytes so far (a folder: its weight files) */
  size: number;
  /** what the header(s) say it will be, null when not known yet */
  expected_size: number | null;
  reason: WaitingReason;
  /** sizes and mtimes when it last changed */
  signature: string;
  first_seen: string;
  /** the incomplete timeout counts from here */
  last_change: string;
}
