import type { Command } from 'commander';
import { waitingReasonText, type ProgressRecord } from '../store/index.js';
import { statusView } from '../store/views.js';
import {
  fmtEngine,
  fmtGpu,
  pipelineNames,
  printJson,
  table,
  withInspection,
  type Inspection,
} from './inspect-common.js';

/** `cmerge status --json`: one entry per pipeline, these keys exactly (scripts depend on them; the API's GET /v1/pipelines is the same). */
export type StatusEntry = ReturnType<typeof statusView>['pipelines'][number];

/** "3" or, after a rollback, "3 (latest 5)"; "paused" when merging is paused */
function versionCell(e: StatusEntry): string {
  const v = e.current_version === null ? '-' : String(e.current_version);
  const latest =
    e.latest_version !== null && e.latest_version !== e.current_version ? ` (latest ${e.latest_version})` : '';
  return `${v}${latest}${e.paused ? ', paused' : ''}`;
}

/** ", update 45 %" */
function progressText(p: ProgressRecord | null): string {
  return p && p.total > 0 ? `, ${p.phase} ${Math.floor((100 * p.done) / p.total)} %` : '';
}

/** "engine cuda on 0: NVIDIA H200 (...) (last merge, step 3: GPU 2.10 s, peak device memory 1.2 GiB), configured auto" */
function engineLine(e: StatusEntry['engine'], configured: string | undefined): string {
  const conf = configured ? `configured ${configured}` : 'not in the config';
  if (!e) return `engine - (no merge yet), ${conf}`;
  const gpu = fmtGpu(e.gpu);
  return `engine ${fmtEngine(e.info)} (last merge, step ${e.step}${gpu ? `: ${gpu}` : ''}), ${conf}`;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      'per pipeline: current version, queue, the merge in progress, rejected checkpoints, entries waiting to be complete (reads the database; the daemon may run)',
    )
    .requiredOption('--config <file>', "the daemon's YAML config")
    .option('--json', 'print {pipelines: [...]} on stdout')
    .action(async (opts: { config: string; json?: boolean }) => {
      await withInspection(opts.config, (inspection) => {
        const names = pipelineNames(inspection);
        const entries = statusView(inspection.store, names).pipelines;
        if (opts.json) return printJson({ pipelines: entries });
        printStatusText(inspection, names, entries);
      });
    });
}

/** The table, then per pipeline its engine, queue, retried merge and rejected checkpoints. */
function printStatusText({ config, store }: Inspection, names: string[], entries: StatusEntry[]): void {
  const configured = new Map(config.pipelines.map((p) => [p.name, p.engine.name]));
  const queuedNames = new Map(names.map((name) => [name, store.queued(name).map((c) => c.name)]));
  process.stdout.write(
    table(
      ['PIPELINE', 'VERSION', 'QUEUED', 'MERGING', 'REJECTED', 'WAITING'],
      entries.map((e) => [
        e.name,
        versionCell(e),
        String(e.queued),
        e.current_merge
          ? `${e.current_merge.checkpoint} (step ${e.current_merge.step}${progressText(e.current_merge.progress)}, since ${e.current_merge.started_at})`
          : '-',
        String(e.rejected.length),
        String(e.waiting.length),
      ]),
    ),
  );
  for (const e of entries) {
    process.stdout.write(`\n${e.name}: ${engineLine(e.engine, configured.get(e.name))}\n`);
    const queued = queuedNames.get(e.name) ?? [];
    if (queued.length) process.stdout.write(`\n${e.name}: queued, in merge order: ${queued.join(', ')}\n`);
    if (e.paused) process.stdout.write(`\n${e.name}: merging PAUSED since ${e.paused.since}: ${e.paused.reason}\n`);
    const failing = e.retrying;
    if (failing)
      process.stdout.write(
        `\n${e.name}: merge ${failing.step} (${failing.checkpoint}) failed ${failing.attempts}× (retried with backoff), last at ${failing.last_at}: ${failing.last_error}\n`,
      );
    if (e.rejected.length) {
      process.stdout.write(`\n${e.name}: rejected\n`);
      for (const r of e.rejected) process.stdout.write(`  ${r.name}: ${r.reason}\n`);
    }
    printWaiting(e);
  }
}

/** "  big.safetensors: still growing, 200 of 1234 bytes, since ..., last change ..." */
function printWaiting(e: StatusEntry): void {
  if (!e.waiting.length) return;
  process.stdout.write(`\n${e.name}: waiting for incomplete entries\n`);
  for (const w of e.waiting) {
    const of = w.expected_size === null ? '' : ` of ${w.expected_size}`;
    process.stdout.write(
      `  ${w.name}: ${waitingReasonText(w.reason)}, ${w.size}${of} bytes, since ${w.since}, last change ${w.last_change}\n`,
    );
  }
}
