import type { Command } from 'commander';
import { parseBytes } from '../config/units.js';
import { createEngine, ENGINE_CHOICES, type EngineChoice, type EngineOptions } from '../engine/index.js';
import { floatDtype, type DType } from '../io/types.js';
import { METHOD_NAMES } from '../methods/registry.js';
import { runMerge, type MergeReport } from '../merge/runner.js';
import { checkpointSha256 } from '../daemon/checkpoint-hash.js';
import { isHubId } from '../util/hub-id.js';
import { configureLog } from '../util/log.js';
import { UsageError } from './errors.js';
import { folderOutput, type FolderOutput } from './merge-folder.js';
import { mergeProgress } from './progress.js';

interface MergeOpts {
  base: string;
  state: string;
  method: string;
  param: string[];
  engine: string;
  device?: string;
  maxDeviceMemory?: string;
  tf32?: boolean;
  out: string;
  outDtype?: string;
  include: string[];
  exclude: string[];
  linear: string[];
  notLinear: string[];
  maxShardBytes?: string;
  maxTaskNormRatio: string;
  threads?: string;
  json?: boolean;
  baseModelId?: string;
}

const collect = (v: string, acc: string[]) => [...acc, v];

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description('merge checkpoints into a merge state, continuing its sequence, and write the merged model')
    .requiredOption('--base <path>', 'base (pretrained) model: .safetensors file or model folder')
    .requiredOption('--state <dir>', 'merge-state directory (created on first use; later calls continue it)')
    .requiredOption('--method <name>', `one of ${METHOD_NAMES.join(', ')}`)
    .option('--param <key=value>', 'method parameter (repeatable)', collect, [])
    .option(
      '--engine <engine>',
      'auto | native | portable | cuda (auto: cuda when a usable GPU is found, else native, else portable)',
      'auto',
    )
    .option('--device <n>', 'cuda: device ordinal (default 0)')
    .option(
      '--max-device-memory <bytes>',
      'cuda: device memory the engine may hold, e.g. 8GiB; a merge needing more runs on the CPU',
    )
    .option('--tf32', 'cuda: matrix products in TF32 (faster, ~1e-3 relative error)')
    .requiredOption(
      '--out <path>',
      'output: a .safetensors file (the weights alone), or a folder a server can load: the weights (sharded when large), ' +
        "the base folder's config and tokenizer files, README.md (model card) and manifest.json",
    )
    .option('--base-model-id <org/name>', "the base's Hugging Face Hub id, for the folder's model card (base_model)")
    .option('--out-dtype <dtype>', "float dtype of the output: F32, F16, BF16 or F64 (default: the base's)")
    .option('--include <glob>', 'merge only matching tensors (repeatable)', collect, [])
    .option('--exclude <glob>', 'do not merge matching tensors: copy them from the base (repeatable)', collect, [])
    .option('--linear <glob>', 'treat matching 2-D tensors as linear (repeatable)', collect, [])
    .option('--not-linear <glob>', 'treat matching tensors as element-wise parameters (repeatable)', collect, [])
    .option('--max-shard-bytes <n>', 'shard size for folder output')
    .option('--max-task-norm-ratio <x>', 'reject a checkpoint whose ‖τ‖ exceeds this multiple of ‖θ0‖', '10')
    .option('--threads <n>', 'BLAS threads (default: all cores)')
    .option('--json', 'print a JSON summary on stdout')
    .argument(
      '<checkpoints...>',
      'fine-tuned checkpoints, merged in this order: model files or folders, or PEFT LoRA adapter folders (docs/lora.md)',
    )
    .action(mergeAction);
}

async function mergeAction(checkpoints: string[], opts: MergeOpts): Promise<void> {
  configureLog({ stream: 'stderr', level: process.stderr.isTTY ? 'info' : 'warn' });
  const params = paramOptions(opts.param);
  const outDtype = outDtypeOption(opts.outDtype);
  const baseModelId = baseModelIdOption(opts);
  // before anything is read or written: `--engine cuda` without a GPU exits 1 with one line
  const engine = createEngine(engineChoice(opts), engineOpts(opts));
  const progress = mergeProgress();
  let folder: FolderOutput | null = null;
  let report: MergeReport;
  try {
    const sha256 = await checkpointHashes(checkpoints);
    folder = await folderOutput(opts.out, { base: opts.base, state: opts.state, baseModelId });
    report = await runMerge({
      base: opts.base,
      stateDir: opts.state,
      method: opts.method,
      params,
      checkpoints,
      sha256,
      out: folder?.dir ?? opts.out,
      beforeCommit: folder?.finish,
      outDtype,
      engine,
      rules: {
        include: opts.include,
        exclude: opts.exclude,
        linearInclude: opts.linear,
        linearExclude: opts.notLinear,
      },
      maxShardBytes: positiveInt(opts.maxShardBytes, '--max-shard-bytes'),
      maxTaskNormRatio: positiveNumber(opts.maxTaskNormRatio, '--max-task-norm-ratio'),
      onProgress: progress.onProgress,
      onWarning: (message) => process.stderr.write(`cmerge: warning: ${message}\n`),
    });
    if (folder) report = folder.relocate(report);
  } catch (e) {
    await folder?.discard();
    throw e;
  } finally {
    progress.stop();
    engine.close();
  }
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;
  if (opts.json) process.stdout.write(JSON.stringify({ ...report, peak_rss_bytes: peakRssBytes }, null, 1) + '\n');
  else if (process.stdout.isTTY) process.stdout.write(summaryLines(report, peakRssBytes));
}

/** `--base-model-id`: a Hub repo id, for the model card of a folder output (docs/architecture.md#publication-and-hot-swap). */
function baseModelIdOption(opts: MergeOpts): string | undefined {
  const id = opts.baseModelId;
  if (id === undefined) return undefined;
  if (!isHubId(id)) throw new UsageError(`--base-model-id expects a Hub repo id such as org/name, got "${id}"`);
  if (opts.out.endsWith('.safetensors'))
    throw new UsageError('--base-model-id: only with a folder --out (a .safetensors output has no model card)');
  return id;
}

/**
 * Each checkpoint's sha256 as the daemon computes it, for the state's lineage and the runner's
 * duplicate check (docs/architecture.md#path-of-a-checkpoint). One that cannot be read is left
 * out: the runner refuses it with its own reason.
 */
async function checkpointHashes(checkpoints: readonly string[]): Promise<Record<string, string>> {
  const hashes: Record<string, string> = {};
  for (const path of checkpoints) {
    try {
      hashes[path] = await checkpointSha256(path);
    } catch {
      continue;
    }
  }
  return hashes;
}

/** `--param key=value` options as raw params (the method's schema reads the values; see parseMethodParams). */
function paramOptions(pairs: readonly string[]): Record<string, string> {
  const params: Record<string, string> = {};
  for (const kv of pairs) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`--param expects key=value, got "${kv}"`);
    params[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return params;
}

/** The human summary: a line per step, then what was written. */
function summaryLines(report: MergeReport, peakRssBytes: number): string {
  let text = '';
  for (const s of report.steps) {
    const lam = typeof s.scalars.lambda === 'number' ? ` λ=${s.scalars.lambda.toFixed(4)}` : '';
    const adapter = s.adapter ? ` (LoRA adapter r=${s.adapter.r}, ${s.adapter.targets.length} tensors)` : '';
    text += `step ${s.t}: ${s.checkpoint}${adapter} ‖τ‖=${s.task_vector_norm.toFixed(4)}${lam} (${(s.seconds.analysis + s.seconds.update).toFixed(2)} s)\n`;
  }
  const device = report.engine_info.device ? ` on ${report.engine_info.device}` : '';
  const gpu = report.gpu
    ? `, GPU ${report.gpu.gpu_seconds.toFixed(2)} s, peak device memory ${(report.gpu.peak_device_bytes / 2 ** 20).toFixed(0)} MiB`
    : '';
  text += `wrote ${report.out_files.join(', ')} with ${report.engine} engine${device} in ${report.seconds.total.toFixed(2)} s, peak RSS ${(peakRssBytes / 2 ** 20).toFixed(0)} MiB${gpu}\n`;
  return text;
}

function engineChoice(opts: MergeOpts): EngineChoice {
  if (!(ENGINE_CHOICES as readonly string[]).includes(opts.engine))
    throw new UsageError(`--engine must be ${ENGINE_CHOICES.join(', ')}, not "${opts.engine}"`);
  const gpuFlags = [
    opts.device !== undefined && '--device',
    opts.maxDeviceMemory !== undefined && '--max-device-memory',
    opts.tf32 && '--tf32',
  ].filter(Boolean);
  if (gpuFlags.length && opts.engine !== 'cuda' && opts.engine !== 'auto')
    throw new UsageError(`${gpuFlags.join(', ')}: only with --engine cuda or auto, not ${opts.engine}`);
  return opts.engine as EngineChoice;
}

function engineOpts(opts: MergeOpts): EngineOptions {
  let maxMemoryBytes: number | undefined;
  if (opts.maxDeviceMemory !== undefined) {
    const n = parseBytes(opts.maxDeviceMemory);
    if (n === null || n <= 0)
      throw new UsageError(`--max-device-memory expects a byte size such as 8GiB, got "${opts.maxDeviceMemory}"`);
    maxMemoryBytes = n;
  }
  const device = opts.device === undefined ? undefined : /^[0-9]+$/.test(opts.device) ? Number(opts.device) : NaN;
  if (device !== undefined && !Number.isSafeInteger(device))
    throw new UsageError(`--device expects a device ordinal (0, 1, ...), got "${opts.device}"`);
  return {
    threads: positiveInt(opts.threads, '--threads'),
    cuda: { device, maxMemoryBytes, tf32: opts.tf32 === true },
  };
}

function outDtypeOption(v: string | undefined): DType | undefined {
  if (v === undefined) return undefined;
  const dtype = floatDtype(v);
  if (!dtype) throw new UsageError(`--out-dtype must be F32, F16, BF16 or F64, not "${v}"`);
  return dtype;
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
