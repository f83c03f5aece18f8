/**
 * Everything `cmerge report` (src/report/) shows of one pipeline, read in one go. Read-only: it
 * runs on the inspection connection (and in the daemon, between merges), so it never writes.
 */
import { parseJson, sql, type Db } from './db.js';
import { currentVersion, latestVersion, lineageVersions, versions } from './lineage.js';
import { accuracySummary, retentionMatrix, type AccuracySummary } from './metrics.js';
import { operationsLog, pauseState, type OperationRecord, type PauseState } from './operations.js';
import { mergedCheckpoints, queued } from './queue.js';
import { CHECKPOINT_COLS, CHECKPOINT_FROM, toCheckpoint } from './rows.js';
import type { Checkpoint, Notification, Version } from './types.js';

/**
 * Where a version or merge stands against the lineage the pipeline holds now: on it, or taken off
 * by a rollback past it or a revert of one of its checkpoints; `superseded` for anything else off it.
 */
export type LineageStatus = 'current' | 'rolled_back' | 'reverted' | 'superseded';

/** One committed merge (or revert) and the figures plotted per step. */
export interface ReportMerge {
  merge_id: number;
  step: number;
  kind: 'merge' | 'revert';
  /** the checkpoint merged (for a revert: the one taken out) */
  checkpoint: string;
  version: number | null;
  lineage: LineageStatus;
  /** OPCM's λ (merges.scalars), null for methods without one */
  lambda: number | null;
  /** ‖τ_t‖ and ‖M_t − θ0‖: the model-level figures, else from the per-tensor norms */
  task_vector_norm: number | null;
  merged_task_vector_norm: number | null;
  /** the model-level figures, else the mean over the tensors that recorded one */
  removed_share: number | null;
  interference: number | null;
  /** the daemon's total_s, else finished − started */
  duration_s: number | null;
}

export interface ReportVersion {
  number: number;
  parent: number | null;
  step: number;
  kind: 'merge' | 'revert';
  created_at: string;
  manifest_sha256: string;
  pinned: boolean;
  removed_at: string | null;
  /** `current` points at it */
  current: boolean;
  lineage: LineageStatus;
  /** the checkpoints it holds, in merge order */
  checkpoints: string[];
}

export interface ReportNotification extends Omit<Notification, 'id'> {
  version: number;
}

/** ACC and BWT as they were right after each evaluated step (the last point is accuracySummary's). */
export interface AccuracyPoint {
  step: number;
  average_accuracy: number | null;
  bwt: number | null;
}

export interface ReportData {
  pipeline: string;
  current_version: number | null;
  latest_version: number | null;
  merged: number;
  queued: number;
  paused: PauseState | null;
  merges: ReportMerge[];
  versions: ReportVersion[];
  /** every checkpoint ever seen, in arrival order (rejected and retired ones too) */
  checkpoints: Checkpoint[];
  notifications: ReportNotification[];
  operations: OperationRecord[];
  /** ρ[t][i] of the current lineage (retentionMatrix) */
  retention: (number | null)[][];
  accuracy: AccuracySummary;
  accuracy_over_steps: AccuracyPoint[];
}

/** A pipeline the database does not know yet (configured, nothing dropped) gives empty data. */
export function reportData(db: Db, pipeline: string): ReportData {
  const checkpoints = allCheckpoints(db, pipeline);
  const lineageOf = lineageClassifier(db, pipeline, checkpoints);
  const accuracy = accuracySummary(db, pipeline);
  const current = currentVersion(db, pipeline)?.number ?? null;
  const merged = sql(db, 'SELECT merged_count FROM pipelines WHERE name = ?').get(pipeline) as
    { merged_count: number } | undefined;
  return {
    pipeline,
    current_version: current,
    latest_version: latestVersion(db, pipeline)?.number ?? null,
    merged: merged?.merged_count ?? 0,
    queued: queued(db, pipeline).length,
    paused: pauseState(db, pipeline),
    merges: committedMerges(db, pipeline, lineageOf),
    versions: reportVersions(db, pipeline, checkpoints, current, lineageOf),
    checkpoints,
    notifications: pipelineNotifications(db, pipeline),
    operations: operationsLog(db, pipeline),
    retention: retentionMatrix(db, pipeline),
    accuracy,
    accuracy_over_steps: accuracyOverSteps(accuracy, taskSteps(db, pipeline)),
  };
}

function allCheckpoints(db: Db, pipeline: string): Checkpoint[] {
  return sql(db, `SELECT ${CHECKPOINT_COLS} FROM ${CHECKPOINT_FROM} WHERE p.name = ? ORDER BY c.id`)
    .all(pipeline)
    .map(toCheckpoint);
}

type Classify = (merge: { id: number; checkpointId: number; versionLineage: number[] | null }) => LineageStatus;

/**
 * A merge's (or its version's) standing: on the lineage when its version is one of lineageVersions
 * (the store's own rule for the matrices); off it by the retirement of a checkpoint it holds.
 */
function lineageClassifier(db: Db, pipeline: string, checkpoints: Checkpoint[]): Classify {
  const retired = new Map(checkpoints.map((c) => [c.id, c.retired]));
  const onLineage = new Set(lineageVersions(db, pipeline).map((v) => v.merge_id));
  const anyVersion = versions(db, pipeline, { includeRemoved: true }).length > 0;
  return ({ id, checkpointId, versionLineage }) => {
    // without versions (merges committed unpublished) only retirements tell
    if (versionLineage === null || !anyVersion) return retired.get(checkpointId) ?? 'current';
    if (onLineage.has(id)) return 'current';
    const why = versionLineage.map((c) => retired.get(c)).filter((r) => r);
    return why.includes('reverted') ? 'reverted' : why.includes('rolled_back') ? 'rolled_back' : 'superseded';
  };
}

interface MergeRow {
  id: number;
  step: number;
  kind: 'merge' | 'revert';
  checkpoint_id: number;
  checkpoint: string;
  scalars: string | null;
  timings: string | null;
  started_at: string;
  finished_at: string | null;
  version: number | null;
  lineage: string | null;
}

function committedMerges(db: Db, pipeline: string, classify: Classify): ReportMerge[] {
  const rows = sql(
    db,
    `SELECT m.id, m.step, m.kind, m.checkpoint_id, c.name AS checkpoint, m.scalars, m.timings, m.started_at,
      m.finished_at, v.number AS version, v.lineage
    FROM merges m JOIN pipelines p ON p.id = m.pipeline_id JOIN checkpoints c ON c.id = m.checkpoint_id
    LEFT JOIN versions v ON v.merge_id = m.id
    WHERE p.name = ? AND m.status = 'committed' ORDER BY m.id`,
  ).all(pipeline) as MergeRow[];
  const model = modelFigures(db, pipeline);
  const tensors = tensorFigures(db, pipeline);
  return rows.map((r) => {
    const m = model.get(r.id) ?? {};
    const t = tensors.get(r.id);
    const scalars = parseJson<Record<string, number>>(r.scalars) ?? {};
    const timings = parseJson<Record<string, number>>(r.timings) ?? {};
    const elapsed = r.finished_at ? (Date.parse(r.finished_at) - Date.parse(r.started_at)) / 1000 : null;
    return {
      merge_id: r.id,
      step: r.step,
      kind: r.kind,
      checkpoint: r.checkpoint,
      version: r.version,
      lineage: classify({ id: r.id, checkpointId: r.checkpoint_id, versionLineage: parseJson<number[]>(r.lineage) }),
      lambda: num(scalars.lambda ?? m.lambda),
      task_vector_norm: num(m.task_vector_norm ?? sqrt(t?.tv_sq)),
      merged_task_vector_norm: num(m.merged_task_vector_norm ?? sqrt(t?.merged_sq)),
      removed_share: num(m.removed_share ?? t?.removed_share),
      interference: num(m.interference ?? t?.interference),
      duration_s: num(timings.total_s ?? elapsed),
    };
  });
}

const num = (x: number | null | undefined): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const sqrt = (x: number | null | undefined): number | null => (typeof x === 'number' ? Math.sqrt(x) : null);

/** model_metrics of the pipeline's merges: merge id → name → value. */
function modelFigures(db: Db, pipeline: string): Map<number, Record<string, number | null>> {
  const out = new Map<number, Record<string, number | null>>();
  const rows = sql(
    db,
    `SELECT mm.merge_id, mm.name, mm.value FROM model_metrics mm JOIN merges m ON m.id = mm.merge_id
    JOIN pipelines p ON p.id = m.pipeline_id WHERE p.name = ?`,
  ).all(pipeline) as { merge_id: number; name: string; value: number | null }[];
  for (const r of rows) {
    if (!out.has(r.merge_id)) out.set(r.merge_id, {});
    out.get(r.merge_id)![r.name] = r.value;
  }
  return out;
}

interface TensorFigures {
  tv_sq: number | null;
  merged_sq: number | null;
  removed_share: number | null;
  interference: number | null;
}

/** Per merge, the per-tensor figures folded into model-level ones (for merges recorded without them). */
function tensorFigures(db: Db, pipeline: string): Map<number, TensorFigures> {
  const rows = sql(
    db,
    `SELECT t.merge_id, SUM(t.tv_norm * t.tv_norm) AS tv_sq, SUM(t.merged_norm * t.merged_norm) AS merged_sq,
      AVG(t.removed_share) AS removed_share, AVG(t.interference) AS interference
    FROM tensor_metrics t JOIN merges m ON m.id = t.merge_id JOIN pipelines p ON p.id = m.pipeline_id
    WHERE p.name = ? GROUP BY t.merge_id`,
  ).all(pipeline) as (TensorFigures & { merge_id: number })[];
  return new Map(rows.map((r) => [r.merge_id, r]));
}

function reportVersions(
  db: Db,
  pipeline: string,
  checkpoints: Checkpoint[],
  current: number | null,
  classify: Classify,
): ReportVersion[] {
  const names = new Map(checkpoints.map((c) => [c.id, c.name]));
  const checkpointOf = new Map(
    (
      sql(
        db,
        `SELECT m.id, m.checkpoint_id FROM merges m JOIN pipelines p ON p.id = m.pipeline_id WHERE p.name = ?`,
      ).all(pipeline) as { id: number; checkpoint_id: number }[]
    ).map((r) => [r.id, r.checkpoint_id]),
  );
  return versions(db, pipeline, { includeRemoved: true }).map((v: Version) => ({
    number: v.number,
    parent: v.parent,
    step: v.step,
    kind: v.kind,
    created_at: v.created_at,
    manifest_sha256: v.manifest_sha256,
    pinned: v.pinned,
    removed_at: v.removed_at,
    current: v.number === current,
    lineage: classify({ id: v.merge_id, checkpointId: checkpointOf.get(v.merge_id)!, versionLineage: v.lineage }),
    checkpoints: v.lineage.map((id) => names.get(id) ?? `#${id}`),
  }));
}

function pipelineNotifications(db: Db, pipeline: string): ReportNotification[] {
  return sql(
    db,
    `SELECT v.number AS version, n.notifier, n.attempt, n.outcome, n.detail, n.duration_ms, n.at
    FROM notifications n JOIN versions v ON v.id = n.version_id JOIN pipelines p ON p.id = v.pipeline_id
    WHERE p.name = ? ORDER BY n.id`,
  ).all(pipeline) as ReportNotification[];
}

/** Task name → the step its checkpoint was merged at, matched as accuracySummary matches them. */
function taskSteps(db: Db, pipeline: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const c of mergedCheckpoints(db, pipeline)) {
    out.set(c.name, c.step!);
    out.set(c.name.replace(/\.safetensors$/, ''), c.step!);
  }
  return out;
}

/**
 * accuracySummary's ACC and BWT with T set to each evaluated step in turn: ACC_T is the mean of
 * R[T][i] over tasks merged by T, BWT_T the mean of R[T][i] − R[i][i] over tasks merged before T.
 */
export function accuracyOverSteps(a: AccuracySummary, stepOf: ReadonlyMap<string, number>): AccuracyPoint[] {
  const at = (step: number, col: number): number | null => {
    const row = a.steps.indexOf(step);
    return row < 0 ? null : (a.matrix[row]![col] ?? null);
  };
  const mean = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null);
  return a.steps.map((T) => {
    const acc: number[] = [];
    const bwt: number[] = [];
    a.tasks.forEach((task, col) => {
      const own = stepOf.get(task);
      const final = at(T, col);
      if (own === undefined || own > T || final === null) return;
      acc.push(final);
      const first = at(own, col);
      if (own < T && first !== null) bwt.push(final - first);
    });
    return { step: T, average_accuracy: mean(acc), bwt: mean(bwt) };
  });
}
