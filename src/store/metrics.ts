/** Per-merge metrics (written by commitMerge), notifier outcomes and evaluator scores (docs/architecture.md). */
import { now, parseJson, sql, StoreError, type Db } from './db.js';
import { pipelineId } from './pipelines.js';
import { lineageVersions, versions } from './lineage.js';
import { mergedCheckpoints } from './queue.js';
import type { Evaluation, Notification, TensorMetric } from './types.js';

function versionId(db: Db, pipeline: string, number: number): number {
  const r = sql(
    db,
    'SELECT v.id FROM versions v JOIN pipelines p ON p.id = v.pipeline_id WHERE p.name = ? AND v.number = ?',
  ).get(pipeline, number) as { id: number } | undefined;
  if (!r) throw new StoreError(`no version ${number} of "${pipeline}"`);
  return r.id;
}

export interface NotificationInput {
  notifier: string;
  /** 1-based */
  attempt: number;
  ok: boolean;
  detail?: string | null;
  duration_ms?: number | null;
  at?: string;
}

/** One attempt of one notifier (src/publish's NotifierOutcome maps onto this). */
export function recordNotification(db: Db, pipeline: string, number: number, n: NotificationInput): void {
  sql(
    db,
    `INSERT INTO notifications (version_id, notifier, attempt, outcome, detail, duration_ms, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  ).run(
    versionId(db, pipeline, number),
    n.notifier,
    n.attempt,
    n.ok ? 'ok' : 'failed',
    n.detail ?? null,
    n.duration_ms == null ? null : Math.round(n.duration_ms),
    n.at ?? now(),
  );
}

export function notifications(db: Db, pipeline: string, number: number): Notification[] {
  return sql(
    db,
    'SELECT id, notifier, attempt, outcome, detail, duration_ms, at FROM notifications WHERE version_id = ? ORDER BY id',
  ).all(versionId(db, pipeline, number)) as Notification[];
}

/** The evaluator's per-task scores for a version; re-evaluating replaces a task's score. */
export function recordEvaluation(
  db: Db,
  pipeline: string,
  number: number,
  scores: Readonly<Record<string, number>>,
  at: string = now(),
): void {
  const vid = versionId(db, pipeline, number);
  const st = sql(
    db,
    `INSERT INTO evaluations (version_id, task, score, evaluated_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (version_id, task) DO UPDATE SET score = excluded.score, evaluated_at = excluded.evaluated_at`,
  );
  db.transaction(() => {
    for (const [task, score] of Object.entries(scores)) {
      if (!Number.isFinite(score)) throw new StoreError(`evaluation score for "${task}" is not a finite number`);
      st.run(vid, task, score, at);
    }
  }).immediate();
}

export function evaluations(db: Db, pipeline: string, number: number): Evaluation[] {
  return sql(db, 'SELECT task, score, evaluated_at FROM evaluations WHERE version_id = ? ORDER BY task').all(
    versionId(db, pipeline, number),
  ) as Evaluation[];
}

export function tensorMetrics(db: Db, mergeId: number): Required<TensorMetric>[] {
  return sql(
    db,
    `SELECT tensor, kind, tv_norm, merged_norm, removed_share, interference, split_rank, extra
    FROM tensor_metrics WHERE merge_id = ? ORDER BY tensor`,
  )
    .all(mergeId)
    .map((r) => {
      const row = r as Record<string, unknown>;
      return { ...(row as unknown as Required<TensorMetric>), extra: parseJson<Record<string, unknown>>(row.extra) };
    });
}

export function modelMetrics(db: Db, mergeId: number): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const r of sql(db, 'SELECT name, value FROM model_metrics WHERE merge_id = ? ORDER BY name').all(mergeId) as {
    name: string;
    value: number | null;
  }[]) {
    out[r.name] = r.value;
  }
  return out;
}

/**
 * The retention matrix ρ: rows are steps t = 1..T, columns tasks i = 1..T, null above the
 * diagonal or where not recorded. ρ[t][t] is plasticity; ρ[t][i] − ρ[i][i] backward transfer.
 */
export function retentionMatrix(db: Db, pipeline: string): (number | null)[][] {
  const pid = pipelineId(db, pipeline);
  if (pid === null) return [];
  const rows = (
    sql(db, 'SELECT merge_id, step, task, rho FROM retention WHERE pipeline_id = ? ORDER BY step, task').all(pid) as {
      merge_id: number;
      step: number;
      task: number;
      rho: number;
    }[]
  ).filter(inLineage(db, pipeline));
  const T = rows.reduce((a, r) => Math.max(a, r.step), 0);
  const m = Array.from({ length: T }, () => new Array<number | null>(T).fill(null));
  for (const r of rows) m[r.step - 1]![r.task - 1] = r.rho;
  return m;
}

/**
 * Rows measured by a merge of the current lineage's history (lineageVersions): after a rollback
 * or revert, the figures of versions the pipeline no longer holds are left out. A pipeline with no
 * versions keeps every row (merges committed without publication, as in `cmerge merge`).
 */
function inLineage(db: Db, pipeline: string): (row: { merge_id: number }) => boolean {
  const history = lineageVersions(db, pipeline);
  if (history.length === 0 && versions(db, pipeline, { includeRemoved: true }).length === 0) return () => true;
  const merges = new Set(history.map((v) => v.merge_id));
  return (row) => merges.has(row.merge_id);
}

export interface AccuracySummary {
  /** merge step of each row (only versions with evaluations) */
  steps: number[];
  /** task names, columns; tasks named like a merged checkpoint come first, in merge order */
  tasks: string[];
  /** R[row][col]; null when not evaluated */
  matrix: (number | null)[][];
  /** mean over the merged tasks of the last row */
  average_accuracy: number | null;
  /** mean_i<T (R[T][i] − R[i][i]) over tasks matched to merged checkpoints (docs/architecture.md) */
  bwt: number | null;
  /** mean_i<T (max_{t<T} R[t][i] − R[T][i]) */
  forgetting: number | null;
}

/**
 * Accuracy matrix from evaluator scores. Task i is matched to the checkpoint merged at step i by
 * name (the checkpoint name with or without its `.safetensors` suffix); unmatched task names are
 * kept as columns but cannot enter BWT, which needs R[i][i].
 */
export function accuracySummary(db: Db, pipeline: string): AccuracySummary {
  let rows = sql(
    db,
    `SELECT m.id AS merge_id, m.step, e.task, e.score FROM evaluations e JOIN versions v ON v.id = e.version_id
    JOIN merges m ON m.id = v.merge_id JOIN pipelines p ON p.id = v.pipeline_id WHERE p.name = ? ORDER BY m.step`,
  ).all(pipeline) as { merge_id: number; step: number; task: string; score: number }[];
  rows = rows.filter(inLineage(db, pipeline));
  const stepOfTask = new Map<string, number>();
  for (const c of mergedCheckpoints(db, pipeline)) {
    stepOfTask.set(c.name, c.step!);
    stepOfTask.set(c.name.replace(/\.safetensors$/, ''), c.step!);
  }
  const steps = [...new Set(rows.map((r) => r.step))];
  const tasks = [...new Set(rows.map((r) => r.task))].sort(
    (a, b) => (stepOfTask.get(a) ?? Infinity) - (stepOfTask.get(b) ?? Infinity) || a.localeCompare(b),
  );
  const matrix = steps.map(() => new Array<number | null>(tasks.length).fill(null));
  for (const r of rows) matrix[steps.indexOf(r.step)]![tasks.indexOf(r.task)] = r.score;
  const at = (step: number, task: string): number | null => {
    const i = steps.indexOf(step);
    return i < 0 ? null : (matrix[i]![tasks.indexOf(task)] ?? null);
  };
  const T = steps.length ? steps[steps.length - 1]! : 0;
  const last = T
    ? tasks
        .filter((t) => (stepOfTask.get(t) ?? Infinity) <= T)
        .map((t) => at(T, t))
        .filter((x): x is number => x !== null)
    : [];
  const older = tasks.filter((t) => (stepOfTask.get(t) ?? Infinity) < T);
  const bwtTerms: number[] = [];
  const forgetTerms: number[] = [];
  for (const t of older) {
    const final = at(T, t);
    const own = at(stepOfTask.get(t)!, t);
    if (final !== null && own !== null) bwtTerms.push(final - own);
    const before = steps
      .filter((s) => s < T && s >= stepOfTask.get(t)!)
      .map((s) => at(s, t))
      .filter((x): x is number => x !== null);
    if (final !== null && before.length) forgetTerms.push(Math.max(...before) - final);
  }
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  return { steps, tasks, matrix, average_accuracy: mean(last), bwt: mean(bwtTerms), forgetting: mean(forgetTerms) };
}
