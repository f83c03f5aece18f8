import { now, sql, type Db } from './db.js';
import { pipelineId } from './pipelines.js';
import { CHECKPOINT_COLS, CHECKPOINT_FROM, toCheckpoint } from './rows.js';
import type { Checkpoint } from './types.js';

/**
 * The archive of merged checkpoints (docs/operations.md, "Merged checkpoints are archived"): where
 * each goes is recorded before it is moved, and that it got there after, so that a crash in
 * between is finished at the next start.
 */

/** Merged checkpoints (in the lineage or retired) not archived yet, oldest first. */
export function unarchived(db: Db, pipeline: string): Checkpoint[] {
  const pid = pipelineId(db, pipeline);
  if (pid === null) return [];
  return sql(
    db,
    `SELECT ${CHECKPOINT_COLS} FROM ${CHECKPOINT_FROM}
    WHERE c.pipeline_id = ? AND c.status = 'merged' AND c.archived_at IS NULL ORDER BY c.id`,
  )
    .all(pid)
    .map(toCheckpoint);
}

/** Records where the checkpoint is about to be moved. */
export function setArchivePath(db: Db, checkpointId: number, archivePath: string): void {
  sql(db, 'UPDATE checkpoints SET archive_path = ? WHERE id = ?').run(archivePath, checkpointId);
}

/** The checkpoint is at its archive_path now. */
export function markArchived(db: Db, checkpointId: number): void {
  sql(db, 'UPDATE checkpoints SET archived_at = ? WHERE id = ? AND archive_path IS NOT NULL').run(now(), checkpointId);
}

/** Where a checkpoint's files are: its archive once archived, else where it was dropped. */
export function checkpointFiles(c: Pick<Checkpoint, 'path' | 'archive_path' | 'archived_at'>): string {
  return c.archived_at !== null && c.archive_path !== null ? c.archive_path : c.path;
}
