/** Published versions: recorded after the version folder and `current` are in place (docs/architecture.md). */
import { json, now, sql, StoreError, type Db } from './db.js';
import { requirePipeline, pipelineId } from './pipelines.js';
import { mergedCheckpoints } from './queue.js';
import { VERSION_COLS, VERSION_FROM, toVersion } from './rows.js';
import type { Version } from './types.js';

export interface VersionInput {
  pipeline: string;
  number: number;
  parent: number | null;
  /** the committed merge whose model this version holds */
  merge_id: number;
  /** absolute path of `<repository>/<pipeline>/<N>` */
  path: string;
  /** relative path → sha256, as in the manifest */
  files: Record<string, string>;
  manifest_sha256: string;
  /** default: now */
  created_at?: string;
}

export function recordVersion(db: Db, v: VersionInput): Version {
  return db
    .transaction(() => {
      const pid = requirePipeline(db, v.pipeline);
      const m = sql(db, 'SELECT pipeline_id, status FROM merges WHERE id = ?').get(v.merge_id) as
        { pipeline_id: number; status: string } | undefined;
      if (!m || m.pipeline_id !== pid || m.status !== 'committed') {
        throw new StoreError(`merge ${v.merge_id} is not a committed merge of pipeline "${v.pipeline}"`);
      }
      const { max } = sql(db, 'SELECT MAX(number) AS max FROM versions WHERE pipeline_id = ?').get(pid) as {
        max: number | null;
      };
      if (!Number.isSafeInteger(v.number) || v.number <= (max ?? 0)) {
        throw new StoreError(
          `version ${v.number} of "${v.pipeline}" must be above the newest recorded (${max ?? 'none'})`,
        );
      }
      if (
        v.parent !== null &&
        !sql(db, 'SELECT 1 FROM versions WHERE pipeline_id = ? AND number = ?').get(pid, v.parent)
      ) {
        throw new StoreError(`parent version ${v.parent} of "${v.pipeline}" is not recorded`);
      }
      // the version keeps its merge's engine (a replay for rollback or revert reads it from here)
      // and the lineage it holds: the current one, which the commit of its merge just extended
      sql(
        db,
        `INSERT INTO versions (pipeline_id, number, parent, merge_id, path, files, manifest_sha256, created_at, engine, lineage)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, (SELECT engine_info FROM merges WHERE id = ?), ?)`,
      ).run(
        pid,
        v.number,
        v.parent,
        v.merge_id,
        v.path,
        json(v.files),
        v.manifest_sha256,
        v.created_at ?? now(),
        v.merge_id,
        json(mergedCheckpoints(db, v.pipeline).map((c) => c.id)),
      );
      // the symlink moves after this commit: until it does, the swap is pending (docs/operations.md)
      sql(db, 'UPDATE pipelines SET current_version = ?, swap_pending = ? WHERE id = ?').run(v.number, v.number, pid);
      return version(db, v.pipeline, v.number)!;
    })
    .immediate();
}

export function version(db: Db, pipeline: string, number: number): Version | null {
  const r = sql(db, `SELECT ${VERSION_COLS} FROM ${VERSION_FROM} WHERE p.name = ? AND v.number = ?`).get(
    pipeline,
    number,
  );
  return r ? toVersion(r) : null;
}

/** The version `current` points at (after a rollback, not the newest); null before the first. */
export function currentVersion(db: Db, pipeline: string): Version | null {
  const r = sql(db, 'SELECT current_version FROM pipelines WHERE name = ?').get(pipeline) as
    { current_version: number | null } | undefined;
  return r?.current_version ? version(db, pipeline, r.current_version) : null;
}

/**
 * The versions whose lineage is a prefix of the current one, by step (the newest version of each
 * step): the history of the lineage the pipeline now holds, for the retention and accuracy
 * matrices. After a rollback, the versions past it drop out; after a revert, the versions before
 * the reverted checkpoint and the revert itself remain.
 */
export function lineageVersions(db: Db, pipeline: string): Version[] {
  const current = mergedCheckpoints(db, pipeline).map((c) => c.id);
  const byStep = new Map<number, Version>();
  for (const v of versions(db, pipeline, { includeRemoved: true })) {
    if (v.lineage.length > current.length || !v.lineage.every((id, i) => current[i] === id)) continue;
    byStep.set(v.lineage.length, v);
  }
  return [...byStep.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

/** The newest recorded version (removed or not: retention never removes the newest). */
export function latestVersion(db: Db, pipeline: string): Version | null {
  const r = sql(db, `SELECT ${VERSION_COLS} FROM ${VERSION_FROM} WHERE p.name = ? ORDER BY v.number DESC LIMIT 1`).get(
    pipeline,
  );
  return r ? toVersion(r) : null;
}

/** Versions oldest first; removed ones only when asked. */
export function versions(db: Db, pipeline: string, opts: { includeRemoved?: boolean } = {}): Version[] {
  const pid = pipelineId(db, pipeline);
  if (pid === null) return [];
  const where = opts.includeRemoved ? '' : 'AND v.removed_at IS NULL';
  return sql(db, `SELECT ${VERSION_COLS} FROM ${VERSION_FROM} WHERE v.pipeline_id = ? ${where} ORDER BY v.number`)
    .all(pid)
    .map(toVersion);
}

function setFlag(db: Db, pipeline: string, number: number, set: string, args: unknown[]): Version {
  const pid = requirePipeline(db, pipeline);
  const r = sql(db, `UPDATE versions SET ${set} WHERE pipeline_id = ? AND number = ?`).run(...args, pid, number);
  if (r.changes !== 1) throw new StoreError(`no version ${number} of "${pipeline}"`);
  return version(db, pipeline, number)!;
}

/** A pinned version is never removed by retention (a client depends on it). */
export const pin = (db: Db, pipeline: string, number: number): Version =>
  setFlag(db, pipeline, number, 'pinned = 1', []);
export const unpin = (db: Db, pipeline: string, number: number): Version =>
  setFlag(db, pipeline, number, 'pinned = 0', []);
/** Retention deleted the folder; the row stays for lineage. */
export const markRemoved = (db: Db, pipeline: string, number: number, at: string = now()): Version =>
  setFlag(db, pipeline, number, 'removed_at = COALESCE(removed_at, ?)', [at]);

/** Pinned version numbers, for applyRetention's `pinned`. */
export function pinnedVersions(db: Db, pipeline: string): number[] {
  return versions(db, pipeline)
    .filter((v) => v.pinned)
    .map((v) => v.number);
}
