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
    .action(async (pipeline: string, versionArg: string, o: { config: string; json?: boolean }) => {
      const number = positiveInt(versionArg, 'version', (m) => new UsageError(m));
      await withInspection(o.config, async ({ store }) => {
        const d = store.show(pipeline, number);
        if (!d) throw new Error(`no version ${number} of pipeline "${pipeline}" is recorded`);
        const { manifest, manifest_error } = await manifestSummary(d);
        const out = {
          pipeline,
          version: d.version.number,
          parent: d.version.parent,
          step: d.version.step,
          path: d.version.path,
          created_at: d.version.created_at,
          pinned: d.version.pinned,
          removed_at: d.version.removed_at,
          manifest_sha256: d.version.manifest_sha256,
          // the engine the version was made with: name, device, library versions, TF32
          engine: d.version.engine,
          manifest,
          manifest_error,
          merge: {
            id: d.merge.id,
            method: d.merge.method,
            params: d.merge.params,
            engine: d.merge.engine,
            started_at: d.merge.started_at,
            finished_at: d.merge.finished_at,
            timings: d.merge.timings,
            peak_rss: d.merge.peak_rss,
            scalars: d.merge.scalars,
            state_generation: d.merge.state_generation,
            gpu: gpuFigures(d.merge),
          },
          checkpoints: d.checkpoints,
          model_metrics: d.model_metrics,
          tensor_summary: summarize(d.tensor_metrics),
          tensor_metrics: d.tensor_metrics,
          retention: d.retention,
          notifications: d.notifications,
          evaluations: d.evaluations,
        };
        if (o.json) return printJson(out);
        printText(out);
      });
    });
}

async function manifestSummary(
  d: VersionDetail,
): Promise<{ manifest: ManifestSummary | null; manifest_error: string | null }> {
  if (d.version.removed_at)
    return { manifest: null, manifest_error: `version folder removed by retention at ${d.version.removed_at}` };
  try {
    const m = await readManifest(d.version.path);
    const sizes = Object.values(m.file_sizes ?? {});
    return {
      manifest: {
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
      },
      manifest_error: null,
    };
  } catch (e) {
    return { manifest: null, manifest_error: (e as Error).message };
  }
}

export function summarize(ts: readonly Required<TensorMetric>[]): TensorSummary {
  const kinds: Record<string, number> = {};
  for (const t of ts) kinds[t.kind ?? 'unknown'] = (kinds[t.kind ?? 'unknown'] ?? 0) + 1;
  const stats = {} as TensorSummary['stats'];
  for (const k of NUMERIC) {
    const xs = ts.map((t) => t[k]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    stats[k] = xs.length
      ? { n: xs.length, min: Math.min(...xs), mean: xs.reduce((a, b) => a + b, 0) / xs.length, max: Math.max(...xs) }
      : null;
  }
  const most_interference = ts
    .filter((t): t is Required<TensorMetric> & { interference: number } => typeof t.interference === 'number')
    .sort((a, b) => b.interference - a.interference)
    .slice(0, 5)
    .map((t) => ({ tensor: t.tensor, interference: t.interference }));
  return { tensors: ts.length, kinds, stats, most_interference };
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

function printText(o: ShowOut): void {
  const w = (s: string) => process.stdout.write(s);
  w(
    `${o.pipeline} version ${o.version} (step ${o.step}, parent ${o.parent ?? '-'})${o.pinned ? ' pinned' : ''}${o.removed_at ? ` removed ${o.removed_at}` : ''}\n`,
  );
  w(`  path        ${o.path}\n  created_at  ${o.created_at}\n`);
  w(`  method      ${o.merge.method} ${JSON.stringify(o.merge.params)}\n`);
  const versions = Object.entries(o.engine?.versions ?? {})
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  w(`  engine      ${o.engine ? fmtEngine(o.engine) : (o.merge.engine ?? '-')}${versions ? ` (${versions})` : ''}\n`);
  if (o.merge.gpu) w(`  gpu         ${fmtGpu(o.merge.gpu)}\n`);
  w(`  scalars     ${fmtScalars(o.merge.scalars)}\n`);
  const total = o.merge.finished_at ? Date.parse(o.merge.finished_at) - Date.parse(o.merge.started_at) : null;
  // the daemon records seconds under *_s keys; other keys are milliseconds (the store's convention)
  const phases = Object.entries(o.merge.timings ?? {})
    .map(([k, v]) => `${k.replace(/_(m?s)$/, '')} ${fmtMs(/_s$/.test(k) ? v * 1000 : v)}`)
    .join(', ');
  w(`  merge time  ${fmtMs(total)}${phases ? ` (${phases})` : ''}\n`);
  if (o.manifest) {
    const m = o.manifest;
    w(
      `  manifest    ${m.files} files${m.total_bytes === null ? '' : `, ${m.total_bytes} bytes`}, base ${m.base.path} (${shortSha(m.base.sha256)}), cmerge ${m.cmerge_version}\n`,
    );
  } else {
    w(`  manifest    unavailable: ${o.manifest_error}\n`);
  }

  w('\ncheckpoints (merge order)\n');
  w(
    table(
      ['STEP', 'NAME', 'SHA256', 'MERGED_AT'],
      o.checkpoints.map((c) => [String(c.step), c.name, shortSha(c.sha256), c.merged_at ?? '-']),
    ),
  );

  const mm = Object.entries(o.model_metrics);
  if (mm.length) {
    w('\nmodel metrics\n');
    for (const [k, v] of mm) w(`  ${k.padEnd(28)} ${fmtNum(v, 6)}\n`);
  }

  const ts = o.tensor_summary;
  if (ts.tensors) {
    w(
      `\nper-tensor metrics: ${ts.tensors} tensors (${Object.entries(ts.kinds)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ')})\n`,
    );
    w(
      table(
        ['METRIC', 'N', 'MIN', 'MEAN', 'MAX'],
        Object.entries(ts.stats)
          .filter(([, s]) => s)
          .map(([k, s]) => [k, String(s!.n), fmtNum(s!.min), fmtNum(s!.mean), fmtNum(s!.max)]),
      ),
    );
    if (ts.most_interference.length)
      w(
        `  most interference: ${ts.most_interference.map((t) => `${t.tensor} ${fmtNum(t.interference, 3)}`).join(', ')}\n`,
      );
  }

  if (o.retention.length) {
    w(`\nretention ρ[${o.step}][i] (share of task i kept)\n`);
    w(
      table(
        ['TASK', 'RHO'],
        o.retention.map((r) => [String(r.task), fmtNum(r.rho)]),
      ),
    );
  }
  if (o.notifications.length) {
    w('\nnotifications\n');
    w(
      table(
        ['NOTIFIER', 'ATTEMPT', 'OUTCOME', 'DURATION', 'AT', 'DETAIL'],
        o.notifications.map((n) => [
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
  if (o.evaluations.length) {
    w('\nevaluations\n');
    w(
      table(
        ['TASK', 'SCORE', 'EVALUATED_AT'],
        o.evaluations.map((e) => [e.task, fmtNum(e.score), e.evaluated_at]),
      ),
    );
  }
}
