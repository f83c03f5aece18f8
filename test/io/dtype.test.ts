/**
 * Float conversions against an independent oracle: the nearest representable value found by
 * search over the decoded target values, ties to even, computed in float64.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBF16, decodeF16, decodeToF32, encodeBF16, encodeF16 } from '../../src/io/safetensors/dtype.js';

const f32 = (bits: number[]) => new Float32Array(new Uint32Array(bits).buffer);
const bitsOf = (x: Float32Array) => [...new Uint32Array(x.buffer, x.byteOffset, x.length)];

/** positive finite halves in increasing order, with their values */
const HALF_VALUES = decodeF16(new Uint16Array(Array.from({ length: 0x7c00 }, (_, i) => i)));
const HALF_MAX = 65504;

/** Nearest half to |v| (ties to even mantissa), overflow to Inf the IEEE way, sign restored. */
function oracleF16(v: number, bits: number): number {
  const sign = bits >>> 31 ? 0x8000 : 0;
  if (Number.isNaN(v)) return sign | 0x7e00;
  const a = Math.abs(v);
  // IEEE: round as if the exponent range were unbounded; ≥ 65520 (MAX + half an ulp) becomes Inf
  if (a >= HALF_MAX + 16) return sign | 0x7c00;
  let lo = 0,
    hi = 0x7bff;
  while (lo < hi) {
    // largest h with value(h) <= a
    const mid = (lo + hi + 1) >> 1;
    if (HALF_VALUES[mid]! <= a) lo = mid;
    else hi = mid - 1;
  }
  if (lo === 0x7bff) return sign | lo;
  const dLo = a - HALF_VALUES[lo]!,
    dHi = HALF_VALUES[lo + 1]! - a;
  const h = dLo < dHi ? lo : dHi < dLo ? lo + 1 : lo & 1 ? lo + 1 : lo;
  return sign | h;
}

function oracleBF16(bits: number): number {
  const v = f32([bits])[0]!;
  if (Number.isNaN(v)) return 0x7fc0;
  const lo = (bits & 0xffff0000) >>> 0;
  const vLo = f32([lo])[0]!;
  if (!Number.isFinite(v) || v === vLo) return lo >>> 16;
  const hi = lo + 0x10000; // next bf16 away from zero (may be Inf: correct IEEE overflow)
  // Inf stands for 2^128 here: IEEE rounds as if the exponent range were unbounded
  const vHi = (hi & 0x7fffffff) === 0x7f800000 ? Math.sign(v) * 2 ** 128 : f32([hi])[0]!;
  const dLo = Math.abs(v - vLo),
    dHi = Math.abs(vHi - v);
  const pick = dLo < dHi ? lo : dHi < dLo ? hi : (lo >>> 16) & 1 ? hi : lo;
  return pick >>> 16;
}

/** deterministic pseudo-random 32-bit patterns */
function* patterns(n: number): Generator<number> {
  let s = 0x12345678;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    yield s >>> 0;
  }
}

test('F16: every half decodes and re-encodes to itself (NaN → a NaN)', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = encodeF16(decodeF16(all));
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNaN) assert.ok((back[h]! & 0x7c00) === 0x7c00 && (back[h]! & 0x3ff) !== 0, `NaN ${h.toString(16)}`);
    else assert.equal(back[h], h, `half 0x${h.toString(16)}`);
  }
});

test('BF16: every bfloat16 decodes and re-encodes to itself (NaN → 0x7fc0)', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = encodeBF16(decodeBF16(all));
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
    assert.equal(back[h], isNaN ? 0x7fc0 : h, `bf16 0x${h.toString(16)}`);
  }
});

test('F16 encode matches the oracle on random floats, every tie, and the subnormal range', () => {
  const bits: number[] = [...patterns(100_000)];
  // values near the half range: random mantissas with exponents 2^-26 .. 2^16
  for (const r of patterns(100_000)) bits.push(((r & 0x807fffff) | ((101 + ((r >>> 23) % 42)) << 23)) >>> 0);
  // exact midpoints between consecutive halves (ties), including subnormal and overflow ties
  for (let h = 0; h < 0x7bff; h += 7) {
    const mid = (HALF_VALUES[h]! + HALF_VALUES[h + 1]!) / 2;
    bits.push(bitsOf(new Float32Array([mid]))[0]!, bitsOf(new Float32Array([-mid]))[0]!);
  }
  const src = f32(bits);
  const out = encodeF16(src);
  for (let i = 0; i < src.length; i++) {
    assert.equal(out[i], oracleF16(src[i]!, bits[i]!), `0x${bits[i]!.toString(16)} (${src[i]})`);
  }
});

test('BF16 encode matches the oracle on random floats and ties', () => {
  const bits = [...patterns(200_000)];
  for (const r of patterns(20_000)) bits.push(((r & 0xffff0000) | 0x8000) >>> 0); // exact ties
  const out = encodeBF16(f32(bits));
  bits.forEach((b, i) => assert.equal(out[i], oracleBF16(b), `0x${b.toString(16)}`));
});

test('BF16 crafted ties round to even; NaN, Inf, overflow', () => {
  const cases: [number, number][] = [
    [0x3f808000, 0x3f80], // 1 + 2^-8: tie, even below
    [0x3f818000, 0x3f82], // tie, odd below → up
    [0x3f808001, 0x3f81], // just above the tie
    [0x3f807fff, 0x3f80], // just below the tie
    [0x7f7fffff, 0x7f80], // float32 max overflows to Inf
    [0xff7fffff, 0xff80],
    [0x7f800000, 0x7f80], // Inf
    [0xff800000, 0xff80],
    [0x7fc00001, 0x7fc0], // NaN stays NaN
    [0xffffffff, 0x7fc0],
    [0x7f800001, 0x7fc0], // signalling NaN whose payload sits in the dropped bits stays NaN
    [0x00000001, 0x0000], // smallest subnormal float32 rounds to zero
    [0x80000000, 0x8000], // -0
  ];
  const out = encodeBF16(f32(cases.map((c) => c[0])));
  cases.forEach(([inp, exp], i) => assert.equal(out[i], exp, `0x${inp.toString(16)}`));
});

test('F16 crafted cases: ties, subnormals, overflow, NaN, Inf', () => {
  const cases: [number, number][] = [
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: even (1)
    [1 + 3 * 2 ** -11, 0x3c02], // tie, odd below → up
    [65504, 0x7bff], // max half
    [65519.99, 0x7bff], // below the overflow tie
    [65520, 0x7c00], // tie at the top: rounds to Inf
    [1e6, 0x7c00],
    [-1e6, 0xfc00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // tie between 0 and 2^-24: even (0)
    [2 ** -25 * 1.0000001, 0x0001],
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal units: even (2)
    [2 ** -14 - 2 ** -25, 0x0400], // rounds up from the top subnormal to the smallest normal
    [2 ** -14, 0x0400],
    [-(2 ** -24), 0x8001],
    [-0, 0x8000],
  ];
  const out = encodeF16(new Float32Array(cases.map((c) => c[0])));
  cases.forEach(([inp, exp], i) => assert.equal(out[i], exp, `${inp}`));
  const nan = encodeF16(new Float32Array([NaN, -NaN]));
  assert.equal(nan[0]! & 0x7e00, 0x7e00);
  assert.equal(decodeF16(nan).every(Number.isNaN), true);
});

test('decodeToF32 handles unaligned input and F64 rounding to nearest', () => {
  const values = new Float64Array([1 + 2 ** -24, 1 + 3 * 2 ** -24, 0.1, -1e300, 1e-50]);
  const bytes = new Uint8Array(values.byteLength + 1);
  bytes.set(new Uint8Array(values.buffer), 1);
  const out = decodeToF32('F64', bytes.subarray(1));
  // 1 + 2^-24 is a tie between 1 and 1 + 2^-23: even (1); 1 + 3·2^-24 ties up to 1 + 2^-22
  assert.deepEqual([...out], [1, 1 + 2 ** -22, Math.fround(0.1), -Infinity, 0]);

  const half = new Uint8Array(5);
  half.set([0x00, 0x3c, 0x00, 0xc0], 1); // 1.0, -2.0 as F16 at an odd offset
  assert.deepEqual([...decodeToF32('F16', half.subarray(1))], [1, -2]);
  const bf = new Uint8Array(5);
  bf.set([0x80, 0x3f, 0x00, 0xc0], 1); // 1.0, -2.0 as BF16
  assert.deepEqual([...decodeToF32('BF16', bf.subarray(1))], [1, -2]);
  assert.throws(() => decodeToF32('I32', new Uint8Array(4)), /does not decode/);
});
