/**
 * CountSketch of a model-sized vector (design.md §6): element j of tensor `name` goes to bucket
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

  /** adds a − b (element-wise) of tensor `name` */
  addDiff(name: string, a: Float32Array, b: Float32Array): void {
    const seed = nameSeed(name);
    const out = this.buckets;
    for (let j = 0; j < a.length; j++) {
      // murmur3 fmix32 of (seed, j): low 16 bits pick the bucket, bit 16 the sign
      let h = (seed ^ Math.imul(j, 0x9e3779b1)) >>> 0;
      h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
      h ^= h >>> 16;
      const v = a[j] - b[j];
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
