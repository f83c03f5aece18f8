import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openModel } from '../io/model.js';
import { FLOAT_DTYPES, InputError, type ModelReader } from '../io/types.js';
import { parseMethodParams } from '../methods/params.js';
import { getMethod } from '../methods/registry.js';
import type { Method, Params, TensorJob, TensorKind } from '../methods/types.js';
import { log } from '../util/log.js';
import { BufferPool } from './buffers.js';
import { openCheckpoint, type MergeCheckpoint } from './checkpoint.js';
import { classifier } from './kinds.js';
import { writeOutput, type OutputResult } from './output.js';
import {
  commitGeneration,
  discardAfter,
  generationDir,
  openGeneration,
  pruneGenerations,
  type Generation,
} from './state.js';
import { runStep } from './step.js';
import type { MergeInputs, MergeReport, MergeRequest, StepReport } from './types.js';
import { structureFingerprint } from './validate.js';

export type { CheckpointRecord, StateMeta } from './state.js';
export type { AdapterLineage, GpuReport, MergeProgress, MergeReport, MergeRequest, StepReport } from './types.js';

/**
 * The merge runner: streams base, previous state and checkpoint tensor by tensor through a
 * method (analysis passes, the update pass writing the new state generation, and for the last
 * checkpoint an output pass writing the merged model). Peak memory is a few copies of the largest
 * tensor, whatever the model size. Nothing becomes visible until the end: state generations are
 * sealed under new names and CURRENT moves last; the output is renamed into place.
 */
export async function runMerge(req: MergeRequest): Promise<MergeReport> {
  const startedAt = performance.now();
  req.engine.resetStats();
  if (req.outDtype !== undefined && !FLOAT_DTYPES.has(req.outDtype))
    throw new Error(`output dtype ${req.outDtype} is not one of ${[...FLOAT_DTYPES].join(', ')}`);
  const method = getMethod(req.method);
  const params = parseMethodParams(method, req.params ?? {});
  const opened: { close(): void }[] = [];
  const base = openModel(req.base);
  opened.push(base);
  let fromStep = 0;
  let fromId = 0;
  let stateTouched = false;
  try {
    const inputs = planMerge(req, method, params, base);
    let gen = openGeneration(req.stateDir, req.fromGeneration);
    if (gen) checkCompatible(inputs, gen);
    fromStep = gen?.step ?? 0;
    fromId = gen?.id ?? 0;
    // every checkpoint is checked before anything is written
    const ckpts = await openCheckpoints(req, base, opened);
    refuseDuplicates(req, gen);
    // leftovers of an interrupted run; with a target generation the caller owns the others
    discardNew(req, fromId);
    stateTouched = true;
    const steps: StepReport[] = [];
    for (const [i, ckpt] of ckpts.entries()) {
      const last = i === ckpts.length - 1;
      const id = req.toGeneration === undefined ? (gen?.id ?? fromId) + 1 : last ? req.toGeneration : 0;
      const merged = await runStep(inputs, gen, ckpt, id);
      // an intermediate state is needed only by the next step
      if (gen && gen.id === 0) rmSync(gen.dir, { recursive: true, force: true });
      gen = merged.gen;
      steps.push(merged.report);
    }
    const outputStart = performance.now();
    const output = req.out && gen ? writeOutput(inputs, gen, req.out) : noOutput();
    const seconds = { total: 0, output: (performance.now() - outputStart) / 1000 };
    const report = mergeReport(inputs, { fromStep, step: gen?.step ?? fromStep, steps, output, seconds });
    if (gen) await req.beforeCommit?.(report, gen.meta);
    if (gen && req.commit !== false) {
      commitGeneration(req.stateDir, gen.id);
      await pruneGenerations(req.stateDir, [gen.id]);
    }
    report.seconds.total = (performance.now() - startedAt) / 1000;
    return report;
  } catch (e) {
    if (stateTouched) discardNew(req, fromId);
    throw e;
  } finally {
    for (const model of opened) model.close();
  }
}

/** A failed run leaves the generations as they were: what it wrote is removed, nothing else. */
function discardNew(req: MergeRequest, fromId: number): void {
  if (req.toGeneration === undefined) discardAfter(req.stateDir, fromId);
  else rmSync(generationDir(req.stateDir, req.toGeneration), { recursive: true, force: true });
  if (!existsSync(req.stateDir)) return;
  for (const e of readdirSync(req.stateDir))
    if (e.startsWith('.replay-') || e.endsWith('.tmp')) rmSync(join(req.stateDir, e), { recursive: true, force: true });
}

const noOutput = (): OutputResult => ({ files: [], sha256: {}, retention: [], mergedNorms: {} });

/** Which base tensors are merged and how (the request's rules), and the buffers the passes share. */
function planMerge(req: MergeRequest, method: Method, params: Params, base: ModelReader): MergeInputs {
  const classify = classifier(req.rules);
  const jobs: TensorJob[] = [];
  const kinds: Record<string, TensorKind> = {};
  for (const info of base.tensors.values()) {
    const disposition = classify(info);
    if (disposition === 'copy') continue;
    jobs.push({ name: info.name, kind: disposition, shape: info.shape, size: info.size });
    kinds[info.name] = disposition;
  }
  if (jobs.length === 0) throw new InputError(req.base, 'no float tensor to merge (check the include/exclude rules)');
  const pool = new BufferPool(jobs.reduce((largest, j) => Math.max(largest, j.size), 0));
  return { pool, req, method, params, base, jobs, kinds, fingerprint: structureFingerprint(base) };
}

/**
 * Opens every checkpoint (kept in `opened` for closing) and checks it against the base: a full
 * model's tensor set, or an adapter's targets and factor shapes. Warnings once all are accepted.
 */
async function openCheckpoints(
  req: MergeRequest,
  base: ModelReader,
  opened: { close(): void }[],
): Promise<MergeCheckpoint[]> {
  const ckpts: MergeCheckpoint[] = [];
  for (const path of req.checkpoints) {
    const ckpt = await openCheckpoint(path, base, req.base, req.engine);
    opened.push(ckpt);
    ckpts.push(ckpt);
  }
  const warn = req.onWarning ?? ((message: string) => log.warn(message));
  for (const ckpt of ckpts) ckpt.warnings.forEach((w) => warn(w));
  return ckpts;
}

/**
 * The same content (sha256, when the caller gave it) twice in one lineage is refused, as the
 * daemon's intake refuses it (docs/architecture.md#durable-state): merging a task vector twice
 * weights it double. Checkpoints without a sha256, here or in the state, are not compared.
 */
function refuseDuplicates(req: MergeRequest, gen: Generation | null): void {
  const seen = new Map<string, string>();
  gen?.meta.checkpoints.forEach((c, i) => {
    if (c.sha256) seen.set(c.sha256, `${c.name}, already merged into the state (step ${i + 1})`);
  });
  for (const path of req.checkpoints) {
    const sha = req.sha256?.[path];
    if (!sha) continue;
    const earlier = seen.get(sha);
    if (earlier) throw new InputError(path, `duplicate: same sha256 as ${earlier}`);
    seen.set(sha, `${path}, given earlier in this call`);
  }
}

function checkCompatible(inputs: MergeInputs, gen: Generation): void {
  const meta = gen.meta;
  const where = join(gen.dir, 'state.json');
  const { method, params } = inputs;
  if (meta.method !== method.name) throw new Error(`${where}: state was made by ${meta.method}, not ${method.name}`);
  if (JSON.stringify(meta.params) !== JSON.stringify(params)) {
    throw new Error(
      `${where}: state was made with parameters ${JSON.stringify(meta.params)}, not ${JSON.stringify(params)}`,
    );
  }
  if (meta.base.fingerprint !== inputs.fingerprint)
    throw new Error(`${where}: state was made against another base model (${meta.base.path})`);
  if (JSON.stringify(meta.kinds) !== JSON.stringify(inputs.kinds))
    throw new Error(`${where}: state was made with other tensor rules`);
}

interface MergeOutcome {
  fromStep: number;
  step: number;
  steps: StepReport[];
  output: OutputResult;
  seconds: MergeReport['seconds'];
}

function mergeReport(inputs: MergeInputs, outcome: MergeOutcome): MergeReport {
  const { req, method, params, base, jobs } = inputs;
  const stats = req.engine.stats();
  return {
    method: method.name,
    params,
    engine: req.engine.name,
    engine_info: req.engine.info(),
    gpu: stats && {
      gpu_seconds: stats.gpuSeconds,
      peak_device_bytes: stats.peakDeviceBytes,
      cpu_fallbacks: stats.cpuFallbacks,
    },
    from_step: outcome.fromStep,
    step: outcome.step,
    steps: outcome.steps,
    out_files: outcome.output.files,
    out_sha256: outcome.output.sha256,
    merged_norms: outcome.output.mergedNorms,
    retention: outcome.output.retention,
    seconds: outcome.seconds,
    tensors: {
      linear: jobs.filter((j) => j.kind === 'linear').length,
      other: jobs.filter((j) => j.kind === 'other').length,
      copied: base.tensors.size - jobs.length,
    },
  };
}
