import { createHash } from 'node:crypto';
import { FLOAT_DTYPES, InputError, type ModelReader } from '../io/types.js';

/**
 * Tensor-set checks of a checkpoint against the base: names, shapes, dtypes. Float dtypes may
 * differ (a float32 fine-tune of a bf16 base: every value is decoded to float32 anyway); integer,
 * bool and float8 tensors must keep the base's dtype.
 */
export function validateAgainstBase(base: ModelReader, ckpt: ModelReader): void {
  const missing = [...base.tensors.keys()].filter((n) => !ckpt.tensors.has(n));
  if (missing.length) throw new InputError(ckpt.path, `tensor missing against the base: ${list(missing)}`);
  const extra = [...ckpt.tensors.keys()].filter((n) => !base.tensors.has(n));
  if (extra.length) throw new InputError(ckpt.path, `tensor not in the base: ${list(extra)}`);
  for (const [name, want] of base.tensors) {
    const got = ckpt.tensors.get(name)!;
    if (got.shape.length !== want.shape.length || got.shape.some((dim, i) => dim !== want.shape[i])) {
      throw new InputError(ckpt.path, `shape mismatch for ${name}: [${got.shape}] vs base [${want.shape}]`);
    }
    if (got.dtype !== want.dtype && !(FLOAT_DTYPES.has(got.dtype) && FLOAT_DTYPES.has(want.dtype))) {
      throw new InputError(
        ckpt.path,
        `dtype mismatch for ${name}: ${got.dtype} vs base ${want.dtype} (only float dtypes may differ from the base's)`,
      );
    }
  }
}

function list(names: string[]): string {
  return names.slice(0, 3).join(', ') + (names.length > 3 ? ` and ${names.length - 3} more` : '');
}

/**
 * The float dtypes a model's tensors are stored in, as lineage records them: "F32", or several
 * joined by "+" in name order ("BF16+F32") when they differ.
 */
export function floatDtypes(model: ModelReader): string {
  const found = new Set([...model.tensors.values()].map((t) => t.dtype).filter((d) => FLOAT_DTYPES.has(d)));
  return [...found].sort().join('+');
}

/** Identifies a model's structure (names, dtypes, shapes, size) cheaply, without reading data. */
export function structureFingerprint(model: ModelReader): string {
  const h = createHash('sha256');
  for (const [name, t] of model.tensors) h.update(`${name}\0${t.dtype}\0${t.shape.join(',')}\n`);
  h.update(String(model.dataBytes));
  return h.digest('hex').slice(0, 32);
}

/** Throws an InputError when a decoded checkpoint tensor holds NaN or ±Inf. */
export function assertFinite(path: string, name: string, x: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]))
      throw new InputError(path, `tensor ${name} has a non-finite value (${x[i]}) at element ${i}`);
  }
}
