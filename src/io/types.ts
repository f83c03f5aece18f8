/** Shared vocabulary of the safetensors I/O layer. */
export type DType =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U64'
  | 'U32'
  | 'U16'
  | 'U8'
  | 'BOOL'
  | 'F8_E4M3'
  | 'F8_E5M2';

/** Float dtypes that cmerge decodes to float32 and merges. */
export const FLOAT_DTYPES: ReadonlySet<DType> = new Set(['F64', 'F32', 'F16', 'BF16']);

/** The float dtype named `name` (any case: `bf16`, `F32`), or null: what an output dtype may be. */
export function floatDtype(name: string): DType | null {
  const upper = name.toUpperCase() as DType;
  return FLOAT_DTYPES.has(upper) ? upper : null;
}

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** number of elements */
  size: number;
  /** bytes of the stored data */
  byteLength: number;
}

/** Raised for any malformed or inconsistent input file; `file` names the offending file. */
export class InputError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'InputError';
  }
}

/** A model to read from: one safetensors file, a folder, or a sharded checkpoint. */
export interface ModelReader {
  /** the path given to open it (file or folder) */
  readonly path: string;
  /** every tensor, in a stable order (sorted by name) */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** __metadata__ of the (first) file */
  readonly metadata: Readonly<Record<string, string>>;
  /** the files the model consists of (one, or the index + shards) */
  readonly files: readonly string[];
  /** total bytes of tensor data */
  readonly dataBytes: number;
  /** decode a float tensor to float32 (throws InputError for non-float dtypes) */
  readF32(name: string): Float32Array;
  /** decode a float tensor into `out` (length = size), without tensor-sized temporaries */
  readF32Into(name: string, out: Float32Array): Float32Array;
  /** decode a float tensor in chunks (fn gets the element offset and a chunk valid during the call) */
  readF32Chunks(name: string, fn: (offset: number, chunk: Float32Array) => void): void;
  /** the stored bytes of a tensor, untouched */
  readRaw(name: string): Buffer;
  close(): void;
}

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

/**
 * Streams a model to disk. Tensors are written in `order` (the on-disk order, sorted like the HF
 * writer); nothing is visible at the destination until commit() (temp file + fsync + rename).
 */
export interface ModelWriter {
  readonly order: readonly string[];
  /** float32 data is converted to the spec's dtype (round-to-nearest-even); Buffers are written as is */
  write(name: string, data: Float32Array | Buffer): void;
  /** fsync, rename into place, fsync the directory; returns the final file paths */
  commit(): string[];
  /** sha256 of each committed file (final path → hex), computed from the bytes as they were written */
  sha256(): Record<string, string>;
  /** remove temporary files; safe to call after a failure */
  abort(): void;
}
