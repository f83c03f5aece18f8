import type { Command } from 'commander';
import type { MergeProgress, PipelineStatus } from '../store/index.js';
import { fmtEngine, fmtGpu, pipelineNames, printJson, table, withInspection } from './inspect-common.js';

/** `cmerge status --json`: one entry per pipeline, these keys exactly (scripts depend on them). */
export interface StatusEntry {
  name: string;
  current_version: number | null;
  queued: number;
  current_merge: { checkpoint: string; step: number; started_at: string; progress: MergeProgress | null } | null;
  retrying: PipelineStatus['retrying'];
  rejected: { name: string; reason: string }[];
  /** the engine of the last merge (step, engine info, GPU figures or null); null before the first */
  engine: PipelineStatus['engine'];
}

/** ", update 45 %" */
function progressText(p: MergeProgress | null): string {
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
      'per pipeline: current version, queue, the merge in progress, rejected checkpoints (reads the database; the daemon may run)',
    )
    .requiredOption('--config <file>', "the daemon's YAML config")
    .option('--json', 'print {pipelines: [...]} on stdout')
    .action(async (o: { config: string; json?: boolean }) => {
      await withInspection(o.config, (i) => {
        const { store } = i;
        const names = pipelineNames(i);
        const rows = store.status(names);
        const entries: StatusEntry[] = rows.map((s) => ({
          name: s.name,
          current_version: s.current_version,
          queued: s.queued,
          current_merge: s.current_merge && {
            checkpoint: s.current_merge.checkpoint,
            step: s.current_merge.step,
            started_at: s.current_merge.started_at,
            progress: s.current_merge.progress,
          },
          retrying: s.retrying,
          rejected: s.rejected.map((r) => ({ name: r.name, reason: r.reason })),
          engine: s.engine,
        }));
        if (o.json) return printJson({ pipelines: entries });

        const configured = new Map(i.config.pipelines.map((p) => [p.name, p.engine.name]));
        const queuedNames = new Map(names.map((n) => [n, store.queued(n).map((c) => c.name)]));
        process.stdout.write(
          table(
            ['PIPELINE', 'VERSION', 'QUEUED', 'MERGING', 'REJECTED'],
            entries.map((e) => [
              e.name,
              e.current_version === null ? '-' : String(e.current_version),
              String(e.queued),
              e.current_merge
                ? `${e.current_merge.checkpoint} (step ${e.current_merge.step}${progressText(e.current_merge.progress)}, since ${e.current_merge.started_at})`
                : '-',
              String(e.rejected.length),
            ]),
          ),
        );
        for (const e of entries) {
          process.stdout.write(`\n${e.name}: ${engineLine(e.engine, configured.get(e.name))}\n`);
          const q = queuedNames.get(e.name) ?? [];
          if (q.length) process.stdout.write(`\n${e.name}: queued, in merge order: ${q.join(', ')}\n`);
          const f = e.retrying;
          if (f)
            process.stdout.write(
              `\n${e.name}: merge ${f.step} (${f.checkpoint}) failed ${f.attempts}× (retried with backoff), last at ${f.last_at}: ${f.last_error}\n`,
            );
          if (e.rejected.length) {
            process.stdout.write(`\n${e.name}: rejected\n`);
            for (const r of e.rejected) process.stdout.write(`  ${r.name}: ${r.reason}\n`);
          }
        }
      });
    });
}
