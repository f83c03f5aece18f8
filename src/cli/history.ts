import type { Command } from 'commander';
import type { AccuracySummary, HistoryRow, Merge, Version } from '../store/index.js';
import {
  fmtBytes,
  fmtMs,
  fmtNum,
  fmtScalars,
  pipelineNames,
  printJson,
  shortSha,
  table,
  withInspection,
  type Inspection,
} from './inspect-common.js';

/** One merge attempt (failed and interrupted ones too) and the version it became, if any. */
export interface HistoryEntry extends HistoryRow {
  params: Record<string, unknown>;
  /** per phase, ms */
  timings: Record<string, number> | null;
  peak_rss: number | null;
  /** when the version was published; null if the merge has none (yet) */
  created_at: string | null;
}

/**
 * Per pipeline, the store's accuracy summary (`accuracySummary`, computed there, not here): the
 * matrix R[t][i] of evaluator scores (rows: merge steps with evaluations; columns: tasks), and with
 * T the last step,
 * - average_accuracy (ACC): mean over the merged tasks of R[T][i];
 * - bwt (backward transfer): mean over tasks i < T of (R[T][i] − R[i][i]), negative when merging
 *   later tasks lost accuracy on earlier ones;
 * - forgetting: mean over tasks i < T of (max_{t<T} R[t][i] − R[T][i]), the drop from each task's
 *   best accuracy before the last step.
 * Each is null when there is nothing to average.
 */
export interface PipelineAccuracy {
  name: string;
  accuracy: AccuracySummary;
}

interface HistoryOptions {
  config: string;
  pipeline?: string;
  json?: boolean;
}

export function registerHistory(program: Command): void {
  program
    .command('history')
    .description(
      'every merge in order: checkpoint (and what it was, if a LoRA adapter), sha256, step, method, λ and other scalars, timings, published version',
    )
    .requiredOption('--config <file>', "the daemon's YAML config")
    .option('--pipeline <name>', 'only this pipeline')
    .option('--json', 'print {history: [...], pipelines: [{name, accuracy}]} on stdout')
    .action(async (opts: HistoryOptions) => {
      await withInspection(opts.config, (inspection) => {
        const entries = historyEntries(inspection, opts.pipeline);
        const pipelines = accuracies(inspection, opts.pipeline);
        if (opts.json) return printJson({ history: entries, pipelines });
        if (!entries.length) return void process.stdout.write('no merges recorded\n');
        process.stdout.write(historyTable(entries) + pipelines.map(accuracyText).join(''));
      });
    });
}

/** The store's history rows, joined with their merges' timings and their versions' publication times. */
function historyEntries(inspection: Inspection, pipeline: string | undefined): HistoryEntry[] {
  const { store } = inspection;
  const names = pipelineNames(inspection);
  if (pipeline !== undefined && !names.includes(pipeline)) {
    throw new Error(`unknown pipeline "${pipeline}" (known: ${names.join(', ') || 'none'})`);
  }
  const merges = new Map<number, Merge>(store.merges(pipeline).map((merge) => [merge.id, merge]));
  const versions = new Map<number, Version>();
  for (const name of pipeline === undefined ? names : [pipeline]) {
    for (const version of store.versions(name, { includeRemoved: true })) versions.set(version.merge_id, version);
  }
  return store.history(pipeline).map((row) => {
    const merge = merges.get(row.merge_id);
    return {
      ...row,
      params: merge?.params ?? {},
      timings: merge?.timings ?? null,
      peak_rss: merge?.peak_rss ?? null,
      created_at: versions.get(row.merge_id)?.created_at ?? null,
    };
  });
}

/** The accuracy summary of each pipeline shown (`pipeline` already checked by historyEntries). */
function accuracies(inspection: Inspection, pipeline: string | undefined): PipelineAccuracy[] {
  const names = pipeline === undefined ? pipelineNames(inspection) : [pipeline];
  return names.map((name) => ({ name, accuracy: inspection.store.accuracySummary(name) }));
}

/** The accuracy matrix (rows: steps, columns: tasks) and ACC, BWT and forgetting, or a line saying there are none. */
function accuracyText({ name, accuracy: a }: PipelineAccuracy): string {
  if (!a.steps.length) return `\n${name}: no accuracies recorded\n`;
  const matrix = table(
    ['STEP', ...a.tasks],
    a.steps.map((step, row) => [String(step), ...a.matrix[row]!.map((x) => fmtNum(x))]),
  );
  const figures = `ACC ${fmtNum(a.average_accuracy)}  BWT ${fmtNum(a.bwt)}  forgetting ${fmtNum(a.forgetting)}`;
  return `\n${name}: accuracy (rows: merge step, columns: task)\n${matrix}${figures}\n`;
}

function historyTable(entries: HistoryEntry[]): string {
  return table(
    [
      'PIPELINE',
      'STEP',
      'VERSION',
      'STATUS',
      'CHECKPOINT',
      'SHA256',
      'METHOD',
      'ENGINE',
      'GPU',
      'SCALARS',
      'DURATION',
      'CREATED_AT',
    ],
    entries.map((e) => [
      e.pipeline,
      String(e.step),
      e.version === null ? '-' : String(e.version),
      e.status,
      e.adapter ? `${e.checkpoint} (lora r=${e.adapter.r})` : e.checkpoint,
      shortSha(e.sha256),
      e.method,
      engineCell(e),
      e.gpu ? `${fmtMs(e.gpu.gpu_seconds * 1000)}, ${fmtBytes(e.gpu.peak_device_bytes)}` : '-',
      fmtScalars(e.scalars),
      fmtMs(e.duration_ms),
      e.created_at ?? (e.error ? `(${e.error})` : '-'),
    ]),
  );
}

/** "cuda:0", "native": the device ordinal only (`show` has the whole device line). */
function engineCell(e: HistoryEntry): string {
  const name = e.engine_info?.name ?? e.engine ?? '-';
  const ordinal = e.engine_info?.device?.match(/^(\d+)/)?.[1];
  return ordinal === undefined ? name : `${name}:${ordinal}`;
}
