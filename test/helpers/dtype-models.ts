/**
 * Small models whose float tensors are all stored in one chosen dtype, with an integer
 * `position_ids` (copied, never merged), for the tests of float dtype mixes between base and
 * checkpoints: the same values can be written as F32, BF16, F16 or F64.
 */
import { normalRng } from '../../src/demo/random.js';
import { createModelWriter } from '../../src/io/model.js';
import { decodeToF32, encodeFromF32 } from '../../src/io/safetensors/dtype.js';
import type { DType, TensorSpec } from '../../src/io/types.js';

export const FLOATS: readonly { name: string; shape: number[] }[] = [
  { name: 'layers.0.fc1.weight', shape: [24, 16] },
  { name: 'layers.0.fc1.bias', shape: [24] },
  { name: 'layers.0.fc2.weight', shape: [16, 24] },
  { name: 'layers.0.norm.weight', shape: [16] },
  { name: 'head.weight', shape: [4, 16] },
];
export const POSITIONS = 'position_ids';

/** float values per tensor name */
export type Values = Map<string, Float32Array>;

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** The values as `dtype` stores them: rounded to nearest even, then read back as float32. */
export function rounded(dtype: DType, values: Values): Values {
  return new Map([...values].map(([name, x]) => [name, decodeToF32(dtype, encodeFromF32(dtype, x))]));
}

/** Writes every float tensor in `dtype` and position_ids 0..11 in `intDtype` (I64 unless given). */
export function writeModel(path: string, dtype: DType, values: Values, intDtype: 'I64' | 'I32' = 'I64'): string {
  const specs: TensorSpec[] = [
    ...FLOATS.map((f) => ({ name: f.name, dtype, shape: f.shape })),
    { name: POSITIONS, dtype: intDtype, shape: [12] },
  ];
  const w = createModelWriter(path, specs);
  const ids = Array.from({ length: 12 }, (_, i) => i);
  for (const name of w.order) {
    if (name !== POSITIONS) w.write(name, values.get(name)!);
    else if (intDtype === 'I64') w.write(name, Buffer.from(BigInt64Array.from(ids.map(BigInt)).buffer));
    else w.write(name, Buffer.from(Int32Array.from(ids).buffer));
  }
  w.commit();
  return path;
}

/** Seeded base values, N(0, 0.5²). */
export function baseValues(seed: number): Values {
  const g = normalRng(seed);
  return new Map(FLOATS.map((f) => [f.name, Float32Array.from({ length: numel(f.shape) }, () => 0.5 * g())]));
}

/** A fine-tune of `base`: base + N(0, 0.02²), values a 16-bit float cannot hold. */
export function tuned(base: Values, seed: number): Values {
  const g = normalRng(seed);
  return new Map([...base].map(([name, x]) => [name, x.map((v) => v + 0.02 * g())]));
}
