/**
 * Streaming safetensors writer: the header is known up front from the specs, tensors follow one
 * at a time in HF order into a dot-prefixed temp file, and nothing appears at the destination
 * until commit() (fsync, rename, fsync of the directory).
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { fsyncDirSync } from '../../util/fsync.js';
import { basename, dirname, join } from 'node:path';
import { FLOAT_DTYPES, type ModelWriter, type TensorSpec } from '../types.js';
import { dtypeSize, encodeFromF32, isDType } from './dtype.js';
import { compareNames, hfOrder } from './order.js';

export interface PlannedTensor extends TensorSpec {
  begin: number;
  end: number;
  byteLength: number;
}

export interface HeaderPlan {
  /** tensors in on-disk order, with offsets */
  tensors: PlannedTensor[];
  /** 8-byte length prefix + JSON padded with spaces to a multiple of 8 */
  bytes: Buffer;
  dataBytes: number;
}

/** Byte size of a spec's data; throws for an invalid spec (a caller bug, not bad input). */
export function specByteLength(spec: TensorSpec): number {
  if (!isDType(spec.dtype)) throw new Error(`tensor ${spec.name}: unknown dtype ${String(spec.dtype)}`);
  let n = 1;
  for (const d of spec.shape) {
    if (!Number.isSafeInteger(d) || d < 0)
      throw new Error(`tensor ${spec.name}: bad shape ${JSON.stringify(spec.shape)}`);
    n *= d;
  }
  return n * dtypeSize(spec.dtype);
}

/** The header exactly as the HF writer lays it out (with metadata keys sorted, for determinism). */
export function planHeader(specs: readonly TensorSpec[], metadata: Record<string, string> = {}): HeaderPlan {
  const seen = new Set<string>();
  for (const s of specs) {
    if (s.name === '__metadata__') throw new Error('"__metadata__" cannot be a tensor name');
    if (seen.has(s.name)) throw new Error(`duplicate tensor name ${s.name}`);
    seen.add(s.name);
  }
  let offset = 0;
  const tensors = hfOrder(specs).map((s): PlannedTensor => {
    const byteLength = specByteLength(s);
    const t = {
      name: s.name,
      dtype: s.dtype,
      shape: [...s.shape],
      begin: offset,
      end: offset + byteLength,
      byteLength,
    };
    offset += byteLength;
    return t;
  });
  // built by hand: JSON.stringify of an object would move integer-like names to the front
  const parts: string[] = [];
  const metaKeys = Object.keys(metadata).sort(compareNames);
  if (metaKeys.length) {
    const m = metaKeys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(String(metadata[k]))}`);
    parts.push(`"__metadata__":{${m.join(',')}}`);
  }
  for (const t of tensors) {
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${t.begin},${t.end}]}`,
    );
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const bytes = Buffer.alloc(8 + padded, 0x20);
  bytes.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(bytes, 8);
  return { tensors, bytes, dataBytes: offset };
}

/** Elements converted per step, so encoding needs a fixed scratch buffer, not a tensor-sized one. */
const ENCODE_CHUNK = 1 << 20;
let tempCounter = 0;

export function tempPathFor(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.${process.pid}.${++tempCounter}.tmp`);
}

/** A system error (ENOSPC, EIO...) says which file it hit: node's own message names only the call. */
function naming(e: unknown, path: string): unknown {
  if (e instanceof Error && (e as NodeJS.ErrnoException).syscall && !e.message.includes(path))
    e.message = `${path}: ${e.message}`;
  return e;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.byteLength;) off += writeSync(fd, bytes, off, bytes.byteLength - off);
}

export class SafetensorsWriter implements ModelWriter {
  readonly order: readonly string[];
  readonly tempPath: string;
  private readonly plan: HeaderPlan;
  private next = 0;
  private fd: number | null;
  private state: 'open' | 'failed' | 'finished' | 'committed' | 'aborted' = 'open';
  private scratch: ArrayBuffer | null = null;
  // hashed as written, so publication needs no second read of a multi-GB file
  private readonly hash: Hash = createHash('sha256');
  private digest: string | null = null;

  constructor(
    readonly dest: string,
    specs: readonly TensorSpec[],
    metadata: Record<string, string> = {},
  ) {
    this.plan = planHeader(specs, metadata);
    this.order = this.plan.tensors.map((t) => t.name);
    this.tempPath = tempPathFor(dest);
    this.fd = openSync(this.tempPath, 'wx');
    try {
      this.put(this.plan.bytes);
    } catch (e) {
      this.abort();
      throw naming(e, this.dest);
    }
  }

  get dataBytes(): number {
    return this.plan.dataBytes;
  }

  get tensors(): readonly PlannedTensor[] {
    return this.plan.tensors;
  }

  /** Validation errors leave the writer usable; an I/O error mid-tensor leaves only abort(). */
  write(name: string, data: Float32Array | Buffer): void {
    if (this.state !== 'open' || this.fd === null) throw new Error(`${this.dest}: writer is ${this.state}`);
    const t = this.plan.tensors[this.next];
    if (!t || t.name !== name) {
      const known = this.order.includes(name);
      throw new Error(
        `${this.dest}: tensor ${name} written out of order${known ? '' : ' (not in the specs)'}; expected ${t ? t.name : 'no more tensors'}`,
      );
    }
    if (data instanceof Float32Array) {
      if (!FLOAT_DTYPES.has(t.dtype))
        throw new Error(`${this.dest}: tensor ${name} is ${t.dtype}; float32 data can only be written to float dtypes`);
      const n = t.byteLength / dtypeSize(t.dtype);
      if (data.length !== n) throw new Error(`${this.dest}: tensor ${name} has ${data.length} elements, expected ${n}`);
    }
    if (!(data instanceof Float32Array) && data.byteLength !== t.byteLength) {
      throw new Error(`${this.dest}: tensor ${name} has ${data.byteLength} bytes, expected ${t.byteLength}`);
    }
    try {
      if (data instanceof Float32Array) this.writeFloats(t, data);
      else this.put(data);
    } catch (e) {
      // a partly written tensor cannot be resumed; only abort() is left
      this.state = 'failed';
      throw naming(e, this.dest);
    }
    this.next++;
  }

  private put(bytes: Uint8Array): void {
    writeAll(this.fd!, bytes);
    this.hash.update(bytes);
  }

  private writeFloats(t: PlannedTensor, data: Float32Array): void {
    if (t.dtype === 'F32') return this.put(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.scratch ??= new ArrayBuffer(ENCODE_CHUNK * 8);
    for (let i = 0; i < data.length; i += ENCODE_CHUNK) {
      this.put(encodeFromF32(t.dtype, data.subarray(i, i + ENCODE_CHUNK), this.scratch));
    }
  }

  /** sha256 of the file's bytes (after finish()) */
  get fileSha256(): string {
    if (this.digest === null) throw new Error(`${this.dest}: writer not finished`);
    return this.digest;
  }

  sha256(): Record<string, string> {
    return { [this.dest]: this.fileSha256 };
  }

  /** All tensors written: fsync and close the temp file (the sharded writer renames later). */
  finish(): void {
    if (this.state === 'finished') return;
    if (this.state !== 'open' || this.fd === null) throw new Error(`${this.dest}: writer is ${this.state}`);
    if (this.next < this.order.length) {
      throw new Error(
        `${this.dest}: ${this.order.length - this.next} tensors not written yet (next: ${this.order[this.next]})`,
      );
    }
    try {
      fsyncSync(this.fd);
    } catch (e) {
      throw naming(e, this.dest);
    }
    closeSync(this.fd);
    this.fd = null;
    this.digest = this.hash.digest('hex');
    this.state = 'finished';
  }

  /** Renames a finished file into place (no directory fsync: the caller does it once). */
  publish(): void {
    if (this.state !== 'finished') throw new Error(`${this.dest}: writer is ${this.state}, not finished`);
    renameSync(this.tempPath, this.dest);
    this.state = 'committed';
  }

  commit(): string[] {
    this.finish();
    this.publish();
    fsyncDirSync(dirname(this.dest));
    return [this.dest];
  }

  abort(): void {
    if (this.state === 'committed' || this.state === 'aborted') return;
    this.state = 'aborted';
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        /* already unusable; removing the file is what matters */
      }
      this.fd = null;
    }
    try {
      unlinkSync(this.tempPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}
