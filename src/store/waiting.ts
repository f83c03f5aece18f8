import { sql, type Db } from './db.js';
import { ensurePipeline, pipelineId } from './pipelines.js';
import type { WaitingEntry, WaitingReason } from './types.js';

/**
 * Drop-folder entries waiting to be complete (migration 7): written by the intake when an entry
 * starts waiting or changes, removed when it is taken or gone. `cmerge status` reads them from
 * another process, and a restarted daemon resumes each entry's incomplete timeout from its
 * recorded last change (docs/architecture.md, intake).
 */

export type WaitingInput = Omit<WaitingEntry, 'pipeline' | 'first_seen'> & { first_seen?: string };

/** Inserts or updates the entry; first_seen stays what it was. */
export function recordWaiting(db: Db, pipeline: string, w: WaitingInput): void {
  db.transaction(() => upsert(db, ensurePipeline(db, pipeline), w))();
}

function upsert(db: Db, pid: number, w: WaitingInput): void {
  sql(
    db,
    `INSERT INTO intake_waiting (pipeline_id, path, name, size, expected_size, reason, signature, first_seen, last_change)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (pipeline_id, path) DO UPDATE SET name = excluded.name, size = excluded.size,
      expected_size = excluded.expected_size, reason = excluded.reason, signature = excluded.signature,
      last_change = excluded.last_change`,
  ).run(
    pid,
    w.path,
    w.name,
    w.size,
    w.expected_size,
    w.reason,
    w.signature,
    w.first_seen ?? w.last_change,
    w.last_change,
  );
}

export function forgetWaiting(db: Db, pipeline: string, path: string): void {
  const pid = pipelineId(db, pipeline);
  if (pid !== null) sql(db, 'DELETE FROM intake_waiting WHERE pipeline_id = ? AND path = ?').run(pid, path);
}

/** The pipeline's waiting entries, the longest waiting first. */
export function waiting(db: Db, pipeline: string): WaitingEntry[] {
  const pid = pipelineId(db, pipeline);
  if (pid === null) return [];
  return sql(
    db,
    `SELECT ? AS pipeline, path, name, size, expected_size, reason, signature, first_seen, last_change
    FROM intake_waiting WHERE pipeline_id = ? ORDER BY first_seen, path`,
  ).all(pipeline, pid) as WaitingEntry[];
}

const REASON_TEXT: Record<WaitingReason, string> = {
  growing: 'still growing',
  missing_shard: 'missing shard',
  missing_adapter_file: 'missing adapter file',
  no_weights: 'no weights yet',
};

/** "still growing", "missing shard"...: the reason as the log and the status table say it */
export function waitingReasonText(reason: WaitingReason): string {
  return REASON_TEXT[reason];
}
