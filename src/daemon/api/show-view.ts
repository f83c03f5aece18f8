import { readManifest } from '../../publish/index.js';
import { gpuFigures, type Store, type TensorMetric, type VersionDetail } from '../../store/index.js';

/**
 * The JSON of `GET /v1/pipelines/{p}/versions/{n}` and of `cmerge show p n --json` (src/cli/show.ts
 * prints this object). Null when the version is not recorded.
 */
export async function showView(store: Store, pipeline: string, number: number) {
  const detail = store.show(pipeline, number);
  if (!detail) return null;
  const { version, merge } = detail;
  const { manifest, manifest_error } = await manifestSummary(detail);
  return {
    pipeline,
    version: version.number,
    parent: version.parent,
    step: version.step,
    path: version.path,
    created_at: version.created_at,
    pinned: version.pinned,
    removed_at: version.removed_at,
    manifest_sha256: version.manifest_sha256,
    engine: version.engine,
    manifest,
    manifest_error,
    merge: {
      id: merge.id,
      method: merge.method,
      params: merge.params,
      engine: merge.engine,
      started_at: merge.started_at,
      finished_at: merge.finished_at,
      timings: merge.timings,
      peak_rss: merge.peak_rss,
      scalars: merge.scalars,
      state_generation: merge.state_generation,
      gpu: gpuFigures(merge),
    },
    checkpoints: detail.checkpoints,
    model_metrics: detail.model_metrics,
    tensor_summary: summarize(detail.tensor_metrics),
    tensor_metrics: detail.tensor_metrics,
    retention: detail.retention,
    notifications: detail.notifications,
    evaluations: detail.evaluations,
  };
}

/** The version folder's manifest.json in brief, or why it cannot be read. */
async function manifestSummary(detail: VersionDetail) {
  if (detail.version.removed_at)
    return { manifest: null, manifest_error: `version folder removed by retention at ${detail.version.removed_at}` };
  try {
    const m = await readManifest(detail.version.path);
    const sizes = Object.values(m.file_sizes ?? {});
    const manifest = {
      format: m.format,
      method: m.method,
      params: m.params,
      engine: m.engine,
      cmerge_version: m.cmerge_version,
      base: m.base,
      created_at: m.created_at,
      checkpoints: m.checkpoints.length,
      files: Object.keys(m.files).length,
      total_bytes: sizes.length ? sizes.reduce((a, b) => a + b, 0) : null,
      metrics: m.metrics,
    };
    return { manifest, manifest_error: null };
  } catch (e) {
    return { manifest: null, manifest_error: (e as Error).message };
  }
}

const NUMERIC = ['tv_norm', 'merged_norm', 'removed_share', 'interference', 'split_rank'] as const;
type Stat = { n: number; min: number; mean: number; max: number } | null;

function stat(values: number[]): Stat {
  if (!values.length) return null;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return { n: values.length, min: Math.min(...values), mean, max: Math.max(...values) };
}

/** Tensor count per kind, min/mean/max of each numeric metric, the five tensors with most interference. */
function summarize(tensors: readonly Required<TensorMetric>[]) {
  const kinds: Record<string, number> = {};
  for (const t of tensors) kinds[t.kind ?? 'unknown'] = (kinds[t.kind ?? 'unknown'] ?? 0) + 1;
  const stats = {} as Record<(typeof NUMERIC)[number], Stat>;
  for (const metric of NUMERIC)
    stats[metric] = stat(
      tensors.map((t) => t[metric]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x)),
    );
  const most_interference = tensors
    .filter((t): t is Required<TensorMetric> & { interference: number } => typeof t.interference === 'number')
    .sort((a, b) => b.interference - a.interference)
    .slice(0, 5)
    .map((t) => ({ tensor: t.tensor, interference: t.interference }));
  return { tensors: tensors.length, kinds, stats, most_interference };
}
