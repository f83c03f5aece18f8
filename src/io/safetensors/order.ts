/** The on-disk tensor order of the HF safetensors writer, reproduced so outputs match byte for byte. */
import type { DType, TensorSpec } from '../types.js';
import { hfDtypeRank } from './dtype.js';

const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * Order of names as UTF-8 bytes (how Rust and Python sort strings). JS `<` compares UTF-16 units,
 * which agrees except around astral characters, so only those take the slow path.
 */
export function compareNames(a: string, b: string): number {
  if (a === b) return 0;
  if (SURROGATE.test(a) || SURROGATE.test(b)) return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  return a < b ? -1 : 1;
}

/** HF `prepare()`: dtype descending in the enum's alignment order, then name. */
export function compareHf(a: { name: string; dtype: DType }, b: { name: string; dtype: DType }): number {
  return hfDtypeRank(b.dtype) - hfDtypeRank(a.dtype) || compareNames(a.name, b.name);
}

export function hfOrder<T extends TensorSpec>(specs: readonly T[]): T[] {
  return [...specs].sort(compareHf);
}
