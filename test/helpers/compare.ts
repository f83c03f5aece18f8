import { openModel } from '../../src/io/model.js';
import { decodeBF16, encodeBF16 } from '../../src/io/safetensors/dtype.js';
import type { ModelReader } from '../../src/io/types.js';

/**
 * The parity rule of shared/fixtures/parity/README.md, as reference/check.py applies it: a tensor
 * passes when its relative Frobenius distance to the float64 result is at most
 * max(baseTol, 3 × the float32 reference's distance); bfloat16 outputs must also be the rounded
 * exact value on all but max(0.5 %, 3 × the reference's share) of elements. Non-finite fails.
 */
export interface ParityResult {
  ok: boolean;
  failures: string[];
  worst: number;
}

function f64(r: ModelReader, name: string): Float64Array {
  const info = r.tensors.get(name)!;
  if (info.dtype === 'F64') {
    const raw = r.readRaw(name);
    return new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  }
  return Float64Array.from(r.readF32(name));
}

function rel(x: Float64Array, y: Float64Array): number {
  let d = 0,
    n = 0;
  for (let i = 0; i < x.length; i++) {
    d += (x[i] - y[i]) ** 2;
    n += y[i] ** 2;
  }
  return n > 0 ? Math.sqrt(d) / Math.sqrt(n) : Math.sqrt(d);
}

/** torch's float64 → bfloat16 goes through float32: round twice, as it does */
function roundToBf16(x: Float64Array): Float32Array {
  return decodeBF16(encodeBF16(Float32Array.from(x)));
}

export function checkParity(outPath: string, expPath: string, exp64Path: string, baseTol?: number): ParityResult {
  const a = openModel(outPath),
    b = openModel(expPath),
    c = openModel(exp64Path);
  try {
    const failures: string[] = [];
    let worst = 0;
    const namesA = [...a.tensors.keys()].sort().join('\n');
    const namesB = [...b.tensors.keys()].sort().join('\n');
    if (namesA !== namesB) return { ok: false, failures: ['tensor names differ'], worst: Infinity };
    for (const [name, ib] of b.tensors) {
      const ia = a.tensors.get(name)!;
      const tol = baseTol ?? (ib.dtype === 'BF16' ? 0 : 1e-5);
      if (ia.dtype !== ib.dtype || ia.shape.join() !== ib.shape.join()) {
        failures.push(`${name}: dtype/shape ${ia.dtype}[${ia.shape}] != ${ib.dtype}[${ib.shape}]`);
        continue;
      }
      if (!['F32', 'F16', 'BF16', 'F64'].includes(ib.dtype)) {
        if (!a.readRaw(name).equals(b.readRaw(name))) failures.push(`${name}: integer tensor differs`);
        continue;
      }
      const x = f64(a, name),
        y = f64(b, name),
        z = f64(c, name);
      if (x.some((v) => !Number.isFinite(v))) {
        failures.push(`${name}: non-finite values`);
        continue;
      }
      if (ib.dtype === 'BF16') {
        const r = roundToBf16(z);
        let mis = 0,
          misRef = 0;
        for (let i = 0; i < r.length; i++) {
          if (x[i] !== r[i]) mis++;
          if (y[i] !== r[i]) misRef++;
        }
        mis /= r.length;
        misRef /= r.length;
        if (mis > Math.max(0.005, 3 * misRef)) {
          failures.push(
            `${name}: ${(mis * 100).toFixed(2)}% of elements are not the rounded exact value (reference ${(misRef * 100).toFixed(2)}%)`,
          );
          continue;
        }
      }
      const err = rel(x, z);
      const bound = Math.max(tol, 3 * rel(y, z));
      worst = Math.max(worst, bound > 0 ? err / bound : err === 0 ? 0 : Infinity);
      if (!(err <= bound))
        failures.push(`${name}: relative error ${err.toExponential(3)} > bound ${bound.toExponential(3)}`);
    }
    return { ok: failures.length === 0, failures, worst };
  } finally {
    a.close();
    b.close();
    c.close();
  }
}
