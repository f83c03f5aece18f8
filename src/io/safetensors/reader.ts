/**
 * One safetensors file, opened and validated once, read one tensor at a time with positional
 * reads: memory stays O(one tensor) whatever the file size.
 */
import { closeSync, openSync } from 'node:fs';
import { FLOAT_DTYPES, InputError, type TensorInfo } from '../types.js';
import { decodeBF16, decodeF16, decodeF64, dtypeSize } from './dtype.js';
import { readFully, readHeader, type HeaderEntry, type ParsedHeader } from './header.js';
import { compareNames } from './order.js';

/** fs reads are capped near 2 GB per call; bigger tensors are read in pieces. */
const READ_CHUNK = 1 << 30;

export class SafetensorsFile {
  readonly header: ParsedHeader;
  /** tensors by name, sorted by name */
  readonly tensors: ReadonlyMap<string, HeaderEntry>;
  /** bytes of tensor data read so far (for metrics, and to prove reads stay local) */
  bytesRead = 0;
  private fd: number | null;
  /** chunk buffers of readF32Chunks, kept for the next call */
  private scratch: { raw: ArrayBuffer; f32: Float32Array<ArrayBuffer> } | null = null;

  private constructor(
    readonly path: string,
    fd: number,
    header: ParsedHeader,
  ) {
    this.fd = fd;
    this.header = header;
    const byName = [...header.entries].sort((a, b) => compareNames(a.name, b.name));
    this.tensors = new Map(byName.map((e) => [e.name, e]));
  }

  /** Opens and validates; throws InputError for a malformed file. */
  static open(path: string): SafetensorsFile {
    const fd = openSync(path, 'r');
    try {
      return new SafetensorsFile(path, fd, readHeader(fd, path));
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  info(name: string): HeaderEntry {
    const e = this.tensors.get(name);
    if (!e) throw new InputError(this.path, `no tensor named ${JSON.stringify(name)}`);
    return e;
  }

  /** The stored bytes, untouched, in a fresh (aligned, unpooled) Buffer. */
  readRaw(name: string): Buffer {
    const e = this.info(name);
    const buf = Buffer.allocUnsafeSlow(e.byteLength);
    this.readInto(e, buf);
    return buf;
  }

  /** Decodes a float tensor to float32; other dtypes are an InputError. */
  readF32(name: string): Float32Array {
    const e = this.info(name);
    if (!FLOAT_DTYPES.has(e.dtype)) {
      throw new InputError(this.path, `tensor ${JSON.stringify(name)} is ${e.dtype}, which does not decode to float32`);
    }
    // read straight into typed arrays of the stored width: no unaligned Buffers, one copy at most
    switch (e.dtype) {
      case 'F32': {
        const out = new Float32Array(e.size);
        this.readInto(e, new Uint8Array(out.buffer));
        return out;
      }
      case 'F64': {
        const raw = new Float64Array(e.size);
        this.readInto(e, new Uint8Array(raw.buffer));
        return decodeF64(raw);
      }
      default:
        // decoded chunk by chunk: no tensor-sized 16-bit buffer next to the result
        return this.readF32Into(name, new Float32Array(e.size));
    }
  }

  /**
   * Decodes a float tensor chunk by chunk (`chunkElems` elements at a time) through a scratch
   * buffer of this file: never a whole-tensor decode buffer. `fn` gets each chunk and its element
   * offset; the chunk is only valid during the call.
   */
  readF32Chunks(name: string, fn: (offset: number, chunk: Float32Array) => void, chunkElems = 1 << 20): void {
    const e = this.info(name);
    if (!FLOAT_DTYPES.has(e.dtype)) {
      throw new InputError(this.path, `tensor ${JSON.stringify(name)} is ${e.dtype}, which does not decode to float32`);
    }
    const es = dtypeSize(e.dtype);
    const n = Math.min(chunkElems, e.size);
    if (!this.scratch || this.scratch.raw.byteLength < n * es || this.scratch.f32.length < n) {
      this.scratch = { raw: new ArrayBuffer(n * es), f32: new Float32Array(n) };
    }
    const { raw, f32 } = this.scratch;
    for (let off = 0; off < e.size; off += n) {
      const len = Math.min(n, e.size - off);
      const bytes = new Uint8Array(raw, 0, len * es);
      this.readRange(e, off * es, bytes);
      let chunk: Float32Array;
      switch (e.dtype) {
        case 'F32':
          chunk = new Float32Array(raw, 0, len);
          break;
        case 'F64':
          chunk = decodeF64(new Float64Array(raw, 0, len), f32.subarray(0, len));
          break;
        case 'BF16':
          chunk = decodeBF16(new Uint16Array(raw, 0, len), f32.subarray(0, len));
          break;
        default:
          chunk = decodeF16(new Uint16Array(raw, 0, len), f32.subarray(0, len));
      }
      fn(off, chunk);
    }
  }

  /** Decodes a float tensor into `out` (exactly `size` elements): no tensor-sized temporaries. */
  readF32Into(name: string, out: Float32Array): Float32Array {
    const e = this.info(name);
    if (out.length !== e.size)
      throw new RangeError(`${this.path}: ${name} has ${e.size} elements, buffer has ${out.length}`);
    if (e.dtype === 'F32') this.readInto(e, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
    else this.readF32Chunks(name, (off, chunk) => out.set(chunk, off));
    return out;
  }

  private readRange(e: HeaderEntry, byteOffset: number, dst: Uint8Array): void {
    if (this.fd === null) throw new Error(`${this.path}: file is closed`);
    const got = readFully(this.fd, dst, this.header.dataStart + e.begin + byteOffset);
    this.bytesRead += got;
    if (got < dst.byteLength) {
      throw new InputError(
        this.path,
        `tensor ${JSON.stringify(e.name)}: file ended early (changed after it was opened?)`,
      );
    }
  }

  private readInto(e: HeaderEntry, dst: Uint8Array): void {
    if (this.fd === null) throw new Error(`${this.path}: file is closed`);
    const start = this.header.dataStart + e.begin;
    for (let off = 0; off < e.byteLength; off += READ_CHUNK) {
      const part = dst.subarray(off, Math.min(off + READ_CHUNK, e.byteLength));
      const got = readFully(this.fd, part, start + off);
      this.bytesRead += got;
      if (got < part.byteLength) {
        throw new InputError(
          this.path,
          `tensor ${JSON.stringify(e.name)}: file ended early (changed after it was opened?)`,
        );
      }
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Public shape of a tensor, without file offsets. */
export function tensorInfo(e: HeaderEntry): TensorInfo {
  return { name: e.name, dtype: e.dtype, shape: [...e.shape], size: e.size, byteLength: e.byteLength };
}
