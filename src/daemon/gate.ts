import type { PipelineConfig } from '../config/index.js';
import type { Checkpoint, Store } from '../store/index.js';
import { runEvaluator } from './evaluator.js';

/** A candidate failed the pipeline's quality gate: `reason` names the bound it missed, with both figures. */
export class GateFailure extends Error {
  constructor(readonly reason: string) {
    super(`quality gate: ${reason}`);
    this.name = 'GateFailure';
  }
}

/** What the gate reads of a candidate: the merge's retention row ρ[t][·] and its complete version folder. */
export interface GateCandidate {
  /** the checkpoints of its lineage, in merge order, the new one last */
  lineage: readonly Pick<Checkpoint, 'name'>[];
  retention: readonly { task: number; rho: number }[];
  dir: string;
}

/** A candidate's figures as the gate measured them (scores: the evaluator's, reused for the version's record). */
export interface GateMeasure {
  scores: Record<string, number> | null;
}

const fmt = (x: number) => (Math.round(x * 10_000) / 10_000).toString();

/**
 * The quality gate (docs/operations.md), run on the staging folder before it becomes a numbered
 * version: ρ[t][i] ≥ min_retention for every merged task (data-free), and with an evaluator: the
 * average and each task's accuracy over the lineage's tasks, and forgetting (a task's best score
 * in this lineage's evaluated versions minus its score now) ≤ max_forgetting. An evaluator that
 * fails here fails the merge (retried with backoff): the gate cannot pass what it could not measure.
 */
export async function checkGate(cfg: PipelineConfig, store: Store, c: GateCandidate): Promise<GateMeasure> {
  const gate = cfg.gate;
  if (gate?.min_retention !== undefined) {
    const worst = c.retention.reduce<{ task: number; rho: number } | null>(
      (w, r) => (!w || r.rho < w.rho ? r : w),
      null,
    );
    if (worst && worst.rho < gate.min_retention)
      throw new GateFailure(`retention of task ${worst.task} ${fmt(worst.rho)} < ${fmt(gate.min_retention)}`);
  }
  const accuracyBounds =
    gate && [gate.min_average_accuracy, gate.min_task_accuracy, gate.max_forgetting].some((b) => b !== undefined);
  // without accuracy bounds the evaluator runs after publication, where its failure only warns
  if (!gate || !accuracyBounds || !cfg.evaluator) return { scores: null };
  const scores = await runEvaluator(cfg.evaluator, c.dir);
  const tasks = lineageTasks(c.lineage, scores);
  if (gate.min_average_accuracy !== undefined && tasks.length) {
    const avg = tasks.reduce((a, t) => a + scores[t]!, 0) / tasks.length;
    if (avg < gate.min_average_accuracy)
      throw new GateFailure(`average accuracy ${fmt(avg)} < ${fmt(gate.min_average_accuracy)}`);
  }
  if (gate.min_task_accuracy !== undefined)
    for (const t of tasks)
      if (scores[t]! < gate.min_task_accuracy)
        throw new GateFailure(`accuracy of ${t} ${fmt(scores[t]!)} < ${fmt(gate.min_task_accuracy)}`);
  if (gate.max_forgetting !== undefined) {
    const best = bestScores(store, cfg.name);
    for (const t of tasks) {
      const drop = (best.get(t) ?? -Infinity) - scores[t]!;
      if (drop > gate.max_forgetting)
        throw new GateFailure(`forgetting of ${t} ${fmt(drop)} > ${fmt(gate.max_forgetting)}`);
    }
  }
  return { scores };
}

/**
 * The evaluator's tasks that belong to the lineage (a task named like a checkpoint, with or
 * without `.safetensors`); all of its tasks when none match (an evaluator with its own names).
 */
function lineageTasks(lineage: GateCandidate['lineage'], scores: Record<string, number>): string[] {
  const names = new Set(lineage.flatMap((c) => [c.name, c.name.replace(/\.safetensors$/, '')]));
  const matched = Object.keys(scores).filter((t) => names.has(t));
  return matched.length ? matched : Object.keys(scores);
}

/** Each task's best score over the evaluated versions of the lineage the pipeline holds now. */
function bestScores(store: Store, pipeline: string): Map<string, number> {
  const best = new Map<string, number>();
  for (const v of store.lineageVersions(pipeline))
    for (const e of store.evaluations(pipeline, v.number))
      best.set(e.task, Math.max(best.get(e.task) ?? -Infinity, e.score));
  return best;
}
