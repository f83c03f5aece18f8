import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Engine, EngineInfo } from '../engine/types.js';
import { createModelWriter, openModel } from '../io/model.js';
import { InputError, type ModelReader } from '../io/types.js';
import { getMethod } from '../methods/registry.js';
import type { Method, MethodStep, Scalars, TensorJob, TensorKind, TensorMetrics } from '../methods/types.js';
import { BufferPool } from './buffers.js';
import { classifier, type TensorRules } from './kinds.js';
import {
  beginGeneration,
  commitGeneration,
  discardAfter,
  openGeneration,
  pruneGenerations,
  type Generation,
  type StateMeta,
} from './state.js';
import { CountSketch, retentionRow, SKETCH_FILE, writeTaskSketches } from './sketch.js';
import { readTensors, runUpdatePass } from './update-pass.js';
import { structureFingerprint, validateAgainstBase } from './validate.js';

/**
 * The merge runner: streams base, previous state and checkpoint tensor by tensor through a
 * method (analysis passes, the update pass writing the new state generation, and for the last
 * checkpoint an output pass writing the merged model). Peak memory is a few copies of the largest
 * tensor, whatever the model size. Nothing becomes visible until the end: state generations are
 * sealed under new names and CURRENT moves last; the output is renamed into place.
 */
export interface MergeProgress {
  t: number;
  phase: 'analysis' | 'update' | 'output';
  index: number;
  total: number;
  tensor: string;
}

export interface MergeRequest {
  base: string;
  stateDir: string;
  method: string;
  params?: Record<string, unknown>;
  checkpoints: string[];
  /** `.safetensors` file, or a folder (sharded past maxShardBytes) */
  out?: string;
  engine: Engine;
  rules?: TensorRules;
  maxShardBytes?: number;
  /** continue from this committed step instead of CURRENT (the daemon keeps it in SQLite) */
  fromStep?: number;
  /** move CURRENT to the new generation and drop older ones (default true) */
  commit?: boolean;
  /** reject a checkpoint whose ‖τ‖ exceeds this multiple of ‖θ0‖ (over the merged tensors) */
  maxTaskNormRatio?: number;
  /** keep CountSketches of each task vector and report the retention row ρ[t][·] (design §6) */
  sketch?: boolean;
  /** optional sha256 per checkpoint path, recorded in the state's lineage */
  sha256?: Record<string, string>;
  onProgress?: (p: MergeProgress) => void;
}

export interface StepReport {
  t: number;
  checkpoint: string;
  task_vector_norm: number;
  scalars: Scalars;
  summary: Record<string, unknown>;
  tensors: Record<string, TensorMetrics>;
  /** how each merged tensor was treated (the runner's rule, not a guess from its metrics) */
  kinds: Record<string, TensorKind>;
  /** sha256 of the new generation's state.safetensors */
  state_sha256: string;
  seconds: { analysis: number; update: number };
}

/** The device figures of a merge (cuda), from engine.stats(); null for the CPU engines. */
export interface GpuReport {
  gpu_seconds: number;
  peak_device_bytes: number;
  /** operations that ran on the CPU engine because the device lacked the memory */
  cpu_fallbacks: number;
}

export interface MergeReport {
  method: string;
  params: Record<string, unknown>;
  engine: string;
  /** the engine that made it, as each version records it (device, library versions) */
  engine_info: EngineInfo;
  gpu: GpuReport | null;
  from_step: number;
  step: number;
  steps: StepReport[];
  out_files: string[];
  /** sha256 of each output file (path → hex), computed while writing */
  out_sha256: Record<string, string>;
  /** ‖M_t − θ0‖ per merged tensor, from the output pass (when an output was written) */
  merged_norms: Record<string, number>;
  /** ρ[t][i] for the last step, estimated from sketches (with `sketch` and an output) */
  retention: { task: number; rho: number }[];
  seconds: { total: number; output: number };
  tensors: { linear: number; other: number; copied: number };
}

interface Ctx {
  pool: BufferPool;
  req: MergeRequest;
  method: Method<any>;
  params: Record<string, unknown>;
  base: ModelReader;
  jobs: TensorJob[];
  kinds: Record<string, TensorJob['kind']>;
  fingerprint: string;
}

export async function runMerge(req: MergeRequest): Promise<MergeReport> {
  const t0 = performance.now();
  req.engine.resetStats();
  const method = getMethod(req.method);
  const params = method.parseParams(req.params ?? {}) as Record<string, unknown>;
  const opened: ModelReader[] = [];
  const base = openModel(req.base);
  opened.push(base);
  let startStep = 0;
  let wrote = false;
  try {
    const classify = classifier(req.rules);
    const jobs: TensorJob[] = [];
    const kinds: Record<string, TensorJob['kind']> = {};
    for (const info of base.tensors.values()) {
      const d = classify(info);
      if (d === 'copy') continue;
      jobs.push({ name: info.name, kind: d, shape: info.shape, size: info.size });
      kinds[info.name] = d;
    }
    if (jobs.length === 0) throw new InputError(req.base, 'no float tensor to merge (check the include/exclude rules)');
    const pool = new BufferPool(jobs.reduce((mx, j) => Math.max(mx, j.size), 0));
    const ctx: Ctx = { pool, req, method, params, base, jobs, kinds, fingerprint: structureFingerprint(base) };

    let gen = openGeneration(req.stateDir, req.fromStep);
    if (gen) checkCompatible(ctx, gen);
    startStep = gen?.step ?? 0;
    // every checkpoint is checked before anything is written
    const ckpts = req.checkpoints.map((p) => {
      const r = openModel(p);
      opened.push(r);
      validateAgainstBase(base, r);
      return r;
    });
    discardAfter(req.stateDir, startStep);
    wrote = true;
    const steps: StepReport[] = [];
    for (const ckpt of ckpts) {
      const r = await runStep(ctx, gen, ckpt);
      gen = r.gen;
      steps.push(r.report);
    }
    const tOut = performance.now();
    const mergedNorms: Record<string, number> = {};
    const out = req.out && gen ? writeOutput(ctx, gen, req.out, mergedNorms) : { files: [], sha256: {}, retention: [] };
    const outSeconds = (performance.now() - tOut) / 1000;
    if (gen && req.commit !== false) {
      commitGeneration(req.stateDir, gen.step);
      await pruneGenerations(req.stateDir, [gen.step]);
    }
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
      from_step: startStep,
      step: gen?.step ?? startStep,
      steps,
      out_files: out.files,
      out_sha256: out.sha256,
      merged_norms: mergedNorms,
      retention: out.retention,
      seconds: { total: (performance.now() - t0) / 1000, output: outSeconds },
      tensors: {
        linear: jobs.filter((j) => j.kind === 'linear').length,
        other: jobs.filter((j) => j.kind === 'other').length,
        copied: base.tensors.size - jobs.length,
      },
    };
  } catch (e) {
    if (wrote) discardAfter(req.stateDir, startStep);
    throw e;
  } finally {
    for (const r of opened) r.close();
  }
}

function checkCompatible(ctx: Ctx, gen: Generation): void {
  const m = gen.meta;
  const where = join(gen.dir, 'state.json');
  if (m.method !== ctx.method.name) throw new Error(`${where}: state was made by ${m.method}, not ${ctx.method.name}`);
  if (JSON.stringify(m.params) !== JSON.stringify(ctx.params)) {
    throw new Error(
      `${where}: state was made with parameters ${JSON.stringify(m.params)}, not ${JSON.stringify(ctx.params)}`,
    );
  }
  if (m.base.fingerprint !== ctx.fingerprint)
    throw new Error(`${where}: state was made against another base model (${m.base.path})`);
  if (JSON.stringify(m.kinds) !== JSON.stringify(ctx.kinds))
    throw new Error(`${where}: state was made with other tensor rules`);
}

async function runStep(
  ctx: Ctx,
  prevGen: Generation | null,
  ckpt: ModelReader,
): Promise<{ gen: Generation; report: StepReport }> {
  const { req, method, params, base, jobs } = ctx;
  const t = (prevGen?.step ?? 0) + 1;
  const prev = prevGen?.open() ?? null;
  const pending = beginGeneration(req.stateDir, t);
  try {
    const tauSketch = req.sketch ? new CountSketch() : null;
    const step: MethodStep = method.begin({
      t,
      params,
      scalars: prevGen?.meta.scalars ?? {},
      engine: req.engine,
      tensors: jobs,
    });
    const ta = performance.now();
    for (let pass = 0; pass < step.analysisPasses; pass++) {
      jobs.forEach((job, index) => {
        const { b, p, c } = readTensors(base, prev, ckpt, job.name);
        step.analyze!(pass, job, b, p, c);
        req.onProgress?.({ t, phase: 'analysis', index, total: jobs.length, tensor: job.name });
      });
      step.endAnalysis?.(pass);
    }
    const tu = performance.now();
    const byName = new Map(jobs.map((j) => [j.name, j]));
    const writer = createModelWriter(
      join(pending.tmpDir, 'state.safetensors'),
      jobs.map((j) => ({ name: j.name, dtype: 'F32' as const, shape: [...j.shape] })),
      { maxShardBytes: Number.MAX_SAFE_INTEGER },
    );
    const tensors: Record<string, TensorMetrics> = {};
    let taskSq = 0;
    let stateSha256 = '';
    try {
      let index = 0;
      const baseSq = await runUpdatePass({
        step,
        method: method.name,
        engine: req.engine,
        base,
        prev,
        ckpt,
        jobs: writer.order.map((name) => byName.get(name)!),
        pool: ctx.pool,
        sketch: tauSketch,
        record: (job, r, tq) => {
          taskSq += tq;
          writer.write(job.name, r.state);
          tensors[job.name] = { task_norm: Math.sqrt(tq), ...r.metrics };
          req.onProgress?.({ t, phase: 'update', index: index++, total: jobs.length, tensor: job.name });
        },
      });
      if (taskSq === 0) throw new InputError(ckpt.path, 'task vector is zero: the checkpoint equals the base model');
      const ratio = Math.sqrt(taskSq / baseSq);
      if (req.maxTaskNormRatio !== undefined && ratio > req.maxTaskNormRatio) {
        throw new InputError(
          ckpt.path,
          `task vector norm is ${ratio.toFixed(3)} × the base model's norm (limit ${req.maxTaskNormRatio}): not a fine-tune of this base`,
        );
      }
      writer.commit();
      stateSha256 = Object.values(writer.sha256())[0];
      if (tauSketch) {
        const prevSketches =
          prevGen && existsSync(join(prevGen.dir, SKETCH_FILE)) ? openModel(join(prevGen.dir, SKETCH_FILE)) : null;
        try {
          writeTaskSketches(join(pending.tmpDir, SKETCH_FILE), prevSketches, t, tauSketch, taskSq);
        } finally {
          prevSketches?.close();
        }
      }
    } catch (e) {
      writer.abort();
      throw e;
    }
    const { scalars, summary, tensors: finished } = step.finish();
    for (const [name, m] of Object.entries(finished ?? {})) Object.assign(tensors[name], m);
    const meta: StateMeta = {
      format: 1,
      method: method.name,
      params,
      step: t,
      scalars,
      base: { path: base.path, fingerprint: ctx.fingerprint },
      kinds: ctx.kinds,
      checkpoints: [
        ...(prevGen?.meta.checkpoints ?? []),
        {
          name: basename(ckpt.path),
          path: ckpt.path,
          bytes: ckpt.dataBytes,
          ...(req.sha256?.[ckpt.path] ? { sha256: req.sha256[ckpt.path] } : {}),
        },
      ],
      engine: req.engine.name,
      created_at: new Date().toISOString(),
    };
    const gen = pending.seal(meta);
    const tEnd = performance.now();
    return {
      gen,
      report: {
        t,
        checkpoint: ckpt.path,
        task_vector_norm: Math.sqrt(taskSq),
        scalars,
        summary,
        tensors,
        kinds: Object.fromEntries(jobs.map((j) => [j.name, j.kind])),
        state_sha256: stateSha256,
        seconds: { analysis: (tu - ta) / 1000, update: (tEnd - tu) / 1000 },
      },
    };
  } catch (e) {
    pending.discard();
    throw e;
  } finally {
    prev?.close();
  }
}

function writeOutput(
  ctx: Ctx,
  gen: Generation,
  out: string,
  mergedNorms: Record<string, number>,
): { files: string[]; sha256: Record<string, string>; retention: { task: number; rho: number }[] } {
  const { base, method, params, kinds, req } = ctx;
  const specs = [...base.tensors.values()].map((i) => ({ name: i.name, dtype: i.dtype, shape: [...i.shape] }));
  const writer = createModelWriter(out, specs, { metadata: { ...base.metadata }, maxShardBytes: req.maxShardBytes });
  const state = gen.open();
  const sketchPath = join(gen.dir, SKETCH_FILE);
  const mergedSketch = req.sketch && existsSync(sketchPath) ? new CountSketch() : null;
  try {
    let index = 0;
    for (const name of writer.order) {
      const info = base.tensors.get(name)!;
      if (kinds[name]) {
        const job: TensorJob = { name, kind: kinds[name], shape: info.shape, size: info.size };
        // pooled buffers (see BufferPool); merged is written before they go back
        const b = base.readF32Into(name, ctx.pool.acquire(info.size));
        const s = state.readF32Into(name, ctx.pool.acquire(info.size));
        const merged = method.output(job, b, s, gen.meta.scalars, params);
        let sq = 0;
        for (let i = 0; i < b.length; i++) sq += (merged[i] - b[i]) ** 2;
        mergedNorms[name] = Math.sqrt(sq);
        mergedSketch?.addDiff(name, merged, b);
        writer.write(name, merged);
        ctx.pool.release(b);
        ctx.pool.release(s);
      } else {
        writer.write(name, base.readRaw(name));
      }
      req.onProgress?.({ t: gen.step, phase: 'output', index: index++, total: writer.order.length, tensor: name });
    }
    const files = writer.commit();
    let retention: { task: number; rho: number }[] = [];
    if (mergedSketch) {
      const sketches = openModel(sketchPath);
      try {
        retention = retentionRow(sketches, mergedSketch);
      } finally {
        sketches.close();
      }
    }
    return { files, sha256: writer.sha256(), retention };
  } catch (e) {
    writer.abort();
    throw e;
  } finally {
    state.close();
  }
}
