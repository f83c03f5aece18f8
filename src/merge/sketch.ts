import { createModelWriter } from '../io/model.js';
import type { ModelReader } from '../io/types.js';

/**
 * CountSketch of a model-sized vector (docs/architecture.md#metrics): element j of tensor `name` goes to bucket
 * h(name, j) mod B with sign s(name, j), from a seeded hash, so ⟨sk(x), sk(y)⟩ is an unbiased
 * estimate of ⟨x, y⟩ with standard deviation about ‖x‖‖y‖/√B. Fixed size per task whatever the
 * model size: it lets the retention ρ[t][i] = ⟨M_t − θ0, τ_i⟩ / ‖τ_i‖² be estimated without
 * keeping any τ_i.
 */
export const SKETCH_BUCKETS = 1 << 16;

function nameSeed(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class CountSketch {
  readonly buckets = new Float64Array(SKETCH_BUCKETS);

  /** adds a − b (element-wise) of tensor `name`; without b, adds a */
  addDiff(name: string, a: Float32Array, b?: Float32Array): void {
    const seed = nameSeed(name);
    const out = this.buckets;
    for (let j = 0; j < a.length; j++) {
      // murmur3 fmix32 of (seed, j): low 16 bits pick the bucket, bit 16 the sign
      let h = (seed ^ Math.imul(j, 0x9e3779b1)) >>> 0;
      h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
      h ^= h >>> 16;
      const v = b ? a[j] - b[j] : a[j];
      out[h & 0xffff] += h & 0x10000 ? v : -v;
    }
  }

  toFloat32(): Float32Array {
    return Float32Array.from(this.buckets);
  }
}

export function sketchDot(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < SKETCH_BUCKETS; i++) s += x[i] * y[i];
  return s;
}

/**
 * The task sketches of a merge-state generation: `sketches.safetensors` with one F32 tensor
 * `tau.<i>` per merged task i and the exact ‖τ_i‖² in the metadata. Each generation copies the
 * previous one's rows (256 KiB per task on disk) and adds its own; rows are read one at a time.
 */
export const SKETCH_FILE = 'sketches.safetensors';

export function writeTaskSketches(
  dest: string,
  prev: ModelReader | null,
  t: number,
  tau: CountSketch,
  taskSq: number,
): void {
  const prevSq: (number | null)[] = prev ? (JSON.parse(prev.metadata.task_sq ?? '[]') as (number | null)[]) : [];
  const rows = Array.from({ length: t }, (_, i) => i + 1).filter((i) => i === t || prev?.tensors.has(`tau.${i}`));
  const sq = Array.from({ length: t }, (_, i) => (i + 1 === t ? taskSq : (prevSq[i] ?? null)));
  const w = createModelWriter(
    dest,
    rows.map((i) => ({ name: `tau.${i}`, dtype: 'F32' as const, shape: [SKETCH_BUCKETS] })),
    { metadata: { task_sq: JSON.stringify(sq) } },
  );
  try {
    for (const name of w.order) w.write(name, name === `tau.${t}` ? tau.toFloat32() : prev!.readF32(name));
    w.commit();
  } catch (e) {
    w.abort();
    throw e;
  }
}

/** ρ[t][i] = ⟨sk(M_t − θ0), sk(τ_i)⟩ / ‖τ_i‖² for every task i with a sketch */
export function retentionRow(sketches: ModelReader, merged: CountSketch): { task: number; rho: number }[] {
  const sq = JSON.parse(sketches.metadata.task_sq ?? '[]') as (number | null)[];
  const out: { task: number; rho: number }[] = [];
  for (const name of sketches.tensors.keys()) {
    const i = Number(name.slice('tau.'.length));
    const s = sq[i - 1];
    if (!s) continue;
    out.push({ task: i, rho: sketchDot(merged.buckets, sketches.readF32(name)) / s });
  }
  return out.sort((a, b) => a.task - b.task);
}
