/**
 * Element sizes and float conversions between the stored dtypes and float32.
 * All conversions work on typed-array views of whole tensors: no per-element allocation.
 */
import { endianness } from 'node:os';
import type { DType } from '../types.js';

// safetensors data is little-endian; typed-array views use host order, so refuse big-endian hosts.
if (endianness() !== 'LE') throw new Error('cmerge safetensors I/O needs a little-endian host');

const SIZES: Readonly<Record<DType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(SIZES, s);
}

export function dtypeSize(d: DType): number {
  return SIZES[d];
}

/**
 * Rank used by the HF writer to order tensors: its `Dtype` enum order (declared in increasing
 * alignment); tensors are sorted by this rank descending, then by name.
 */
const HF_RANK: readonly DType[] = [
  'BOOL',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
];
export function hfDtypeRank(d: DType): number {
  return HF_RANK.indexOf(d);
}

/** True when `bytes` can be viewed as elements of `size` bytes without copying. */
function aligned(bytes: Uint8Array, size: number): boolean {
  return bytes.byteOffset % size === 0 && bytes.byteLength % size === 0;
}

/** A view of `bytes` aligned to `size`, copying only when the source is unaligned (fs Buffers may be). */
function alignedBuffer(bytes: Uint8Array, size: number): ArrayBuffer {
  if (bytes.byteLength % size !== 0)
    throw new RangeError(`byte length ${bytes.byteLength} is not a multiple of ${size}`);
  if (aligned(bytes, size)) return bytes.buffer as ArrayBuffer;
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy.buffer;
}

function u16View(bytes: Uint8Array): Uint16Array {
  const buf = alignedBuffer(bytes, 2);
  return buf === bytes.buffer ? new Uint16Array(buf, bytes.byteOffset, bytes.byteLength / 2) : new Uint16Array(buf);
}

// F16 → F32 through a 64K-entry table: exact by construction and one load per element.
let f16Table: Float32Array | null = null;
function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    let v: number;
    if (e === 0) v = m * 2 ** -24;
    else if (e === 31) v = m === 0 ? Infinity : NaN;
    else v = (1024 + m) * 2 ** (e - 25);
    t[h] = sign * v;
  }
  // keep NaN payloads and signs: rebuild NaNs bitwise
  const bits = new Uint32Array(t.buffer);
  for (let h = 0x7c01; h < 0x8000; h++) {
    bits[h] = 0x7f800000 | ((h & 0x3ff) << 13);
    bits[h | 0x8000] = 0xff800000 | ((h & 0x3ff) << 13);
  }
  f16Table = t;
  return t;
}

export function decodeF16(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const t = f16ToF32Table();
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]!]!;
  return out;
}

export function decodeBF16(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const o = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) o[i] = src[i]! << 16;
  return out;
}

/** float64 → float32 rounds to nearest even (the typed-array conversion is IEEE roundTiesToEven). */
export function decodeF64(src: Float64Array, out = new Float32Array(src.length)): Float32Array {
  out.set(src);
  return out;
}

/** Decode stored little-endian bytes of a float dtype to a new Float32Array. */
export function decodeToF32(dtype: DType, bytes: Uint8Array): Float32Array {
  const n = bytes.byteLength / dtypeSize(dtype);
  switch (dtype) {
    case 'F32': {
      const out = new Float32Array(n);
      new Uint8Array(out.buffer).set(bytes);
      return out;
    }
    case 'F16':
      return decodeF16(u16View(bytes));
    case 'BF16':
      return decodeBF16(u16View(bytes));
    case 'F64': {
      const buf = alignedBuffer(bytes, 8);
      const src = buf === bytes.buffer ? new Float64Array(buf, bytes.byteOffset, n) : new Float64Array(buf);
      return decodeF64(src);
    }
    default:
      throw new RangeError(`dtype ${dtype} does not decode to float32`);
  }
}

/** float32 → bfloat16, round to nearest even; NaN → 0x7FC0 (PyTorch's canonical NaN); overflow → ±Inf. */
export function encodeBF16(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  const s = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < s.length; i++) {
    const x = s[i]!;
    if ((x & 0x7fffffff) > 0x7f800000) out[i] = 0x7fc0;
    // adding 0x7fff plus the kept lsb rounds ties to even; a carry into the exponent is correct rounding
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** float32 → IEEE half, round to nearest even, with subnormals; NaN keeps its sign (0x7E00 like PyTorch). */
export function encodeF16(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  const s = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < s.length; i++) {
    const x = s[i]!;
    const sign = (x >>> 16) & 0x8000;
    const a = x & 0x7fffffff;
    if (a >= 0x477ff000) {
      // ≥ 65520 rounds to Inf; Inf stays Inf; NaN stays NaN
      out[i] = sign | (a > 0x7f800000 ? 0x7e00 : 0x7c00);
    } else if (a >= 0x38800000) {
      // normal half: rebias the exponent (127 → 15) and round 13 mantissa bits away
      out[i] = sign | ((a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13);
    } else if (a > 0x33000000) {
      // subnormal half: value / 2^-24, rounded to nearest even (2^-25 itself is a tie → 0)
      const mant = (a & 0x7fffff) | 0x800000;
      const shift = 126 - (a >>> 23);
      let q = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && (q & 1) === 1)) q++;
      out[i] = sign | q;
    } else {
      out[i] = sign;
    }
  }
  return out;
}

export function encodeF64(src: Float32Array): Float64Array {
  return Float64Array.from(src);
}

/**
 * Encode float32 values as the bytes of `dtype`. The result may share memory with `src` (F32)
 * or with `scratch` when given and large enough.
 */
export function encodeFromF32(dtype: DType, src: Float32Array, scratch?: ArrayBuffer): Uint8Array {
  switch (dtype) {
    case 'F32':
      return new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    case 'BF16':
    case 'F16': {
      const out =
        scratch && scratch.byteLength >= src.length * 2
          ? new Uint16Array(scratch, 0, src.length)
          : new Uint16Array(src.length);
      (dtype === 'BF16' ? encodeBF16 : encodeF16)(src, out);
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    }
    case 'F64': {
      const out =
        scratch && scratch.byteLength >= src.length * 8
          ? new Float64Array(scratch, 0, src.length)
          : new Float64Array(src.length);
      out.set(src);
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    }
    default:
      throw new RangeError(`cannot encode float32 data as ${dtype}`);
  }
}
