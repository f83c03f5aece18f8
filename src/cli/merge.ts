import type { Command } from 'commander';
import { createEngine } from '../engine/index.js';
import { methodNames } from '../methods/registry.js';
import { runMerge, type MergeReport } from '../merge/runner.js';
import { configureLog } from '../util/log.js';
import { UsageError } from './errors.js';
import { mergeProgress } from './progress.js';

interface MergeOpts {
  base: string;
  state: string;
  method: string;
  param: string[];
  engine: string;
  out: string;
  include: string[];
  exclude: string[];
  linear: string[];
  notLinear: string[];
  maxShardBytes?: string;
  maxTaskNormRatio: string;
  threads?: string;
  json?: boolean;
}

const collect = (v: string, acc: string[]) => [...acc, v];

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description('merge checkpoints into a merge state, continuing its sequence, and write the merged model')
    .requiredOption('--base <path>', 'base (pretrained) model: .safetensors file or model folder')
    .requiredOption('--state <dir>', 'merge-state directory (created on first use; later calls continue it)')
    .requiredOption('--method <name>', `one of ${methodNames.join(', ')}`)
    .option('--param <key=value>', 'method parameter (repeatable)', collect, [])
    .option('--engine <engine>', 'auto | native | portable', 'auto')
    .requiredOption('--out <path>', 'output: a .safetensors file, or a folder (sharded when large)')
    .option('--include <glob>', 'merge only matching tensors (repeatable)', collect, [])
    .option('--exclude <glob>', 'do not merge matching tensors: copy them from the base (repeatable)', collect, [])
    .option('--linear <glob>', 'treat matching 2-D tensors as linear (repeatable)', collect, [])
    .option('--not-linear <glob>', 'treat matching tensors as element-wise parameters (repeatable)', collect, [])
    .option('--max-shard-bytes <n>', 'shard size for folder output')
    .option('--max-task-norm-ratio <x>', 'reject a checkpoint whose ‖τ‖ exceeds this multiple of ‖θ0‖', '10')
    .option('--threads <n>', 'BLAS threads (default: all cores)')
    .option('--json', 'print a JSON summary on stdout')
    .argument('<checkpoints...>', 'fine-tuned checkpoints, merged in this order')
    .action(async (checkpoints: string[], o: MergeOpts) => {
      configureLog({ stream: 'stderr', level: process.stderr.isTTY ? 'info' : 'warn' });
      if (!['auto', 'native', 'portable'].includes(o.engine)) throw new UsageError(`--engine must be auto, native or portable, not "${o.engine}"`);
      const params: Record<string, string> = {};
      for (const kv of o.param) {
        const i = kv.indexOf('=');
        if (i <= 0) throw new UsageError(`--param expects key=value, got "${kv}"`);
        params[kv.slice(0, i)] = kv.slice(i + 1);
      }
      const engine = createEngine(o.engine as 'auto' | 'native' | 'portable', { threads: positiveInt(o.threads, '--threads') });
      const progress = mergeProgress();
      let report: MergeReport;
      try {
        report = await runMerge({
          base: o.base,
          stateDir: o.state,
          method: o.method,
          params,
          checkpoints,
          out: o.out,
          engine,
          rules: { include: o.include, exclude: o.exclude, linearInclude: o.linear, linearExclude: o.notLinear },
          maxShardBytes: positiveInt(o.maxShardBytes, '--max-shard-bytes'),
          maxTaskNormRatio: positiveNumber(o.maxTaskNormRatio, '--max-task-norm-ratio'),
          onProgress: progress.onProgress,
        });
      } finally {
        progress.stop();
        engine.close();
      }
      const peakRssBytes = process.resourceUsage().maxRSS * 1024;
      if (o.json) {
        process.stdout.write(JSON.stringify({ ...report, peak_rss_bytes: peakRssBytes }, null, 1) + '\n');
      } else if (process.stdout.isTTY) {
        for (const s of report.steps) {
          const lam = typeof s.scalars.lambda === 'number' ? ` λ=${s.scalars.lambda.toFixed(4)}` : '';
          process.stdout.write(`step ${s.t}: ${s.checkpoint} ‖τ‖=${s.task_vector_norm.toFixed(4)}${lam} (${(s.seconds.analysis + s.seconds.update).toFixed(2)} s)\n`);
        }
        process.stdout.write(`wrote ${report.out_files.join(', ')} with ${report.engine} engine in ${report.seconds.total.toFixed(2)} s, peak RSS ${(peakRssBytes / 2 ** 20).toFixed(0)} MiB\n`);
      }
    });
}

function positiveNumber(v: string, flag: string): number {
  const n = Number(v);
  if (!(n > 0)) throw new UsageError(`${flag} expects a positive number, got "${v}"`);
  return n;
}

function positiveInt(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${flag} expects a positive integer, got "${v}"`);
  return n;
}
