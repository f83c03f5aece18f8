/** Element-wise helpers over Float32Array, accumulating in float64. */

export function sumSquares(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return s;
}

export function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** a[i] −= b[i] in place; returns Σ b² and Σ (a − b)² over the stored float32 results */
export function subtractInPlace(a: Float32Array, b: Float32Array): { subtrahendSq: number; resultSq: number } {
  let bs = 0;
  let rs = 0;
  for (let i = 0; i < a.length; i++) {
    const x = b[i];
    const r = Math.fround(a[i] - x);
    a[i] = r;
    bs += x * x;
    rs += r * r;
  }
  return { subtrahendSq: bs, resultSq: rs };
}

/** out[i] = a[i] + s·b[i] (out may alias a or b) */
export function axpy(
  a: Float32Array,
  s: number,
  b: Float32Array,
  out: Float32Array = new Float32Array(a.length),
): Float32Array {
  for (let i = 0; i < a.length; i++) out[i] = a[i] + s * b[i];
  return out;
}

/** Index of the first ratio cumsum(σ)/sum(σ) that satisfies `pred`, or `fallback`. */
export function firstCumulativeIndex(s: Float64Array, pred: (ratio: number) => boolean, fallback: number): number {
  let total = 0;
  for (let i = 0; i < s.length; i++) total += s[i];
  let c = 0;
  for (let i = 0; i < s.length; i++) {
    c += s[i];
    if (pred(c / total)) return i;
  }
  return fallback;
}

/** d[j] += Σ_i a[i·width + j] · b[i·width + j] for columns j in [from, width) of two rows×width matrices */
export function addColumnDots(
  a: Float32Array,
  b: Float32Array,
  rows: number,
  width: number,
  from: number,
  d: Float64Array,
): void {
  for (let i = 0; i < rows; i++) {
    const row = i * width;
    for (let j = from; j < width; j++) d[j] += a[row + j] * b[row + j];
  }
}

/** a[i·width + j] *= s[j] for columns j in [from, width) of a rows×width matrix */
export function scaleColumns(a: Float32Array, rows: number, width: number, from: number, s: Float64Array): void {
  for (let i = 0; i < rows; i++) {
    const row = i * width;
    for (let j = from; j < width; j++) a[row + j] *= s[j];
  }
}
