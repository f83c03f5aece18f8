import { join } from 'node:path';
import { createModelWriter } from '../../src/io/model.js';
import type { DType, TensorSpec } from '../../src/io/types.js';
import { rng } from '../engine/reference.js';

/**
 * A tiny model as real safetensors files, written with the project's writer: a few small tensors
 * of every kind the runner meets (linear F32 and BF16 matrices, an F16 vector, an embedding that
 * is not linear, a bias) and an integer tensor that is copied, never merged. Checkpoints are the
 * base plus seeded noise on every float tensor; the integer tensor is the base's.
 */
export const TINY_SPECS: readonly TensorSpec[] = [
  { name: 'blocks.0.fc.weight', dtype: 'F32', shape: [6, 4] },
  { name: 'blocks.0.fc.bias', dtype: 'F32', shape: [6] },
  { name: 'blocks.0.proj.weight', dtype: 'BF16', shape: [4, 6] },
  { name: 'blocks.0.norm.weight', dtype: 'F16', shape: [4] },
  { name: 'embed_tokens.weight', dtype: 'F32', shape: [5, 4] },
  { name: 'position_ids', dtype: 'I64', shape: [5] },
];

/** The tensors the default rule treats as linear (float, 2-D, `.weight`, not an embedding). */
export const TINY_LINEAR = ['blocks.0.fc.weight', 'blocks.0.proj.weight'];

export interface TinyModel {
  base: string;
  checkpoints: string[];
}

const FLOAT: ReadonlySet<DType> = new Set(['F32', 'BF16', 'F16']);

function gaussian(next: () => number, n: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(next(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  }
  return out;
}

function writeModel(path: string, values: ReadonlyMap<string, Float32Array>): void {
  const writer = createModelWriter(path, TINY_SPECS);
  for (const name of writer.order) {
    const spec = TINY_SPECS.find((s) => s.name === name)!;
    if (FLOAT.has(spec.dtype)) writer.write(name, values.get(name)!);
    else writer.write(name, Buffer.from(BigInt64Array.from([0n, 1n, 2n, 3n, 4n]).buffer));
  }
  writer.commit();
}

/** Writes base.safetensors and task_<i>.safetensors (i < count) into `dir`. */
export function writeTinyModel(dir: string, count = 3, seed = 5): TinyModel {
  const next = rng(seed);
  const size = (s: TensorSpec) => s.shape.reduce((a, b) => a * b, 1);
  const floats = TINY_SPECS.filter((s) => FLOAT.has(s.dtype));
  const base = new Map(floats.map((s) => [s.name, gaussian(next, size(s), 0.5)]));
  writeModel(join(dir, 'base.safetensors'), base);
  const checkpoints: string[] = [];
  for (let i = 0; i < count; i++) {
    const tuned = new Map(
      floats.map((s) => {
        const noise = gaussian(next, size(s), 0.05);
        return [s.name, base.get(s.name)!.map((x, j) => x + noise[j])];
      }),
    );
    const path = join(dir, `task_${i}.safetensors`);
    writeModel(path, tuned);
    checkpoints.push(path);
  }
  return { base: join(dir, 'base.safetensors'), checkpoints };
}
