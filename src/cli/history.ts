import type { Command } from 'commander';
import type { HistoryRow, Merge, Version } from '../store/index.js';
import {
  fmtBytes,
  fmtMs,
  fmtScalars,
  pipelineNames,
  printJson,
  shortSha,
  table,
  withInspection,
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

export function registerHistory(program: Command): void {
  program
    .command('history')
    .description(
      'every merge in order: checkpoint, sha256, step, method, λ and other scalars, timings, published version',
    )
    .requiredOption('--config <file>', "the daemon's YAML config")
    .option('--pipeline <name>', 'only this pipeline')
    .option('--json', 'print {history: [...]} on stdout')
    .action(async (o: { config: string; pipeline?: string; json?: boolean }) => {
      await withInspection(o.config, (i) => {
        const { store } = i;
        const names = pipelineNames(i);
        if (o.pipeline !== undefined && !names.includes(o.pipeline)) {
          throw new Error(`unknown pipeline "${o.pipeline}" (known: ${names.join(', ') || 'none'})`);
        }
        // The history rows lack timings and publication times; join them here from the same store.
        const merges = new Map<number, Merge>(store.merges(o.pipeline).map((m) => [m.id, m]));
        const versions = new Map<number, Version>();
        for (const p of o.pipeline === undefined ? names : [o.pipeline]) {
          for (const v of store.versions(p, { includeRemoved: true })) versions.set(v.merge_id, v);
        }
        const entries: HistoryEntry[] = store.history(o.pipeline).map((r) => {
          const m = merges.get(r.merge_id);
          return {
            ...r,
            params: m?.params ?? {},
            timings: m?.timings ?? null,
            peak_rss: m?.peak_rss ?? null,
            created_at: versions.get(r.merge_id)?.created_at ?? null,
          };
        });
        if (o.json) return printJson({ history: entries });
        if (!entries.length) return void process.stdout.write('no merges recorded\n');
        process.stdout.write(
          table(
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
              e.checkpoint,
              shortSha(e.sha256),
              e.method,
              engineCell(e),
              e.gpu ? `${fmtMs(e.gpu.gpu_seconds * 1000)}, ${fmtBytes(e.gpu.peak_device_bytes)}` : '-',
              fmtScalars(e.scalars),
              fmtMs(e.duration_ms),
              e.created_at ?? (e.error ? `(${e.error})` : '-'),
            ]),
          ),
        );
      });
    });
}

/** "cuda:0", "native": the device ordinal only (`show` has the whole device line). */
function engineCell(e: HistoryEntry): string {
  const name = e.engine_info?.name ?? e.engine ?? '-';
  const ordinal = e.engine_info?.device?.match(/^(\d+)/)?.[1];
  return ordinal === undefined ? name : `${name}:${ordinal}`;
}
