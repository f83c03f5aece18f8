import type { MergeReport, StepReport } from '../merge/runner.js';
import { generationDir } from '../merge/state.js';
import type { CommitMergeInput, TensorMetric } from '../store/index.js';

/**
 * The figures recorded for one merge (docs/architecture.md): per tensor ‖τ‖, ‖M_t − θ0‖ and the method's
 * own (OPCM split rank and removed share, DOP losses and weights); per model the norm-weighted
 * aggregates and the method's scalars (λ ...).
 */
export function mergeMetrics(
  report: MergeReport,
  step: StepReport,
): { scalars: Record<string, number>; model: Record<string, number | null>; tensors: TensorMetric[] } {
  const tensors: TensorMetric[] = [];
  let removedSq = 0,
    tauSq = 0,
    mergedSq = 0;
  for (const [tensor, figures] of Object.entries(step.tensors)) {
    const { task_norm, split_rank, removed_share, interference, ...extra } = figures;
    const merged = report.merged_norms[tensor] ?? null;
    tensors.push({
      tensor,
      kind: step.kinds[tensor] ?? null,
      tv_norm: task_norm ?? null,
      merged_norm: merged,
      removed_share: removed_share ?? null,
      interference: interference ?? null,
      split_rank: split_rank ?? null,
      extra: Object.keys(extra).length ? extra : null,
    });
    tauSq += (task_norm ?? 0) ** 2;
    if (removed_share !== undefined) removedSq += (removed_share * (task_norm ?? 0)) ** 2;
    if (merged !== null) mergedSq += merged ** 2;
  }
  const scalars: Record<string, number> = {};
  for (const [name, value] of Object.entries(step.scalars)) if (typeof value === 'number') scalars[name] = value;
  const model: Record<string, number | null> = {
    task_vector_norm: step.task_vector_norm,
    merged_task_vector_norm: Object.keys(report.merged_norms).length ? Math.sqrt(mergedSq) : null,
    // OPCM: the share of the new task judged interference, norm-weighted over linear tensors
    removed_share: removedSq > 0 && tauSq > 0 ? Math.sqrt(removedSq / tauSq) : null,
    // OPCM: the share of the update M_t − M_{t−1} inside the previous merged model's dominant subspace
    interference: typeof step.summary.interference === 'number' ? step.summary.interference : null,
    ...scalars,
  };
  return { scalars, model, tensors };
}

/** What SQLite records of a finished merge or replay (its last step): everything commitMerge takes but the merge id. */
export function mergeRecord(
  outcome: {
    report: MergeReport;
    peakRssBytes: number;
    metrics: ReturnType<typeof mergeMetrics>;
    mergeSeconds: number;
  },
  stateDir: string,
  generation: number,
  totalSeconds: number,
): Omit<CommitMergeInput, 'merge_id'> {
  const { report, peakRssBytes, metrics, mergeSeconds } = outcome;
  const last = report.steps[report.steps.length - 1]!;
  return {
    checkpoint_dtype: last.dtype,
    state: { generation, path: generationDir(stateDir, generation), sha256: last.state_sha256 },
    engine: report.engine,
    engine_info: report.engine_info,
    gpu: report.gpu,
    timings: {
      merge_s: mergeSeconds,
      update_s: last.seconds.update,
      analysis_s: last.seconds.analysis,
      output_s: report.seconds.output,
      total_s: totalSeconds,
    },
    peak_rss: peakRssBytes,
    scalars: metrics.scalars,
    tensor_metrics: metrics.tensors,
    model_metrics: metrics.model,
    retention: report.retention,
  };
}
