/**
 * Merge lifecycle: markMerging (queued → merging, `running` merge row), then exactly one of
 * commitMerge (→ merged; commitMergeAndVersion with its version), failMerge (→ rejected) or abandonMerge (→ queued again). Each is one
 * IMMEDIATE transaction that re-checks its preconditions under the write lock; see queue.ts for
 * the exactly-once argument.
 */
import { json, now, sql, StoreError, type Db } from './db.js';
import { pipelineId } from './pipelines.js';
import { checkpoint } from './queue.js';
import { MERGE_COLS, MERGE_FROM, toMerge } from './rows.js';
import { recordVersion, type VersionInput } from './lineage.js';
import type {
  Checkpoint,
  EngineRecord,
  GpuFigures,
  Merge,
  ProgressRecord,
  RetentionEntry,
  StateRef,
  TensorMetric,
  Version,
} from './types.js';

export interface MergeStart {
  method: string;
  params: Record<string, unknown>;
  engine?: string | null;
}

/**
 * Start merging the head of its pipeline's queue. Returns the `running` merge with its step t.
 * Throws StoreError when the checkpoint is not queued, not the head, or another merge of the
 * pipeline is in flight.
 */
export function markMerging(db: Db, checkpointId: number, start: MergeStart): { merge: Merge; checkpoint: Checkpoint } {
  return db
    .transaction(() => {
      const c = sql(db, 'SELECT id, pipeline_id, status FROM checkpoints WHERE id = ?').get(checkpointId) as
        { id: number; pipeline_id: number; status: string } | undefined;
      if (!c) throw new StoreError(`no checkpoint ${checkpointId}`);
      if (c.status !== 'queued') throw new StoreError(`checkpoint ${checkpointId} is ${c.status}, not queued`);
      const head = sql(
        db,
        `SELECT id FROM checkpoints WHERE pipeline_id = ? AND status = 'queued' ORDER BY id LIMIT 1`,
      ).get(c.pipeline_id) as { id: number };
      if (head.id !== checkpointId)
        throw new StoreError(`checkpoint ${checkpointId} is not the head of its queue (${head.id} is)`);
      const busy = sql(db, `SELECT id FROM checkpoints WHERE pipeline_id = ? AND status = 'merging'`).get(
        c.pipeline_id,
      ) as { id: number } | undefined;
      if (busy) throw new StoreError(`checkpoint ${busy.id} of the same pipeline is already merging`);
      const { merged_count } = sql(db, 'SELECT merged_count FROM pipelines WHERE id = ?').get(c.pipeline_id) as {
        merged_count: number;
      };
      const { lastInsertRowid } = sql(
        db,
        `INSERT INTO merges (checkpoint_id, pipeline_id, step, method, params, engine, started_at, status)
      VALUES (?, ?, ?, ?, ?, ?, ?, 'running')`,
      ).run(
        checkpointId,
        c.pipeline_id,
        merged_count + 1,
        start.method,
        JSON.stringify(start.params),
        start.engine ?? null,
        now(),
      );
      sql(db, `UPDATE checkpoints SET status = 'merging' WHERE id = ?`).run(checkpointId);
      return { merge: merge(db, Number(lastInsertRowid))!, checkpoint: checkpoint(db, checkpointId)! };
    })
    .immediate();
}

export interface CommitMergeInput {
  merge_id: number;
  /** the float dtypes the checkpoint was stored in (the merge runner's StepReport.dtype) */
  checkpoint_dtype?: string | null;
  /** the merge state written (fsynced, renamed) before this call; becomes the pipeline's current one */
  state: { generation: number; path: string; sha256?: string | null };
  /** the engine that actually ran, if known only now */
  engine?: string | null;
  /** its device and library versions (copied to the version row by recordVersion) */
  engine_info?: EngineRecord | null;
  /** device figures; null for the CPU engines */
  gpu?: GpuFigures | null;
  timings?: Record<string, number>;
  peak_rss?: number | null;
  /** λ, split ranks summary, DOP weights, ... */
  scalars?: Record<string, number>;
  tensor_metrics?: readonly TensorMetric[];
  model_metrics?: Readonly<Record<string, number | null>>;
  /** ρ[t][i] for the tasks i ≤ t (docs/architecture.md) */
  retention?: readonly RetentionEntry[];
}

/** The merge row commitMerge works on, with the pipeline it belongs to. */
export interface RunningMergeRow {
  id: number;
  checkpoint_id: number;
  pipeline_id: number;
  step: number;
}

/**
 * One transaction (docs/architecture.md): the merge row with its metrics, the checkpoint marked
 * merged at step t, and the pipeline's current merge-state generation. If anything fails, nothing
 * changes (the checkpoint stays `merging` and the merge is redone after recoverInterrupted).
 */
export function commitMerge(db: Db, input: CommitMergeInput): Merge {
  return db
    .transaction(() => {
      const row = runningMergeToCommit(db, input);
      const at = now();
      markCheckpointMerged(db, row, at, input.checkpoint_dtype ?? null);
      recordMergeOutcome(db, row, input, at);
      recordMergeMetrics(db, row, input);
      advancePipelineState(db, row, input.state);
      return merge(db, row.id)!;
    })
    .immediate();
}

/**
 * commitMerge, then recordVersion of the version that holds its model, in ONE transaction: the
 * merge is committed together with its version or not at all (a crash between the two would leave
 * a committed merge without a version). The version's merge_id is the committed merge's.
 */
export function commitMergeAndVersion(
  db: Db,
  input: CommitMergeInput,
  version: Omit<VersionInput, 'merge_id'>,
): { merge: Merge; version: Version } {
  return db
    .transaction(() => {
      const committed = commitMerge(db, input);
      return { merge: committed, version: recordVersion(db, { ...version, merge_id: committed.id }) };
    })
    .immediate();
}

/** The merge to commit, checked under the write lock: running, the pipeline's next step, a newer state generation. */
function runningMergeToCommit(db: Db, input: CommitMergeInput): RunningMergeRow {
  const row = sql(db, 'SELECT id, checkpoint_id, pipeline_id, step, status FROM merges WHERE id = ?').get(
    input.merge_id,
  ) as (RunningMergeRow & { status: string }) | undefined;
  if (!row) throw new StoreError(`no merge ${input.merge_id}`);
  if (row.status !== 'running') throw new StoreError(`merge ${row.id} is ${row.status}, not running`);
  const pipeline = sql(db, 'SELECT merged_count, state_generation FROM pipelines WHERE id = ?').get(
    row.pipeline_id,
  ) as { merged_count: number; state_generation: number | null };
  if (row.step !== pipeline.merged_count + 1)
    throw new StoreError(`merge ${row.id} is step ${row.step} but the pipeline has ${pipeline.merged_count} merges`);
  const generation = input.state.generation;
  if (
    !Number.isSafeInteger(generation) ||
    (pipeline.state_generation !== null && generation <= pipeline.state_generation)
  ) {
    throw new StoreError(
      `state generation ${generation} must be an integer above the current ${pipeline.state_generation}`,
    );
  }
  return { id: row.id, checkpoint_id: row.checkpoint_id, pipeline_id: row.pipeline_id, step: row.step };
}

function markCheckpointMerged(db: Db, row: RunningMergeRow, at: string, dtype: string | null): void {
  const changed = sql(
    db,
    `UPDATE checkpoints SET status = 'merged', step = ?, merged_at = ?, dtype = ? WHERE id = ? AND status = 'merging'`,
  ).run(row.step, at, dtype, row.checkpoint_id);
  if (changed.changes !== 1) throw new StoreError(`checkpoint ${row.checkpoint_id} of merge ${row.id} is not merging`);
}

/** The merge row: committed, with its engine, timings, scalars and state. */
export function recordMergeOutcome(db: Db, row: RunningMergeRow, input: CommitMergeInput, at: string): void {
  sql(
    db,
    `UPDATE merges SET status = 'committed', finished_at = ?, engine = COALESCE(?, engine), timings = ?, peak_rss = ?,
      scalars = ?, state_generation = ?, state_path = ?, state_sha256 = ?, engine_info = ?, gpu_seconds = ?, peak_device_bytes = ?,
      cpu_fallbacks = ? WHERE id = ?`,
  ).run(
    at,
    input.engine ?? input.engine_info?.name ?? null,
    json(input.timings),
    input.peak_rss ?? null,
    json(input.scalars),
    input.state.generation,
    input.state.path,
    input.state.sha256 ?? null,
    json(input.engine_info),
    input.gpu?.gpu_seconds ?? null,
    input.gpu?.peak_device_bytes ?? null,
    input.gpu?.cpu_fallbacks ?? null,
    row.id,
  );
}

/** Per-tensor and per-model metrics and the retention row ρ[t][·] of the merge. */
export function recordMergeMetrics(db: Db, row: RunningMergeRow, input: CommitMergeInput): void {
  const tensorRow = sql(
    db,
    `INSERT INTO tensor_metrics (merge_id, tensor, kind, tv_norm, merged_norm, removed_share, interference, split_rank, extra)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  for (const t of input.tensor_metrics ?? []) {
    tensorRow.run(
      row.id,
      t.tensor,
      t.kind ?? null,
      t.tv_norm ?? null,
      t.merged_norm ?? null,
      t.removed_share ?? null,
      t.interference ?? null,
      t.split_rank ?? null,
      json(t.extra),
    );
  }
  const modelRow = sql(db, 'INSERT INTO model_metrics (merge_id, name, value) VALUES (?, ?, ?)');
  for (const [name, value] of Object.entries(input.model_metrics ?? {})) modelRow.run(row.id, name, value);
  const retentionRow = sql(db, 'INSERT INTO retention (pipeline_id, merge_id, step, task, rho) VALUES (?, ?, ?, ?, ?)');
  for (const entry of input.retention ?? []) {
    if (!(entry.task >= 1 && entry.task <= row.step))
      throw new StoreError(`retention task ${entry.task} outside 1..${row.step}`);
    retentionRow.run(row.pipeline_id, row.id, row.step, entry.task, entry.rho);
  }
}

/** The pipeline has merged one more checkpoint and resumes from the merge's state generation. */
export function advancePipelineState(db: Db, row: RunningMergeRow, state: CommitMergeInput['state']): void {
  sql(
    db,
    `UPDATE pipelines SET merged_count = ?, state_generation = ?, state_path = ?, state_sha256 = ? WHERE id = ?`,
  ).run(row.step, state.generation, state.path, state.sha256 ?? null, row.pipeline_id);
}

function finishWithout(
  db: Db,
  mergeId: number,
  status: 'failed' | 'interrupted',
  error: string,
  checkpointUpdate: (checkpointId: number) => void,
): Merge {
  return db
    .transaction(() => {
      const r = sql(
        db,
        `UPDATE merges SET status = ?, finished_at = ?, error = ? WHERE id = ? AND status = 'running'`,
      ).run(status, now(), error, mergeId);
      if (r.changes !== 1) throw new StoreError(`merge ${mergeId} is not running`);
      const { checkpoint_id } = sql(db, 'SELECT checkpoint_id FROM merges WHERE id = ?').get(mergeId) as {
        checkpoint_id: number;
      };
      checkpointUpdate(checkpoint_id);
      return merge(db, mergeId)!;
    })
    .immediate();
}

/** The checkpoint turned out bad during the merge (e.g. absurd norm): rejected, never retried. */
export function failMerge(db: Db, mergeId: number, reason: string, quarantinePath: string | null): Merge {
  return finishWithout(db, mergeId, 'failed', reason, (cid) => {
    sql(
      db,
      `UPDATE checkpoints SET status = 'rejected', reason = ?, quarantine_path = ?, rejected_at = ? WHERE id = ?`,
    ).run(reason, quarantinePath, now(), cid);
  });
}

/** The reason of an attempt given up for a shutdown: not a failure (status does not report it). */
export const SHUTDOWN_REASON = 'daemon stopping';

/** Give up this attempt but keep the checkpoint at the head of the queue (shutdown budget spent, transient error). */
export function abandonMerge(db: Db, mergeId: number, reason: string): Merge {
  return finishWithout(db, mergeId, 'interrupted', reason, (cid) => {
    sql(db, `UPDATE checkpoints SET status = 'queued' WHERE id = ?`).run(cid);
  });
}

export function merge(db: Db, id: number): Merge | null {
  const r = sql(db, `SELECT ${MERGE_COLS} FROM ${MERGE_FROM} WHERE m.id = ?`).get(id);
  return r ? toMerge(r) : null;
}

/**
 * Records where a running merge is (ignored once it has finished). Committed without an fsync
 * (synchronous = NORMAL for this write: WAL stays consistent, a crash may lose the report): with
 * ext4's ordered journal, an fsync while the merge writes its output waits for those pages too,
 * which stalled the daemon's event loop for up to 194 ms per report.
 */
export function setMergeProgress(db: Db, mergeId: number, progress: ProgressRecord): void {
  const level = db.pragma('synchronous', { simple: true }) as number;
  db.pragma('synchronous = NORMAL');
  try {
    sql(db, `UPDATE merges SET progress = ? WHERE id = ? AND status = 'running'`).run(
      JSON.stringify(progress),
      mergeId,
    );
  } finally {
    db.pragma(`synchronous = ${level}`);
  }
}

/** The merge in flight for the pipeline, if any. */
export function currentMerge(db: Db, pipeline: string): Merge | null {
  const pid = pipelineId(db, pipeline);
  if (pid === null) return null;
  const r = sql(db, `SELECT ${MERGE_COLS} FROM ${MERGE_FROM} WHERE m.pipeline_id = ? AND m.status = 'running'`).get(
    pid,
  );
  return r ? toMerge(r) : null;
}

/** Every merge attempt of the pipeline (or all), oldest first. */
export function merges(db: Db, pipeline?: string): Merge[] {
  if (pipeline === undefined)
    return sql(db, `SELECT ${MERGE_COLS} FROM ${MERGE_FROM} ORDER BY m.id`).all().map(toMerge);
  const pid = pipelineId(db, pipeline);
  if (pid === null) return [];
  return sql(db, `SELECT ${MERGE_COLS} FROM ${MERGE_FROM} WHERE m.pipeline_id = ? ORDER BY m.id`).all(pid).map(toMerge);
}

/**
 * The merge state to resume from: the one the last committed merge referenced, never whatever is
 * newest on disk (a newer file may be from a merge that never committed). null: start from base.
 */
export function currentStateGeneration(db: Db, pipeline: string): StateRef | null {
  const r = sql(
    db,
    'SELECT merged_count, state_generation, state_path, state_sha256 FROM pipelines WHERE name = ?',
  ).get(pipeline) as
    | { merged_count: number; state_generation: number | null; state_path: string | null; state_sha256: string | null }
    | undefined;
  if (!r || r.state_generation === null) return null;
  return { generation: r.state_generation, path: r.state_path!, sha256: r.state_sha256, step: r.merged_count };
}

/**
 * The last committed merge when it has no version yet: the process died between commitMerge
 * and recordVersion, so publication must be redone (from the current state) before merging on.
 */
export function unpublishedMerge(db: Db, pipeline: string): Merge | null {
  const pid = pipelineId(db, pipeline);
  if (pid === null) return null;
  const r = sql(
    db,
    `SELECT ${MERGE_COLS} FROM ${MERGE_FROM}
    WHERE m.pipeline_id = ? AND m.status = 'committed' AND m.step = (SELECT merged_count FROM pipelines WHERE id = ?)
      AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.merge_id = m.id)`,
  ).get(pid, pid);
  return r ? toMerge(r) : null;
}
