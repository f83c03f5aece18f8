import type { Command } from 'commander';
import type { AccuracySummary } from '../store/index.js';
import { historyView } from '../store/views.js';
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
} from './inspect-common.js';

/** One merge attempt (failed and interrupted ones too) and the version it became, if any (the API's history rows). */
export type HistoryEntry = ReturnType<typeof historyView>['history'][number];

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
        const names = pipelineNames(inspection);
        if (opts.pipeline !== undefined && !names.includes(opts.pipeline))
          throw new Error(`unknown pipeline "${opts.pipeline}" (known: ${names.join(', ') || 'none'})`);
        const { history: entries, pipelines } = historyView(inspection.store, names, opts.pipeline);
        if (opts.json) return printJson({ history: entries, pipelines });
        if (!entries.length) return void process.stdout.write('no merges recorded\n');
        process.stdout.write(historyTable(entries) + pipelines.map(accuracyText).join(''));
      });
    });
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
