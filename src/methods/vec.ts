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

/** out[i] = a[i] − b[i] (out may alias a or b) */
export function sub(a: Float32Array, b: Float32Array, out: Float32Array = new Float32Array(a.length)): Float32Array {
  for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i];
  return out;
}

/** out[i] = a[i] + s·b[i] (out may alias a or b) */
export function axpy(a: Float32Array, s: number, b: Float32Array, out: Float32Array = new Float32Array(a.length)): Float32Array {
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
