/**
 * The durable queue. Exactly-once contract: every accepted checkpoint is merged once, in arrival
 * order, even when the process is killed (-9) at any instant. What makes that hold:
 *
 * - Arrival order is the checkpoint's AUTOINCREMENT id, fixed by `enqueue`. The intake must call
 *   enqueue in the order checkpoints arrive (one at a time); nothing reorders the queue later.
 * - `enqueue` is one transaction: the duplicate check and the insert cannot interleave with
 *   another writer. A unique partial index (pipeline, sha256) over live rows backs it up.
 * - queued → merging (`markMerging`, merges.ts) is one transaction that also assigns the step
 *   t = merged_count + 1 and inserts the `running` merge row; it refuses anything but the head
 *   of the queue, and a unique index allows one merging checkpoint per pipeline.
 * - merging → merged (`commitMerge`) is one transaction: merge row, metrics, checkpoint status and
 *   the pipeline's current state generation move together. The state files were written and
 *   renamed before, so either the new state is referenced (merge done) or it is not (merge
 *   redone from the old state; a stray new file is harmless and overwritten).
 * - After a crash nothing is "half merged": `recoverInterrupted` (one transaction, at start-up,
 *   before anything else writes) turns merging back into queued and running merges into
 *   interrupted; the redo takes the same step t because merged_count did not move.
 * - Rejections are single inserts/updates; the file move to quarantine happens outside SQLite:
 *   record first, then move, so a crash in between leaves a row whose file is still in the drop
 *   folder (a rescan sees the same path + sha256 as "known" and can finish the move).
 */
import { now, sql, StoreError, type Db } from './db.js';
import { ensurePipeline, pipelineId } from './pipelines.js';
import { CHECKPOINT_COLS, CHECKPOINT_FROM, toCheckpoint } from './rows.js';
import type { AdapterRecord, Checkpoint } from './types.js';

export interface Arrival {
  name: string;
  /** where it was dropped (absolute) */
  path: string;
  sha256: string;
  size: number;
  /** default: now */
  arrived_at?: string;
  /** when the checkpoint is a PEFT LoRA adapter folder: what it is (default: none) */
  adapter?: AdapterRecord | null;
}

export type EnqueueResult =
  /** a new queue entry */
  | { outcome: 'queued'; checkpoint: Checkpoint }
  /** this path with this content is already recorded (a rescan after restart): nothing to do */
  | { outcome: 'known'; checkpoint: Checkpoint }
  /** the same content is already queued, merging or merged under another path: reject this one */
  | { outcome: 'duplicate'; checkpoint: Checkpoint };

export function enqueue(db: Db, pipeline: string, a: Arrival): EnqueueResult {
  return db
    .transaction((): EnqueueResult => {
      const pid = ensurePipeline(db, pipeline);
      const same = sql(
        db,
        `SELECT ${CHECKPOINT_COLS} FROM ${CHECKPOINT_FROM}
      WHERE c.pipeline_id = ? AND c.path = ? AND c.sha256 = ? AND c.requeued_at IS NULL AND c.archived_at IS NULL
      ORDER BY c.id DESC LIMIT 1`,
      ).get(pid, a.path, a.sha256);
      if (same) return { outcome: 'known', checkpoint: toCheckpoint(same) };
      const dup = sql(
        db,
        `SELECT ${CHECKPOINT_COLS} FROM ${CHECKPOINT_FROM}
      WHERE c.pipeline_id = ? AND c.sha256 = ? AND c.status IN ('queued', 'merging', 'merged') LIMIT 1`,
      ).get(pid, a.sha256);
      if (dup) return { outcome: 'duplicate', checkpoint: toCheckpoint(dup) };
      const { lastInsertRowid } = sql(
        db,
        `INSERT INTO checkpoints (pipeline_id, name, path, sha256, size, arrived_at, status, adapter)
      VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)`,
      ).run(pid, a.name, a.path, a.sha256, a.size, a.arrived_at ?? now(), a.adapter ? JSON.stringify(a.adapter) : null);
      return { outcome: 'queued', checkpoint: checkpoint(db, Number(lastInsertRowid))! };
    })
    .immediate();
}

export interface RejectedArrival {
  name: string;
  path: string;
  /** null when rejected before hashing (e.g. not safetensors) */
  sha256?: string | null;
  size?: number | null;
  arrived_at?: string;
}

/** Record a checkpoint refused at intake. Its file should then be moved to `quarantinePath`. */
export function reject(
  db: Db,
  pipeline: string,
  a: RejectedArrival,
  reason: string,
  quarantinePath: string | null,
): Checkpoint {
  return db
    .transaction(() => {
      const pid = ensurePipeline(db, pipeline);
      const { lastInsertRowid } = sql(
        db,
        `INSERT INTO checkpoints
      (pipeline_id, name, path, quarantine_path, sha256, size, arrived_at, status, reason, rejected_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, 'rejected', ?, ?)`,
      ).run(
        pid,
        a.name,
        a.path,
        quarantinePath,
        a.sha256 ?? null,
        a.size ?? null,
        a.arrived_at ?? now(),
        reason,
        now(),
      );
      return checkpoint(db, Number(lastInsertRowid))!;
    })
    .immediate();
}

/** Reject a checkpoint still waiting in the queue (e.g. its file vanished or no longer validates). */
export function rejectQueued(db: Db, checkpointId: number, reason: string, quarantinePath: string | null): Checkpoint {
  return db
    .transaction(() => {
      const r = sql(
        db,
        `UPDATE checkpoints SET status = 'rejected', reason = ?, quarantine_path = ?, rejected_at = ?
      WHERE id = ? AND status = 'queued'`,
      ).run(reason, quarantinePath, now(), checkpointId);
      if (r.changes !== 1) throw new StoreError(`checkpoint ${checkpointId} is not queued`);
      return checkpoint(db, checkpointId)!;
    })
    .immediate();
}

/**
 * At start-up, before merging: merges cut short by a crash become `interrupted` and their
 * checkpoints go back to the queue, at their original position. Returns the requeued checkpoints.
 */
export function recoverInterrupted(db: Db): Checkpoint[] {
  return db
    .transaction(() => {
      const back = sql(db, `SELECT ${CHECKPOINT_COLS} FROM ${CHECKPOINT_FROM} WHERE c.status = 'merging' ORDER BY c.id`)
        .all()
        .map(toCheckpoint);
      sql(
        db,
        `UPDATE merges SET status = 'interrupted', finished_at = ?, error = 'process ended during the merge'
      WHERE status = 'running'`,
      ).run(now());
      sql(db, `UPDATE checkpoints SET status = 'queued' WHERE status = 'merging'`).run();
      return back.map((c) => ({ ...c, status: 'queued' as const }));
    })
    .immediate();
}

export function checkpoint(db: Db, id: number): Checkpoint | null {
  const r = sql(db, `SELECT ${CHECKPOINT_COLS} FROM ${CHECKPOINT_FROM} WHERE c.id = ?`).get(id);
  return r ? toCheckpoint(r) : null;
}

/** The head of the pipeline's queue: the next checkpoint to merge. */
export function nextQueued(db: Db, pipeline: string): Checkpoint | null {
  const pid = pipelineId(db, pipeline);
  if (pid === null) return null;
  const r = sql(
    db,
    `SELECT ${CHECKPOINT_COLS} FROM ${CHECKPOINT_FROM}
    WHERE c.pipeline_id = ? AND c.status = 'queued' ORDER BY c.id LIMIT 1`,
  ).get(pid);
  return r ? toCheckpoint(r) : null;
}

function byStatus(db: Db, pipeline: string, status: string, order = 'c.id'): Checkpoint[] {
  const pid = pipelineId(db, pipeline);
  if (pid === null) return [];
  return sql(
    db,
    `SELECT ${CHECKPOINT_COLS} FROM ${CHECKPOINT_FROM}
    WHERE c.pipeline_id = ? AND c.status = ? ORDER BY ${order}`,
  )
    .all(pid, status)
    .map(toCheckpoint);
}

/** Waiting checkpoints in merge order (the one merging now excluded). */
export const queued = (db: Db, pipeline: string): Checkpoint[] => byStatus(db, pipeline, 'queued');
/** Rejected checkpoints, except those an operator requeued. */
export const rejected = (db: Db, pipeline: string): Checkpoint[] =>
  byStatus(db, pipeline, 'rejected').filter((c) => c.requeued_at === null);
/**
 * The current lineage: merged checkpoints not taken out by a rollback or revert, in merge order
 * (step 1, 2, ...): the manifest's `checkpoints`.
 */
export function mergedCheckpoints(db: Db, pipeline: string): Checkpoint[] {
  return byStatus(db, pipeline, 'merged', 'c.step').filter((c) => c.retired === null);
}

/** Merged checkpoints a rollback or revert took out of the lineage, oldest first. */
export function retiredCheckpoints(db: Db, pipeline: string): Checkpoint[] {
  return byStatus(db, pipeline, 'merged', 'c.id').filter((c) => c.retired !== null);
}

/** The newest row for a dropped path, to skip re-hashing unchanged files on a rescan (an archived one has left it). */
export function findByPath(db: Db, pipeline: string, path: string): Checkpoint | null {
  const pid = pipelineId(db, pipeline);
  if (pid === null) return null;
  const r = sql(
    db,
    `SELECT ${CHECKPOINT_COLS} FROM ${CHECKPOINT_FROM}
    WHERE c.pipeline_id = ? AND c.path = ? AND c.requeued_at IS NULL AND c.archived_at IS NULL
    ORDER BY c.id DESC LIMIT 1`,
  ).get(pid, path);
  return r ? toCheckpoint(r) : null;
}
