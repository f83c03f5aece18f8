/** Element-wise helpers over Float32Array, accumulating in float64. */

export function sumSquares(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return s;
}

/**
 * Σ a[i]·b[i] in float64, as eight interleaved partial sums (element i into lane i mod 8) added
 * pairwise at the end. DOP's native loop (native/src/linalg/dop.cc) sums in this order, which lets
 * it run each sum as one vector of doubles, and both give the same bits.
 */
export function dot(a: Float32Array, b: Float32Array): number {
  const n = a.length;
  let s0 = 0,
    s1 = 0,
    s2 = 0,
    s3 = 0,
    s4 = 0,
    s5 = 0,
    s6 = 0,
    s7 = 0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
    s4 += a[i + 4] * b[i + 4];
    s5 += a[i + 5] * b[i + 5];
    s6 += a[i + 6] * b[i + 6];
    s7 += a[i + 7] * b[i + 7];
  }
  // the tail: lanes 0, 1, ... in turn
  for (let lane = 0; i < n; i++, lane++) {
    const p = a[i] * b[i];
    if (lane === 0) s0 += p;
    else if (lane === 1) s1 += p;
    else if (lane === 2) s2 += p;
    else if (lane === 3) s3 += p;
    else if (lane === 4) s4 += p;
    else if (lane === 5) s5 += p;
    else s6 += p;
  }
  return s0 + s1 + (s2 + s3) + (s4 + s5 + (s6 + s7));
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
