/**
 * openModel: one ModelReader over a .safetensors file, a folder with model.safetensors, or a
 * sharded HF checkpoint, with the index checked against the shards' own headers.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, type ModelReader, type TensorInfo } from './types.js';
import { notCheckpointReason, resolveCheckpoint, type ShardIndex } from './checkpoint.js';
import { SafetensorsFile, tensorInfo } from './safetensors/reader.js';
import { compareNames } from './safetensors/order.js';

export {
  findCheckpointFiles,
  isPickleFile,
  notCheckpointReason,
  resolveCheckpoint,
  readIndex,
  INDEX_FILE,
  SINGLE_FILE,
} from './checkpoint.js';
export type { CheckpointLayout, ShardIndex } from './checkpoint.js';
export { createModelWriter, type ModelWriterOptions, DEFAULT_MAX_SHARD_BYTES } from './model-writer.js';

class SafetensorsModel implements ModelReader {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly dataBytes: number;
  private readonly where: ReadonlyMap<string, SafetensorsFile>;

  constructor(
    readonly path: string,
    readonly files: readonly string[],
    private readonly parts: readonly SafetensorsFile[],
  ) {
    const where = new Map<string, SafetensorsFile>();
    for (const part of parts) for (const name of part.tensors.keys()) where.set(name, part);
    const names = [...where.keys()].sort(compareNames);
    this.where = new Map(names.map((n) => [n, where.get(n)!]));
    this.tensors = new Map(names.map((n) => [n, tensorInfo(where.get(n)!.info(n))]));
    this.metadata = parts[0]?.metadata ?? {};
    this.dataBytes = parts.reduce((s, p) => s + p.header.dataBytes, 0);
  }

  /** tensor data bytes read so far, over all files */
  get bytesRead(): number {
    return this.parts.reduce((s, p) => s + p.bytesRead, 0);
  }

  private file(name: string): SafetensorsFile {
    const file = this.where.get(name);
    if (!file) throw new InputError(this.path, `no tensor named ${JSON.stringify(name)}`);
    return file;
  }

  readF32(name: string): Float32Array {
    return this.file(name).readF32(name);
  }

  readRaw(name: string): Buffer {
    return this.file(name).readRaw(name);
  }

  readF32Into(name: string, out: Float32Array): Float32Array {
    return this.file(name).readF32Into(name, out);
  }

  readF32Chunks(name: string, fn: (offset: number, chunk: Float32Array) => void): void {
    this.file(name).readF32Chunks(name, fn);
  }

  close(): void {
    for (const part of this.parts) part.close();
  }
}

/** Opens and validates a checkpoint; InputError (naming the offending file) when it is malformed. */
export function openModel(path: string): ModelReader & { readonly bytesRead: number } {
  const layout = resolveCheckpoint(path);
  if (!layout) throw new InputError(path, notCheckpointReason(path));
  if (layout.kind === 'file') {
    const file = SafetensorsFile.open(layout.file);
    return new SafetensorsModel(path, [layout.file], [file]);
  }
  const parts = openShards(layout.index);
  return new SafetensorsModel(path, [layout.index.path, ...parts.map((p) => p.path)], parts);
}

function openShards(index: ShardIndex): SafetensorsFile[] {
  const parts: SafetensorsFile[] = [];
  try {
    for (const shard of index.shards) {
      const file = join(index.dir, shard);
      if (!existsSync(file)) throw new InputError(index.path, `index names missing shard ${shard}`);
      parts.push(SafetensorsFile.open(file));
    }
    checkAgainstIndex(index, parts);
    return parts;
  } catch (e) {
    for (const part of parts) part.close();
    throw e;
  }
}

function checkAgainstIndex(index: ShardIndex, parts: readonly SafetensorsFile[]): void {
  const owner = new Map<string, SafetensorsFile>();
  for (const part of parts) {
    for (const name of part.tensors.keys()) {
      const other = owner.get(name);
      if (other) throw new InputError(part.path, `tensor ${JSON.stringify(name)} is also in shard ${other.path}`);
      owner.set(name, part);
      if (!index.weightMap.has(name))
        throw new InputError(part.path, `tensor ${JSON.stringify(name)} is not in the index ${index.path}`);
    }
  }
  const byShard = new Map(parts.map((part, i) => [index.shards[i]!, part]));
  for (const [name, shard] of index.weightMap) {
    const part = byShard.get(shard)!;
    if (!part.tensors.has(name))
      throw new InputError(part.path, `shard lacks tensor ${JSON.stringify(name)} that the index maps to it`);
  }
}
