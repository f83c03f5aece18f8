import type { Command } from 'commander';
import { showView } from '../daemon/api/show-view.js';
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
        const shown = await showView(store, pipeline, number);
        if (!shown) throw new Error(`no version ${number} of pipeline "${pipeline}" is recorded`);
        if (opts.json) return printJson(shown);
        printText(shown);
      });
    });
}

/** `cmerge show --json`: the same JSON as the API's GET /v1/pipelines/{p}/versions/{n}. */
type ShowOut = NonNullable<Awaited<ReturnType<typeof showView>>>;

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
