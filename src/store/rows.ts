import { parseJson } from './db.js';
import type { Checkpoint, Merge, Version } from './types.js';

/** Column lists and row mappers shared by the query files; every query joins the pipeline name. */
export const CHECKPOINT_COLS = `c.id, p.name AS pipeline, c.name, c.path, c.quarantine_path, c.sha256, c.size,
  c.arrived_at, c.status, c.reason, c.step, c.merged_at, c.adapter, c.dtype, c.retired, c.retired_at,
  c.rejected_at, c.requeued_at, c.archive_path, c.archived_at`;
export const CHECKPOINT_FROM = `checkpoints c JOIN pipelines p ON p.id = c.pipeline_id`;

export const MERGE_COLS = `m.id, m.checkpoint_id, p.name AS pipeline, m.step, m.method, m.params, m.engine,
  m.started_at, m.finished_at, m.status, m.error, m.timings, m.peak_rss, m.scalars,
  m.state_generation, m.state_path, m.state_sha256, m.progress, m.engine_info, m.gpu_seconds, m.peak_device_bytes,
  m.cpu_fallbacks`;
export const MERGE_FROM = `merges m JOIN pipelines p ON p.id = m.pipeline_id`;

export const VERSION_COLS = `v.id, p.name AS pipeline, v.number, v.parent, v.merge_id, m.step, v.path, v.files,
  v.manifest_sha256, v.created_at, v.pinned, v.removed_at, v.engine, v.lineage, m.kind`;
export const VERSION_FROM = `versions v JOIN pipelines p ON p.id = v.pipeline_id JOIN merges m ON m.id = v.merge_id`;

export function toCheckpoint(r: unknown): Checkpoint {
  const row = r as Record<string, unknown>;
  return { ...(row as unknown as Checkpoint), adapter: parseJson(row.adapter) };
}

export function toMerge(r: unknown): Merge {
  const row = r as Record<string, unknown>;
  return {
    ...(row as unknown as Merge),
    params: parseJson<Record<string, unknown>>(row.params) ?? {},
    timings: parseJson(row.timings),
    scalars: parseJson(row.scalars),
    progress: parseJson(row.progress),
    engine_info: parseJson(row.engine_info),
  };
}

export function toVersion(r: unknown): Version {
  const row = r as Record<string, unknown>;
  return {
    ...(row as unknown as Version),
    files: parseJson<Record<string, string>>(row.files) ?? {},
    pinned: row.pinned === 1,
    engine: parseJson(row.engine),
    lineage: parseJson<number[]>(row.lineage) ?? [],
  };
}
