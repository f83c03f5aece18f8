import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createModelWriter, openModel } from '../io/model.js';
import { InputError, type ModelReader } from '../io/types.js';
import type { MethodStep, Scalars, TensorMetrics } from '../methods/types.js';
import type { MergeCheckpoint } from './checkpoint.js';
import { CountSketch, SKETCH_FILE, writeTaskSketches } from './sketch.js';
import { beginGeneration, type Generation, type PendingGeneration, type StateMeta } from './state.js';
import type { MergeInputs, StepReport } from './types.js';
import { readTensors, runUpdatePass } from './update-pass.js';

/** One step under way: the checkpoint merged at step t onto the previous generation. */
interface StepRun {
  t: number;
  step: MethodStep;
  prevGen: Generation | null;
  /** the previous generation's state tensors (null at t = 1) */
  prev: ModelReader | null;
  ckpt: MergeCheckpoint;
  pending: PendingGeneration;
}

/** What the update pass wrote into the pending generation. */
interface WrittenState {
  tensors: Record<string, TensorMetrics>;
  /** ‖τ‖² over the merged tensors */
  taskSq: number;
  stateSha256: string;
}

/**
 * Merges one checkpoint onto `prevGen` (null: the first): analysis passes, the update pass writing
 * the new state, then the generation sealed (not yet committed). A failure leaves nothing behind.
 */
export async function runStep(
  inputs: MergeInputs,
  prevGen: Generation | null,
  ckpt: MergeCheckpoint,
  /** the new generation's number; 0: an intermediate state of a replay (see state.ts) */
  genId: number,
): Promise<{ gen: Generation; report: StepReport }> {
  const { req, method, params, jobs } = inputs;
  const t = (prevGen?.step ?? 0) + 1;
  const prev = prevGen?.open() ?? null;
  const pending = beginGeneration(req.stateDir, genId, t);
  try {
    const scalars = prevGen?.meta.scalars ?? {};
    const step = method.begin({ t, params, scalars, engine: req.engine, tensors: jobs });
    const run: StepRun = { t, step, prevGen, prev, ckpt, pending };
    const analysisStart = performance.now();
    await runAnalysisPasses(inputs, run);
    const updateStart = performance.now();
    const written = await writeState(inputs, run);
    const result = step.finish();
    for (const [name, m] of Object.entries(result.tensors ?? {})) Object.assign(written.tensors[name], m);
    const gen = pending.seal(stateMeta(inputs, run, result.scalars));
    const report: StepReport = {
      t,
      checkpoint: ckpt.path,
      adapter: ckpt.adapter,
      dtype: ckpt.dtype,
      task_vector_norm: Math.sqrt(written.taskSq),
      scalars: result.scalars,
      summary: result.summary,
      tensors: written.tensors,
      kinds: Object.fromEntries(jobs.map((j) => [j.name, j.kind])),
      state_sha256: written.stateSha256,
      seconds: { analysis: (updateStart - analysisStart) / 1000, update: (performance.now() - updateStart) / 1000 },
    };
    return { gen, report };
  } catch (e) {
    pending.discard();
    throw e;
  } finally {
    prev?.close();
  }
}

async function runAnalysisPasses(inputs: MergeInputs, run: StepRun): Promise<void> {
  const { req, base, jobs } = inputs;
  const { t, step, prev, ckpt } = run;
  for (let pass = 0; pass < step.analysisPasses; pass++) {
    for (const [index, job] of jobs.entries()) {
      const tensors = await readTensors(base, prev, ckpt, job.name);
      step.analyze!(pass, job, tensors.base, tensors.prev, tensors.ckpt);
      req.onProgress?.({ t, phase: 'analysis', index, total: jobs.length, tensor: job.name });
    }
    step.endAnalysis?.(pass);
  }
}

/** The update pass into the pending generation's state file (and its task sketches). */
async function writeState(inputs: MergeInputs, run: StepRun): Promise<WrittenState> {
  const { req, method, base, jobs, pool } = inputs;
  const { t, ckpt } = run;
  const byName = new Map(jobs.map((j) => [j.name, j]));
  const writer = createModelWriter(
    join(run.pending.tmpDir, 'state.safetensors'),
    jobs.map((j) => ({ name: j.name, dtype: 'F32' as const, shape: [...j.shape] })),
    { maxShardBytes: Number.MAX_SAFE_INTEGER },
  );
  const tauSketch = req.sketch ? new CountSketch() : null;
  const tensors: Record<string, TensorMetrics> = {};
  let taskSq = 0;
  let index = 0;
  try {
    const baseSq = await runUpdatePass({
      step: run.step,
      method: method.name,
      engine: req.engine,
      base,
      prev: run.prev,
      ckpt,
      jobs: writer.order.map((name) => byName.get(name)!),
      pool,
      sketch: tauSketch,
      record: (job, update, tauSq) => {
        taskSq += tauSq;
        writer.write(job.name, update.state);
        tensors[job.name] = { task_norm: Math.sqrt(tauSq), ...update.metrics };
        req.onProgress?.({ t, phase: 'update', index: index++, total: jobs.length, tensor: job.name });
      },
    });
    checkTaskNorm(ckpt.path, taskSq, baseSq, req.maxTaskNormRatio);
    writer.commit();
    const stateSha256 = Object.values(writer.sha256())[0];
    if (tauSketch) writeSketches(run, tauSketch, taskSq);
    return { tensors, taskSq, stateSha256 };
  } catch (e) {
    writer.abort();
    throw e;
  }
}

/** A checkpoint equal to the base, or far from it (not a fine-tune of it), is refused. */
function checkTaskNorm(path: string, taskSq: number, baseSq: number, maxRatio: number | undefined): void {
  if (taskSq === 0) throw new InputError(path, 'task vector is zero: the checkpoint equals the base model');
  const ratio = Math.sqrt(taskSq / baseSq);
  if (maxRatio !== undefined && ratio > maxRatio) {
    throw new InputError(
      path,
      `task vector norm is ${ratio.toFixed(3)} × the base model's norm (limit ${maxRatio}): not a fine-tune of this base`,
    );
  }
}

/** The previous generation's task sketches and this step's, into the pending generation. */
function writeSketches(run: StepRun, tauSketch: CountSketch, taskSq: number): void {
  const { prevGen } = run;
  const prevSketches =
    prevGen && existsSync(join(prevGen.dir, SKETCH_FILE)) ? openModel(join(prevGen.dir, SKETCH_FILE)) : null;
  try {
    writeTaskSketches(join(run.pending.tmpDir, SKETCH_FILE), prevSketches, run.t, tauSketch, taskSq);
  } finally {
    prevSketches?.close();
  }
}

function stateMeta(inputs: MergeInputs, run: StepRun, scalars: Scalars): StateMeta {
  const { req, method, params, base } = inputs;
  const { ckpt } = run;
  const createdAt = new Date().toISOString();
  return {
    format: 1,
    method: method.name,
    params,
    step: run.t,
    scalars,
    base: { path: base.path, fingerprint: inputs.fingerprint },
    kinds: inputs.kinds,
    checkpoints: [
      ...(run.prevGen?.meta.checkpoints ?? []),
      {
        name: basename(ckpt.path),
        path: ckpt.path,
        bytes: ckpt.dataBytes,
        dtype: ckpt.dtype,
        ...(req.sha256?.[ckpt.path] ? { sha256: req.sha256[ckpt.path] } : {}),
        merged_at: createdAt,
      },
    ],
    engine: req.engine.name,
    created_at: createdAt,
  };
}
