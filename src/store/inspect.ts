/** Read-only reports for `cmerge status / history / show` (their --json output, as is). */
import { sql, type Db } from './db.js';
import { currentVersion, latestVersion, version } from './lineage.js';
import { pauseState, type PauseState } from './operations.js';
import { currentMerge, merge, SHUTDOWN_REASON } from './merges.js';
import { evaluations, modelMetrics, notifications, tensorMetrics } from './metrics.js';
import { pipelineId, pipelineNames } from './pipelines.js';
import { mergedCheckpoints, queued, rejected } from './queue.js';
import { waiting } from './waiting.js';
import type {
  AdapterRecord,
  EngineRecord,
  Evaluation,
  GpuFigures,
  Merge,
  ProgressRecord,
  Checkpoint,
  Notification,
  TensorMetric,
  Version,
  WaitingEntry,
} from './types.js';

export interface PipelineStatus {
  name: string;
  /** the version `current` points at (after a rollback, not the newest), null before the first */
  current_version: number | null;
  /** newest published version */
  latest_version: number | null;
  /** merging stopped by an operator or the daemon (intake keeps queueing), null when running */
  paused: PauseState | null;
  /** merges committed (the step t of the current merge state) */
  merged: number;
  queued: number;
  current_merge: {
    checkpoint: string;
    step: number;
    method: string;
    started_at: string;
    progress: ProgressRecord | null;
  } | null;
  /** the next step's attempts that ended in an error (disk full, a crash...): the daemon retries them */
  retrying: Retrying | null;
  rejected: {
    name: string;
    reason: string;
    path: string;
    quarantine_path: string | null;
    arrived_at: string;
    /** null for rejections recorded before schema 7 */
    rejected_at: string | null;
  }[];
  /** drop-folder entries the intake waits for (not complete yet), the longest waiting first */
  waiting: WaitingEntry[];
  /** the engine of the last committed merge, null before the first */
  engine: LastEngine | null;
}

export interface LastEngine {
  step: number;
  info: EngineRecord;
  /** null for the CPU engines */
  gpu: GpuFigures | null;
}

/** A merge's device figures as one value (null when it recorded none: a CPU engine). */
export function gpuFigures(m: Pick<Merge, 'gpu_seconds' | 'peak_device_bytes' | 'cpu_fallbacks'>): GpuFigures | null {
  if (m.gpu_seconds === null && m.peak_device_bytes === null) return null;
  return {
    gpu_seconds: m.gpu_seconds ?? 0,
    peak_device_bytes: m.peak_device_bytes ?? 0,
    cpu_fallbacks: m.cpu_fallbacks ?? 0,
  };
}

/** The engine of the pipeline's last committed merge (for status and the daemon's engine gauge). */
export function lastEngine(db: Db, pipeline: string): LastEngine | null {
  const pid = pipelineId(db, pipeline);
  if (pid === null) return null;
  const r = sql(
    db,
    `SELECT step, engine, engine_info, gpu_seconds, peak_device_bytes, cpu_fallbacks FROM merges
    WHERE pipeline_id = ? AND status = 'committed' ORDER BY step DESC LIMIT 1`,
  ).get(pid) as
    | {
        step: number;
        engine: string | null;
        engine_info: string | null;
        gpu_seconds: number | null;
        peak_device_bytes: number | null;
        cpu_fallbacks: number | null;
      }
    | undefined;
  if (!r) return null;
  const info = r.engine_info ? (JSON.parse(r.engine_info) as EngineRecord) : { name: r.engine ?? 'unknown' };
  return { step: r.step, info, gpu: gpuFigures(r) };
}

export interface Retrying {
  checkpoint: string;
  step: number;
  attempts: number;
  last_error: string;
  last_at: string;
}

/** Failed attempts of the checkpoint still waiting at the pipeline's next step (one later rejected has none). */
function retrying(db: Db, pipelineId: number, step: number): Retrying | null {
  const r = sql(
    db,
    `SELECT c.name, COUNT(*) AS n, MAX(m.id) AS last FROM merges m JOIN checkpoints c ON c.id = m.checkpoint_id
    WHERE m.pipeline_id = ? AND m.step = ? AND m.status = 'interrupted' AND m.error IS NOT ? AND c.status IN ('queued', 'merging')
    GROUP BY m.checkpoint_id ORDER BY last DESC LIMIT 1`,
  ).get(pipelineId, step, SHUTDOWN_REASON) as { name: string; n: number; last: number } | undefined;
  if (!r) return null;
  const last = sql(db, 'SELECT error, finished_at FROM merges WHERE id = ?').get(r.last) as {
    error: string | null;
    finished_at: string | null;
  };
  return { checkpoint: r.name, step, attempts: r.n, last_error: last.error ?? '', last_at: last.finished_at ?? '' };
}

/** One entry per pipeline: the given names (configured ones, even if never used) and every recorded one. */
export function status(db: Db, names: readonly string[] = []): PipelineStatus[] {
  const all = [...new Set([...names, ...pipelineNames(db)])];
  return all.map((name): PipelineStatus => {
    const pid = pipelineId(db, name);
    const merged =
      pid === null
        ? 0
        : (sql(db, 'SELECT merged_count FROM pipelines WHERE id = ?').get(pid) as { merged_count: number })
            .merged_count;
    const m = currentMerge(db, name);
    const ckpt = m && (sql(db, 'SELECT name FROM checkpoints WHERE id = ?').get(m.checkpoint_id) as { name: string });
    return {
      name,
      current_version: currentVersion(db, name)?.number ?? null,
      latest_version: latestVersion(db, name)?.number ?? null,
      paused: pauseState(db, name),
      merged,
      queued: queued(db, name).length,
      current_merge:
        m && ckpt
          ? { checkpoint: ckpt.name, step: m.step, method: m.method, started_at: m.started_at, progress: m.progress }
          : null,
      retrying: pid === null ? null : retrying(db, pid, merged + 1),
      rejected: rejected(db, name).map((c) => ({
        name: c.name,
        reason: c.reason!,
        path: c.path,
        quarantine_path: c.quarantine_path,
        arrived_at: c.arrived_at,
        rejected_at: c.rejected_at,
      })),
      waiting: waiting(db, name),
      engine: lastEngine(db, name),
    };
  });
}

export interface HistoryRow {
  pipeline: string;
  merge_id: number;
  step: number;
  status: Merge['status'];
  checkpoint: string;
  sha256: string | null;
  /** where the checkpoint's files are kept once merged (config `archive`), else null */
  archived: string | null;
  /** what the checkpoint was when it was a LoRA adapter folder, else null */
  adapter: AdapterRecord | null;
  /** the float dtypes the checkpoint was stored in, once merged ("F32", "BF16+F32"); else null */
  dtype: string | null;
  method: string;
  engine: string | null;
  /** device and library versions of the engine (committed merges) */
  engine_info: EngineRecord | null;
  /** device figures; null for the CPU engines */
  gpu: GpuFigures | null;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  /** the version that published this merge, if any */
  version: number | null;
  /** merge: the checkpoint merged onto the lineage; revert: a lineage rebuilt without the checkpoint */
  kind: 'merge' | 'revert';
  /** the checkpoint was later taken out of the lineage (rollback or revert), else null */
  retired: Checkpoint['retired'];
  scalars: Record<string, number> | null;
  error: string | null;
}

/** Every merge attempt (interrupted and failed ones too), oldest first. */
export function history(db: Db, pipeline?: string): HistoryRow[] {
  const rows = sql(
    db,
    `SELECT m.id, p.name AS pipeline, m.step, m.status, c.name AS checkpoint, c.sha256, c.archive_path, c.archived_at, c.adapter, c.dtype, m.method, m.engine,
      m.engine_info, m.gpu_seconds, m.peak_device_bytes, m.cpu_fallbacks, m.started_at, m.finished_at, v.number AS version, m.scalars, m.error,
      m.kind, c.retired
    FROM merges m JOIN pipelines p ON p.id = m.pipeline_id JOIN checkpoints c ON c.id = m.checkpoint_id
    LEFT JOIN versions v ON v.merge_id = m.id
    WHERE (@p IS NULL OR p.name = @p) ORDER BY m.id`,
  ).all({ p: pipeline ?? null }) as Record<string, unknown>[];
  return rows.map((r) => ({
    pipeline: r.pipeline as string,
    merge_id: r.id as number,
    step: r.step as number,
    status: r.status as Merge['status'],
    checkpoint: r.checkpoint as string,
    sha256: r.sha256 as string | null,
    archived: r.archived_at ? (r.archive_path as string) : null,
    adapter: typeof r.adapter === 'string' ? (JSON.parse(r.adapter) as AdapterRecord) : null,
    dtype: (r.dtype as string | null) ?? null,
    method: r.method as string,
    engine: r.engine as string | null,
    engine_info: typeof r.engine_info === 'string' ? (JSON.parse(r.engine_info) as EngineRecord) : null,
    gpu: gpuFigures(r as Pick<Merge, 'gpu_seconds' | 'peak_device_bytes' | 'cpu_fallbacks'>),
    started_at: r.started_at as string,
    finished_at: r.finished_at as string | null,
    duration_ms: r.finished_at ? Date.parse(r.finished_at as string) - Date.parse(r.started_at as string) : null,
    version: (r.version as number | null) ?? null,
    kind: r.kind as HistoryRow['kind'],
    retired: (r.retired as Checkpoint['retired']) ?? null,
    scalars: typeof r.scalars === 'string' ? JSON.parse(r.scalars) : null,
    error: r.error as string | null,
  }));
}

export interface VersionDetail {
  version: Version;
  merge: Merge;
  /** every checkpoint in this version's model, in merge order */
  checkpoints: {
    step: number;
    name: string;
    sha256: string | null;
    path: string;
    /** where its files are kept since it was merged (config `archive`); null: still at path */
    archived: string | null;
    merged_at: string | null;
    /** what the checkpoint was when it was a LoRA adapter folder, else null */
    adapter: AdapterRecord | null;
    /** the float dtypes it was stored in ("F32", "BF16+F32"); null if merged before cmerge recorded it */
    dtype: string | null;
  }[];
  model_metrics: Record<string, number | null>;
  tensor_metrics: Required<TensorMetric>[];
  /** ρ[t][i] of this version's step t */
  retention: { task: number; rho: number }[];
  notifications: Notification[];
  evaluations: Evaluation[];
}

export function show(db: Db, pipeline: string, number: number): VersionDetail | null {
  const v = version(db, pipeline, number);
  if (!v) return null;
  const m = merge(db, v.merge_id)!;
  return {
    version: v,
    merge: m,
    checkpoints: mergedCheckpoints(db, pipeline)
      .filter((c) => c.step! <= v.step)
      .map((c) => ({
        step: c.step!,
        name: c.name,
        sha256: c.sha256,
        path: c.path,
        archived: c.archived_at ? c.archive_path : null,
        merged_at: c.merged_at,
        adapter: c.adapter,
        dtype: c.dtype,
      })),
    model_metrics: modelMetrics(db, m.id),
    tensor_metrics: tensorMetrics(db, m.id),
    retention: sql(db, 'SELECT task, rho FROM retention WHERE merge_id = ? ORDER BY task').all(m.id) as {
      task: number;
      rho: number;
    }[],
    notifications: notifications(db, pipeline, number),
    evaluations: evaluations(db, pipeline, number),
  };
}
