import type { Command } from 'commander';
import { readManifest } from '../publish/index.js';
import {
  gpuFigures,
  type EngineRecord,
  type GpuFigures,
  type TensorMetric,
  type VersionDetail,
} from '../store/index.js';
import { UsageError } from './errors.js';
import {
  fmtEngine,
  fmtGpu,
  fmtMs,
  fmtNum,
  fmtScalars,
  positiveInt,
  printJson,
  shortSha,
  table,
  withInspection,
} from './inspect-common.js';

/** What the version folder's manifest.json says, in brief (the full file is next to the model). */
export interface ManifestSummary {
  format: string;
  method: string;
  params: Record<string, unknown>;
  engine: string;
  cmerge_version: string;
  base: { path: string; sha256: string };
  created_at: string;
  checkpoints: number;
  files: number;
  total_bytes: number | null;
  metrics: Record<string, unknown>;
}

type Stat = { n: number; min: number; mean: number; max: number } | null;
const NUMERIC = ['tv_norm', 'merged_norm', 'removed_share', 'interference', 'split_rank'] as const;

export interface TensorSummary {
  tensors: number;
  /** tensor count per kind (linear / other / unknown) */
  kinds: Record<string, number>;
  /** over the tensors that recorded the metric */
  stats: Record<(typeof NUMERIC)[number], Stat>;
  /** the few tensors whose update lies most in the old tasks' subspace */
  most_interference: { tensor: string; interference: number }[];
}

export function registerShow(program: Command): void {
  program
    .command('show')
    .description(
      'one version: manifest, checkpoints in merge order, metrics, retention row, notifications, evaluations',
    )
    .requiredOption('--config <file>', "the daemon's YAML config")
    .option('--json', 'print the version as JSON on stdout')
    .argument('<pipeline>', 'pipeline name')
    .argument('<version>', 'version number')
    .action(async (pipeline: string, versionArg: string, opts: { config: string; json?: boolean }) => {
      const number = positiveInt(versionArg, 'version', (msg) => new UsageError(msg));
      await withInspection(opts.config, async ({ store }) => {
        const detail = store.show(pipeline, number);
        if (!detail) throw new Error(`no version ${number} of pipeline "${pipeline}" is recorded`);
        const shown = showOutput(pipeline, detail, await manifestSummary(detail));
        if (opts.json) return printJson(shown);
        printText(shown);
      });
    });
}

/** `cmerge show --json`: the version's row, its manifest in brief, its merge and everything recorded. */
function showOutput(
  pipeline: string,
  detail: VersionDetail,
  { manifest, manifest_error }: { manifest: ManifestSummary | null; manifest_error: string | null },
) {
  const { version, merge } = detail;
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
    // the engine the version was made with: name, device, library versions, TF32
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

async function manifestSummary(
  detail: VersionDetail,
): Promise<{ manifest: ManifestSummary | null; manifest_error: string | null }> {
  if (detail.version.removed_at)
    return { manifest: null, manifest_error: `version folder removed by retention at ${detail.version.removed_at}` };
  try {
    const manifest = await readManifest(detail.version.path);
    const sizes = Object.values(manifest.file_sizes ?? {});
    return {
      manifest: {
        format: manifest.format,
        method: manifest.method,
        params: manifest.params,
        engine: manifest.engine,
        cmerge_version: manifest.cmerge_version,
        base: manifest.base,
        created_at: manifest.created_at,
        checkpoints: manifest.checkpoints.length,
        files: Object.keys(manifest.files).length,
        total_bytes: sizes.length ? sizes.reduce((a, b) => a + b, 0) : null,
        metrics: manifest.metrics,
      },
      manifest_error: null,
    };
  } catch (e) {
    return { manifest: null, manifest_error: (e as Error).message };
  }
}

export function summarize(tensors: readonly Required<TensorMetric>[]): TensorSummary {
  const kinds: Record<string, number> = {};
  for (const t of tensors) kinds[t.kind ?? 'unknown'] = (kinds[t.kind ?? 'unknown'] ?? 0) + 1;
  const stats = {} as TensorSummary['stats'];
  for (const metric of NUMERIC) {
    const values = tensors
      .map((t) => t[metric])
      .filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    stats[metric] = values.length
      ? {
          n: values.length,
          min: Math.min(...values),
          mean: values.reduce((a, b) => a + b, 0) / values.length,
          max: Math.max(...values),
        }
      : null;
  }
  const most_interference = tensors
    .filter((t): t is Required<TensorMetric> & { interference: number } => typeof t.interference === 'number')
    .sort((a, b) => b.interference - a.interference)
    .slice(0, 5)
    .map((t) => ({ tensor: t.tensor, interference: t.interference }));
  return { tensors: tensors.length, kinds, stats, most_interference };
}

type ShowOut = {
  pipeline: string;
  version: number;
  parent: number | null;
  step: number;
  path: string;
  created_at: string;
  pinned: boolean;
  removed_at: string | null;
  engine: EngineRecord | null;
  manifest: ManifestSummary | null;
  manifest_error: string | null;
  merge: {
    method: string;
    params: Record<string, unknown>;
    engine: string | null;
    timings: Record<string, number> | null;
    scalars: Record<string, number> | null;
    started_at: string;
    finished_at: string | null;
    gpu: GpuFigures | null;
  };
  checkpoints: VersionDetail['checkpoints'];
  model_metrics: Record<string, number | null>;
  tensor_summary: TensorSummary;
  retention: VersionDetail['retention'];
  notifications: VersionDetail['notifications'];
  evaluations: VersionDetail['evaluations'];
};

const write = (text: string): void => void process.stdout.write(text);

function printText(shown: ShowOut): void {
  printHeader(shown);
  write('\ncheckpoints (merge order)\n');
  write(
    table(
      ['STEP', 'NAME', 'SHA256', 'DTYPE', 'ADAPTER', 'MERGED_AT'],
      shown.checkpoints.map((c) => [
        String(c.step),
        c.name,
        shortSha(c.sha256),
        c.dtype ?? '-',
        c.adapter ? `lora r=${c.adapter.r} alpha=${c.adapter.alpha}, ${c.adapter.target_tensors} tensors` : '-',
        c.merged_at ?? '-',
      ]),
    ),
  );
  printMetrics(shown);
  printRecords(shown);
}

/** The version line, then path, method, engine, GPU, scalars, merge time and manifest. */
function printHeader(shown: ShowOut): void {
  const { merge } = shown;
  write(
    `${shown.pipeline} version ${shown.version} (step ${shown.step}, parent ${shown.parent ?? '-'})${shown.pinned ? ' pinned' : ''}${shown.removed_at ? ` removed ${shown.removed_at}` : ''}\n`,
  );
  write(`  path        ${shown.path}\n  created_at  ${shown.created_at}\n`);
  write(`  method      ${merge.method} ${JSON.stringify(merge.params)}\n`);
  const versions = Object.entries(shown.engine?.versions ?? {})
    .map(([library, version]) => `${library} ${version}`)
    .join(', ');
  write(
    `  engine      ${shown.engine ? fmtEngine(shown.engine) : (merge.engine ?? '-')}${versions ? ` (${versions})` : ''}\n`,
  );
  if (merge.gpu) write(`  gpu         ${fmtGpu(merge.gpu)}\n`);
  write(`  scalars     ${fmtScalars(merge.scalars)}\n`);
  const total = merge.finished_at ? Date.parse(merge.finished_at) - Date.parse(merge.started_at) : null;
  // the daemon records seconds under *_s keys; other keys are milliseconds (the store's convention)
  const phases = Object.entries(merge.timings ?? {})
    .map(([key, value]) => `${key.replace(/_(m?s)$/, '')} ${fmtMs(/_s$/.test(key) ? value * 1000 : value)}`)
    .join(', ');
  write(`  merge time  ${fmtMs(total)}${phases ? ` (${phases})` : ''}\n`);
  const { manifest } = shown;
  if (manifest) {
    write(
      `  manifest    ${manifest.files} files${manifest.total_bytes === null ? '' : `, ${manifest.total_bytes} bytes`}, base ${manifest.base.path} (${shortSha(manifest.base.sha256)}), cmerge ${manifest.cmerge_version}\n`,
    );
  } else {
    write(`  manifest    unavailable: ${shown.manifest_error}\n`);
  }
}

/** Model metrics, then the per-tensor summary. */
function printMetrics(shown: ShowOut): void {
  const modelMetrics = Object.entries(shown.model_metrics);
  if (modelMetrics.length) {
    write('\nmodel metrics\n');
    for (const [name, value] of modelMetrics) write(`  ${name.padEnd(28)} ${fmtNum(value, 6)}\n`);
  }

  const summary = shown.tensor_summary;
  if (!summary.tensors) return;
  write(
    `\nper-tensor metrics: ${summary.tensors} tensors (${Object.entries(summary.kinds)
      .map(([kind, count]) => `${count} ${kind}`)
      .join(', ')})\n`,
  );
  write(
    table(
      ['METRIC', 'N', 'MIN', 'MEAN', 'MAX'],
      Object.entries(summary.stats)
        .filter(([, stat]) => stat)
        .map(([metric, stat]) => [metric, String(stat!.n), fmtNum(stat!.min), fmtNum(stat!.mean), fmtNum(stat!.max)]),
    ),
  );
  if (summary.most_interference.length)
    write(
      `  most interference: ${summary.most_interference.map((t) => `${t.tensor} ${fmtNum(t.interference, 3)}`).join(', ')}\n`,
    );
}

/** Retention row, notification attempts and evaluations, each only when there are any. */
function printRecords(shown: ShowOut): void {
  if (shown.retention.length) {
    write(`\nretention ρ[${shown.step}][i] (share of task i kept)\n`);
    write(
      table(
        ['TASK', 'RHO'],
        shown.retention.map((r) => [String(r.task), fmtNum(r.rho)]),
      ),
    );
  }
  if (shown.notifications.length) {
    write('\nnotifications\n');
    write(
      table(
        ['NOTIFIER', 'ATTEMPT', 'OUTCOME', 'DURATION', 'AT', 'DETAIL'],
        shown.notifications.map((n) => [
          n.notifier,
          String(n.attempt),
          n.outcome,
          fmtMs(n.duration_ms),
          n.at,
          n.detail ?? '',
        ]),
      ),
    );
  }
  if (shown.evaluations.length) {
    write('\nevaluations\n');
    write(
      table(
        ['TASK', 'SCORE', 'EVALUATED_AT'],
        shown.evaluations.map((e) => [e.task, fmtNum(e.score), e.evaluated_at]),
      ),
    );
  }
}
