/**
 * The task vector of one base tensor under a PEFT LoRA adapter (docs/lora.md): scaling · B A
 * ('linear', B out×r, A r×in), or scaling · (B A)ᵀ = scaling · Aᵀ Bᵀ ('transposed': fan_in_fan_out;
 * 'embedding'), the product by the engine in float32 from factors decoded to float32, as PEFT's
 * get_delta_weight does; plus (replacement − θ0) where the adapter saved the whole tensor. Only the
 * factors of this tensor are read; nothing for a tensor the adapter does not change.
 */
import type { Engine } from '../engine/types.js';
import type { LoraAdapter, LoraFactors } from '../io/lora/adapter.js';
import type { ModelReader } from '../io/types.js';
import { assertFinite } from './validate.js';

/** τ of base tensor `name` (float32, the base tensor's shape), or null when the adapter leaves it at θ0. */
export async function adapterTau(
  adapter: LoraAdapter,
  base: ModelReader,
  engine: Engine,
  name: string,
): Promise<Float32Array | null> {
  const target = adapter.targets.get(name);
  if (!target) return null;
  const delta = target.lora ? await loraDelta(adapter, target.lora, engine) : null;
  let tau = delta;
  if (target.replacement) {
    const replacement = readFactor(adapter, target.replacement);
    const theta0 = base.readF32(name);
    // τ = (replacement − θ0) + ΔW, rounded once to float32
    if (delta) for (let i = 0; i < delta.length; i++) delta[i] = replacement[i] - theta0[i] + delta[i];
    else for (let i = 0; i < replacement.length; i++) replacement[i] -= theta0[i];
    tau = delta ?? replacement;
  }
  assertFinite(adapter.path, `${name} (its update from the adapter)`, tau!);
  return tau;
}

/** ΔW = scaling · B A (or its transpose), float32. */
async function loraDelta(adapter: LoraAdapter, f: LoraFactors, engine: Engine): Promise<Float32Array> {
  const a = readFactor(adapter, f.a);
  const b = readFactor(adapter, f.b);
  const [rank, inner] = adapter.weights.tensors.get(f.a)!.shape;
  const outer = adapter.weights.tensors.get(f.b)!.shape[0];
  const delta =
    f.layout === 'linear'
      ? await engine.matmul(b, a, outer, rank, inner) // (out×r)(r×in)
      : await engine.matmul(a, b, inner, rank, outer, { transA: true, transB: true }); // Aᵀ Bᵀ
  const s = f.scaling;
  for (let i = 0; i < delta.length; i++) delta[i] *= s;
  return delta;
}

function readFactor(adapter: LoraAdapter, name: string): Float32Array {
  const values = adapter.weights.readF32(name);
  assertFinite(adapter.weights.path, name, values);
  return values;
}
