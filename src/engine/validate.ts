/** Argument checks shared by both engines, so they fail the same way on the same bad input. */

export function checkDim(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1 || value > 0x7fffffff) {
    throw new RangeError(`${name} must be a positive 32-bit integer, got ${value}`);
  }
}

export function checkMatrix(a: unknown, rows: number, cols: number, name: string): asserts a is Float32Array {
  if (!(a instanceof Float32Array)) throw new TypeError(`${name} must be a Float32Array`);
  if (a.length !== rows * cols) {
    throw new RangeError(`${name} has ${a.length} elements, expected ${rows}×${cols} = ${rows * cols}`);
  }
}

/** NaN/Inf would make an eigensolver fail or return garbage; say so plainly instead. */
export function checkFinite(a: Float32Array, name: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new RangeError(`${name} has a non-finite value at index ${i}`);
  }
}

/** The checks both engines run before a product: dimensions and array sizes. */
export function checkMatmulArgs(a: unknown, b: unknown, m: number, k: number, n: number): void {
  checkDim(m, 'm');
  checkDim(k, 'k');
  checkDim(n, 'n');
  checkMatrix(a, m, k, 'a');
  checkMatrix(b, k, n, 'b');
}

/** The checks both engines run before an SVD: dimensions, size, and finite input. */
export function checkSvdArgs(a: unknown, m: number, n: number): asserts a is Float32Array {
  checkDim(m, 'm');
  checkDim(n, 'n');
  checkMatrix(a, m, n, 'a');
  checkFinite(a, 'a');
}
