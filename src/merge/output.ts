import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createModelWriter, openModel } from '../io/model.js';
import { FLOAT_DTYPES, type DType, type ModelReader, type ModelWriter } from '../io/types.js';
import type { TensorJob } from '../methods/types.js';
import { CountSketch, retentionRow, SKETCH_FILE } from './sketch.js';
import type { Generation } from './state.js';
import type { MergeInputs } from './types.js';

export interface OutputResult {
  files: string[];
  /** sha256 of each output file (path → hex) */
  sha256: Record<string, string>;
  /** ρ[t][i] of the generation's tasks (with sketches) */
  retention: { task: number; rho: number }[];
  /** ‖M_t − θ0‖ per merged tensor */
  mergedNorms: Record<string, number>;
}

/**
 * The output pass: the merged model M_t of generation `gen`, written to `out` in the base's
 * dtypes (float tensors in `outDtype` when the request sets it) with the base's metadata; tensors
 * that are not merged are copied from the base as stored, or converted to `outDtype`.
 */
export function writeOutput(inputs: MergeInputs, gen: Generation, out: string): OutputResult {
  const { base, req } = inputs;
  const specs = [...base.tensors.values()].map((i) => ({
    name: i.name,
    dtype: outputDtype(i.dtype, req.outDtype),
    shape: [...i.shape],
  }));
  const dtypes = new Map(specs.map((s) => [s.name, s.dtype]));
  const writer = createModelWriter(out, specs, { metadata: { ...base.metadata }, maxShardBytes: req.maxShardBytes });
  const state = gen.open();
  const sketchPath = join(gen.dir, SKETCH_FILE);
  const mergedSketch = req.sketch && existsSync(sketchPath) ? new CountSketch() : null;
  const mergedNorms: Record<string, number> = {};
  try {
    writer.order.forEach((name, index) => {
      if (inputs.kinds[name]) mergedNorms[name] = writeMergedTensor(inputs, gen, state, writer, name, mergedSketch);
      else if (dtypes.get(name) === base.tensors.get(name)!.dtype) writer.write(name, base.readRaw(name));
      else writer.write(name, base.readF32(name));
      req.onProgress?.({ t: gen.step, phase: 'output', index, total: writer.order.length, tensor: name });
    });
    const files = writer.commit();
    const retention = mergedSketch ? readRetention(sketchPath, mergedSketch) : [];
    return { files, sha256: writer.sha256(), retention, mergedNorms };
  } catch (e) {
    writer.abort();
    throw e;
  } finally {
    state.close();
  }
}

/** A base tensor's dtype in the output: `outDtype` for float tensors when given, else the base's. */
function outputDtype(dtype: DType, outDtype: DType | undefined): DType {
  return outDtype && FLOAT_DTYPES.has(dtype) ? outDtype : dtype;
}

/** Writes the method's output for one merged tensor; returns ‖M_t − θ0‖ of it. */
function writeMergedTensor(
  inputs: MergeInputs,
  gen: Generation,
  state: ModelReader,
  writer: ModelWriter,
  name: string,
  mergedSketch: CountSketch | null,
): number {
  const { base, pool } = inputs;
  const info = base.tensors.get(name)!;
  const job: TensorJob = { name, kind: inputs.kinds[name], shape: info.shape, size: info.size };
  // pooled buffers (see BufferPool); merged is written before they go back
  const baseValues = base.readF32Into(name, pool.acquire(info.size));
  const stateValues = state.readF32Into(name, pool.acquire(info.size));
  const merged = inputs.method.output(job, baseValues, stateValues, gen.meta.scalars, inputs.params);
  let sq = 0;
  for (let i = 0; i < baseValues.length; i++) sq += (merged[i] - baseValues[i]) ** 2;
  mergedSketch?.addDiff(name, merged, baseValues);
  writer.write(name, merged);
  pool.release(baseValues);
  pool.release(stateValues);
  return Math.sqrt(sq);
}

function readRetention(sketchPath: string, mergedSketch: CountSketch): { task: number; rho: number }[] {
  const sketches = openModel(sketchPath);
  try {
    return retentionRow(sketches, mergedSketch);
  } finally {
    sketches.close();
  }
}
