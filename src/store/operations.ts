/**
 * What operators change besides merges: the lineage a rollback or revert leaves, pauses, and the
 * log of operations (docs/operations.md). Each change is one IMMEDIATE transaction.
 */
import { json, now, parseJson, sql, StoreError, type Db } from './db.js';
import { recordVersion, version, type VersionInput } from './lineage.js';
import { advancePipelineState, recordMergeMetrics, recordMergeOutcome, type CommitMergeInput } from './merges.js';
import { ensurePipeline, requirePipeline } from './pipelines.js';
import { checkpoint, mergedCheckpoints } from './queue.js';
import type { Checkpoint, Version } from './types.js';

/** The generation a pipeline's merge state continues from after a rollback. */
export interface StateInput {
  generation: number;
  path: string;
  sha256?: string | null;
}

/**
 * Make `ids` (in merge order) the pipeline's lineage: merged checkpoints outside it are retired
 * as `retiredAs`, those in it live again at steps 1..n. Returns the newly retired ones.
 */
function setLineage(db: Db, pid: number, ids: readonly number[], retiredAs: 'rolled_back' | 'reverted'): number[] {
  const live = (
    sql(db, `SELECT id FROM checkpoints WHERE pipeline_id = ? AND status = 'merged' AND retired IS NULL`).all(pid) as {
      id: number;
    }[]
  ).map((r) => r.id);
  const keep = new Set(ids);
  const retired = live.filter((id) => !keep.has(id));
  const at = now();
  const retire = sql(db, 'UPDATE checkpoints SET retired = ?, retired_at = ? WHERE id = ?');
  for (const id of retired) retire.run(retiredAs, at, id);
  // two passes: steps move past each other under the unique (pipeline, step) index
  const park = sql(db, 'UPDATE checkpoints SET retired = NULL, retired_at = NULL, step = ? WHERE id = ?');
  ids.forEach((id, i) => park.run(-(i + 1), id));
  const place = sql(db, 'UPDATE checkpoints SET step = ? WHERE id = ?');
  ids.forEach((id, i) => place.run(i + 1, id));
  return retired;
}

/**
 * `current` is now version `number`: its lineage becomes the pipeline's (later checkpoints
 * rolled_back), and the merge state continues from `state`. Throws StoreError when a merge is in flight.
 */
export function rollbackTo(db: Db, pipeline: string, number: number, state: StateInput): Checkpoint[] {
  return db
    .transaction(() => {
      const pid = requirePipeline(db, pipeline);
      const v = version(db, pipeline, number);
      if (!v) throw new StoreError(`no version ${number} of "${pipeline}"`);
      if (sql(db, `SELECT 1 FROM checkpoints WHERE pipeline_id = ? AND status = 'merging'`).get(pid))
        throw new StoreError(`a merge of "${pipeline}" is in flight`);
      const retired = setLineage(db, pid, v.lineage, 'rolled_back');
      sql(
        db,
        `UPDATE pipelines SET merged_count = ?, state_generation = ?, state_path = ?, state_sha256 = ?, current_version = ?,
        swap_pending = ? WHERE id = ?`,
      ).run(v.lineage.length, state.generation, state.path, state.sha256 ?? null, number, number, pid);
      return retired.map((id) => checkpoint(db, id)!);
    })
    .immediate();
}

/**
 * A revert committed: checkpoint `checkpointId` out of the lineage (reverted), the later ones one
 * step earlier, a `revert` merge row holding the rebuilt state and its metrics, and its version.
 */
export function commitRevert(
  db: Db,
  pipeline: string,
  checkpointId: number,
  input: Omit<CommitMergeInput, 'merge_id'> & { method: string; params: Record<string, unknown>; started_at?: string },
  v: Omit<VersionInput, 'merge_id' | 'pipeline'>,
): Version {
  return db
    .transaction(() => {
      const pid = requirePipeline(db, pipeline);
      const lineage = mergedCheckpoints(db, pipeline).map((c) => c.id);
      if (!lineage.includes(checkpointId)) throw new StoreError(`checkpoint ${checkpointId} is not in the lineage`);
      const rest = lineage.filter((id) => id !== checkpointId);
      if (rest.length === 0) throw new StoreError('a revert must leave at least one checkpoint');
      if (sql(db, `SELECT 1 FROM checkpoints WHERE pipeline_id = ? AND status = 'merging'`).get(pid))
        throw new StoreError(`a merge of "${pipeline}" is in flight`);
      setLineage(db, pid, rest, 'reverted');
      const at = now();
      const { lastInsertRowid } = sql(
        db,
        `INSERT INTO merges (checkpoint_id, pipeline_id, step, method, params, engine, started_at, status, kind)
        VALUES (?, ?, ?, ?, ?, ?, ?, 'running', 'revert')`,
      ).run(
        checkpointId,
        pid,
        rest.length,
        input.method,
        json(input.params),
        input.engine ?? null,
        input.started_at ?? at,
      );
      const row = { id: Number(lastInsertRowid), checkpoint_id: checkpointId, pipeline_id: pid, step: rest.length };
      recordMergeOutcome(db, row, { ...input, merge_id: row.id }, at);
      recordMergeMetrics(db, row, { ...input, merge_id: row.id });
      advancePipelineState(db, row, input.state);
      return recordVersion(db, { ...v, pipeline, merge_id: row.id });
    })
    .immediate();
}

/** Who paused merging: an operator, or the daemon because `current` was moved by hand or the disk lacks room. */
export type PauseKind = 'operator' | 'current_moved' | 'no_room';

export interface PauseState {
  since: string;
  reason: string;
  kind: PauseKind;
}

export function setPaused(db: Db, pipeline: string, reason: string | null, kind: PauseKind = 'operator'): void {
  // a configured pipeline may be paused before its first checkpoint arrives
  const pid = ensurePipeline(db, pipeline);
  const paused = reason !== null;
  sql(db, 'UPDATE pipelines SET paused_at = ?, pause_reason = ?, pause_kind = ? WHERE id = ?').run(
    paused ? now() : null,
    reason,
    paused ? kind : null,
    pid,
  );
}

export function pauseState(db: Db, pipeline: string): PauseState | null {
  const r = sql(db, 'SELECT paused_at, pause_reason, pause_kind FROM pipelines WHERE name = ?').get(pipeline) as
    { paused_at: string | null; pause_reason: string | null; pause_kind: PauseKind | null } | undefined;
  return r?.paused_at ? { since: r.paused_at, reason: r.pause_reason ?? '', kind: r.pause_kind ?? 'operator' } : null;
}

/** The version `current` is being moved to (a commit recorded it; the symlink may not point there yet), or null. */
export function swapPending(db: Db, pipeline: string): number | null {
  const r = sql(db, 'SELECT swap_pending FROM pipelines WHERE name = ?').get(pipeline) as
    { swap_pending: number | null } | undefined;
  return r?.swap_pending ?? null;
}

/** Record that `current` is about to move to `number` (before the symlink moves), or, with null, that it did. */
export function setSwapPending(db: Db, pipeline: string, number: number | null): void {
  sql(db, 'UPDATE pipelines SET swap_pending = ? WHERE name = ?').run(number, pipeline);
}

/** An operator's `requeue`: the rejection is cleared (kept for history) once its file is back in the drop folder. */
export function clearRejection(db: Db, checkpointId: number): void {
  const r = sql(
    db,
    `UPDATE checkpoints SET requeued_at = ? WHERE id = ? AND status = 'rejected' AND requeued_at IS NULL`,
  ).run(now(), checkpointId);
  if (r.changes !== 1) throw new StoreError(`checkpoint ${checkpointId} is not a rejection to requeue`);
}

export interface OperationRecord {
  id: number;
  pipeline: string;
  kind: string;
  args: Record<string, unknown>;
  at: string;
  via: 'api' | 'cli' | 'daemon';
  outcome: 'ok' | 'refused' | 'failed';
  detail: string | null;
}

export function recordOperation(db: Db, op: Omit<OperationRecord, 'id' | 'at'>): void {
  const pid = ensurePipeline(db, op.pipeline);
  sql(
    db,
    'INSERT INTO operations (pipeline_id, kind, args, at, via, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?)',
  ).run(pid, op.kind, json(op.args), now(), op.via, op.outcome, op.detail);
}

export function operationsLog(db: Db, pipeline: string): OperationRecord[] {
  return (
    sql(
      db,
      `SELECT o.id, p.name AS pipeline, o.kind, o.args, o.at, o.via, o.outcome, o.detail
      FROM operations o JOIN pipelines p ON p.id = o.pipeline_id WHERE p.name = ? ORDER BY o.id`,
    ).all(pipeline) as Record<string, unknown>[]
  ).map((r) => ({ ...(r as unknown as OperationRecord), args: parseJson(r.args) ?? {} }));
}
