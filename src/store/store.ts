import * as archive from './archive.js';
import { openDatabase, sql, type Db, type OpenOptions } from './db.js';
import * as inspect from './inspect.js';
import * as lineage from './lineage.js';
import * as merges from './merges.js';
import * as metrics from './metrics.js';
import * as ops from './operations.js';
import { pipelineNames } from './pipelines.js';
import * as queue from './queue.js';
import * as waits from './waiting.js';
import type {
  Checkpoint,
  Evaluation,
  Merge,
  ProgressRecord,
  Notification,
  StateRef,
  TensorMetric,
  Version,
  WaitingEntry,
} from './types.js';

/**
 * The daemon's durable state, one SQLite connection. Every mutating method is one transaction
 * (see queue.ts for which transitions must be atomic and why). Synchronous by design: each call
 * is short, and better-sqlite3 blocks only for the duration of the statement.
 */
export class Store {
  constructor(readonly db: Db) {}

  // queue (queue.ts)
  enqueue(pipeline: string, a: queue.Arrival): queue.EnqueueResult {
    return queue.enqueue(this.db, pipeline, a);
  }
  reject(pipeline: string, a: queue.RejectedArrival, reason: string, quarantinePath: string | null): Checkpoint {
    return queue.reject(this.db, pipeline, a, reason, quarantinePath);
  }
  rejectQueued(checkpointId: number, reason: string, quarantinePath: string | null): Checkpoint {
    return queue.rejectQueued(this.db, checkpointId, reason, quarantinePath);
  }
  recoverInterrupted(): Checkpoint[] {
    return queue.recoverInterrupted(this.db);
  }
  checkpoint(id: number): Checkpoint | null {
    return queue.checkpoint(this.db, id);
  }
  nextQueued(pipeline: string): Checkpoint | null {
    return queue.nextQueued(this.db, pipeline);
  }
  queued(pipeline: string): Checkpoint[] {
    return queue.queued(this.db, pipeline);
  }
  rejected(pipeline: string): Checkpoint[] {
    return queue.rejected(this.db, pipeline);
  }
  /** the current lineage, in merge order */
  mergedCheckpoints(pipeline: string): Checkpoint[] {
    return queue.mergedCheckpoints(this.db, pipeline);
  }
  retiredCheckpoints(pipeline: string): Checkpoint[] {
    return queue.retiredCheckpoints(this.db, pipeline);
  }
  findByPath(pipeline: string, path: string): Checkpoint | null {
    return queue.findByPath(this.db, pipeline, path);
  }

  // archive of merged checkpoints (archive.ts)
  unarchived(pipeline: string): Checkpoint[] {
    return archive.unarchived(this.db, pipeline);
  }
  setArchivePath(checkpointId: number, archivePath: string): void {
    archive.setArchivePath(this.db, checkpointId, archivePath);
  }
  markArchived(checkpointId: number): void {
    archive.markArchived(this.db, checkpointId);
  }

  // drop-folder entries waiting to be complete (waiting.ts)
  recordWaiting(pipeline: string, w: waits.WaitingInput): void {
    waits.recordWaiting(this.db, pipeline, w);
  }
  forgetWaiting(pipeline: string, path: string): void {
    waits.forgetWaiting(this.db, pipeline, path);
  }
  waiting(pipeline: string): WaitingEntry[] {
    return waits.waiting(this.db, pipeline);
  }

  // merges (merges.ts)
  markMerging(checkpointId: number, start: merges.MergeStart): { merge: Merge; checkpoint: Checkpoint } {
    return merges.markMerging(this.db, checkpointId, start);
  }
  commitMerge(input: merges.CommitMergeInput): Merge {
    return merges.commitMerge(this.db, input);
  }
  /** The merge committed and its version recorded in one transaction (what the daemon publishes). */
  commitMergeAndVersion(
    input: merges.CommitMergeInput,
    version: Omit<lineage.VersionInput, 'merge_id'>,
  ): { merge: Merge; version: Version } {
    return merges.commitMergeAndVersion(this.db, input, version);
  }
  failMerge(mergeId: number, reason: string, quarantinePath: string | null): Merge {
    return merges.failMerge(this.db, mergeId, reason, quarantinePath);
  }
  abandonMerge(mergeId: number, reason: string): Merge {
    return merges.abandonMerge(this.db, mergeId, reason);
  }
  merge(id: number): Merge | null {
    return merges.merge(this.db, id);
  }
  merges(pipeline?: string): Merge[] {
    return merges.merges(this.db, pipeline);
  }
  currentMerge(pipeline: string): Merge | null {
    return merges.currentMerge(this.db, pipeline);
  }
  setMergeProgress(mergeId: number, progress: ProgressRecord): void {
    merges.setMergeProgress(this.db, mergeId, progress);
  }
  currentStateGeneration(pipeline: string): StateRef | null {
    return merges.currentStateGeneration(this.db, pipeline);
  }
  unpublishedMerge(pipeline: string): Merge | null {
    return merges.unpublishedMerge(this.db, pipeline);
  }

  // versions (lineage.ts)
  recordVersion(v: lineage.VersionInput): Version {
    return lineage.recordVersion(this.db, v);
  }
  version(pipeline: string, number: number): Version | null {
    return lineage.version(this.db, pipeline, number);
  }
  latestVersion(pipeline: string): Version | null {
    return lineage.latestVersion(this.db, pipeline);
  }
  /** the version `current` points at (after a rollback, not the newest) */
  currentVersion(pipeline: string): Version | null {
    return lineage.currentVersion(this.db, pipeline);
  }
  lineageVersions(pipeline: string): Version[] {
    return lineage.lineageVersions(this.db, pipeline);
  }

  // operations (operations.ts)
  rollbackTo(pipeline: string, number: number, state: ops.StateInput): Checkpoint[] {
    return ops.rollbackTo(this.db, pipeline, number, state);
  }
  commitRevert(
    pipeline: string,
    checkpointId: number,
    input: Parameters<typeof ops.commitRevert>[3],
    v: Parameters<typeof ops.commitRevert>[4],
  ): Version {
    return ops.commitRevert(this.db, pipeline, checkpointId, input, v);
  }
  setPaused(pipeline: string, reason: string | null, kind?: ops.PauseKind): void {
    ops.setPaused(this.db, pipeline, reason, kind);
  }
  swapPending(pipeline: string): number | null {
    return ops.swapPending(this.db, pipeline);
  }
  setSwapPending(pipeline: string, number: number | null): void {
    ops.setSwapPending(this.db, pipeline, number);
  }
  clearRejection(checkpointId: number): void {
    ops.clearRejection(this.db, checkpointId);
  }

  pauseState(pipeline: string): ops.PauseState | null {
    return ops.pauseState(this.db, pipeline);
  }
  recordOperation(op: Omit<ops.OperationRecord, 'id' | 'at'>): void {
    ops.recordOperation(this.db, op);
  }
  operationsLog(pipeline: string): ops.OperationRecord[] {
    return ops.operationsLog(this.db, pipeline);
  }
  versions(pipeline: string, opts?: { includeRemoved?: boolean }): Version[] {
    return lineage.versions(this.db, pipeline, opts);
  }
  pin(pipeline: string, number: number): Version {
    return lineage.pin(this.db, pipeline, number);
  }
  unpin(pipeline: string, number: number): Version {
    return lineage.unpin(this.db, pipeline, number);
  }
  markRemoved(pipeline: string, number: number, at?: string): Version {
    return lineage.markRemoved(this.db, pipeline, number, at);
  }
  pinnedVersions(pipeline: string): number[] {
    return lineage.pinnedVersions(this.db, pipeline);
  }

  // metrics, notifications, evaluations (metrics.ts)
  recordNotification(pipeline: string, number: number, n: metrics.NotificationInput): void {
    metrics.recordNotification(this.db, pipeline, number, n);
  }
  notifications(pipeline: string, number: number): Notification[] {
    return metrics.notifications(this.db, pipeline, number);
  }
  recordEvaluation(pipeline: string, number: number, scores: Readonly<Record<string, number>>, at?: string): void {
    metrics.recordEvaluation(this.db, pipeline, number, scores, at);
  }
  evaluations(pipeline: string, number: number): Evaluation[] {
    return metrics.evaluations(this.db, pipeline, number);
  }
  tensorMetrics(mergeId: number): Required<TensorMetric>[] {
    return metrics.tensorMetrics(this.db, mergeId);
  }
  modelMetrics(mergeId: number): Record<string, number | null> {
    return metrics.modelMetrics(this.db, mergeId);
  }
  retentionMatrix(pipeline: string): (number | null)[][] {
    return metrics.retentionMatrix(this.db, pipeline);
  }
  accuracySummary(pipeline: string): metrics.AccuracySummary {
    return metrics.accuracySummary(this.db, pipeline);
  }

  // inspection (inspect.ts)
  pipelines(): string[] {
    return pipelineNames(this.db);
  }
  status(configured?: readonly string[]): inspect.PipelineStatus[] {
    return inspect.status(this.db, configured);
  }
  history(pipeline?: string): inspect.HistoryRow[] {
    return inspect.history(this.db, pipeline);
  }
  show(pipeline: string, number: number): inspect.VersionDetail | null {
    return inspect.show(this.db, pipeline, number);
  }
  lastEngine(pipeline: string): inspect.LastEngine | null {
    return inspect.lastEngine(this.db, pipeline);
  }

  /** SQLite's integrity check plus foreign-key check; [] when clean. */
  integrityCheck(): string[] {
    const problems = (sql(this.db, 'PRAGMA integrity_check').all() as { integrity_check: string }[])
      .map((r) => r.integrity_check)
      .filter((s) => s !== 'ok');
    for (const r of sql(this.db, 'PRAGMA foreign_key_check').all() as {
      table: string;
      rowid: number;
      parent: string;
    }[]) {
      problems.push(`${r.table} row ${r.rowid}: missing ${r.parent} row`);
    }
    return problems;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** Open (creating and migrating if needed) the store at dbPath. */
export function openStore(dbPath: string, opts: OpenOptions = {}): Store {
  return new Store(openDatabase(dbPath, opts));
}
