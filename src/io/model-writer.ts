import { createHash } from 'node:crypto';
/**
 * createModelWriter: one file, a folder with model.safetensors, or HF-style shards + index when
 * the data exceeds maxShardBytes. Shards are filled in the global HF write order, so the
 * concatenation of the shards' orders is the writer's order.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ModelWriter, TensorSpec } from './types.js';
import { INDEX_FILE, SINGLE_FILE } from './checkpoint.js';
import { compareNames, hfOrder } from './safetensors/order.js';
import { fsyncDirSync } from '../util/fsync.js';
import { SafetensorsWriter, specByteLength, tempPathFor } from './safetensors/writer.js';

/** The HF default shard size (5 GB, decimal as in huggingface_hub). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

export interface ModelWriterOptions {
  metadata?: Record<string, string>;
  maxShardBytes?: number;
}

export function createModelWriter(
  dest: string,
  specs: readonly TensorSpec[],
  opts: ModelWriterOptions = {},
): ModelWriter {
  const metadata = opts.metadata ?? {};
  if (dest.endsWith('.safetensors')) {
    mkdirSync(dirname(dest), { recursive: true });
    return new SafetensorsWriter(dest, specs, metadata);
  }
  mkdirSync(dest, { recursive: true });
  const max = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  const total = specs.reduce((s, t) => s + specByteLength(t), 0);
  if (total <= max) return new SafetensorsWriter(join(dest, SINGLE_FILE), specs, metadata);
  return new ShardedWriter(dest, specs, metadata, max);
}

/** Greedy split of the ordered tensors; a tensor bigger than the limit gets a shard of its own. */
export function planShards(ordered: readonly TensorSpec[], maxShardBytes: number): TensorSpec[][] {
  const shards: TensorSpec[][] = [];
  let cur: TensorSpec[] = [];
  let bytes = 0;
  for (const s of ordered) {
    const n = specByteLength(s);
    if (cur.length && bytes + n > maxShardBytes) {
      shards.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(s);
    bytes += n;
  }
  if (cur.length) shards.push(cur);
  return shards;
}

export function shardFileName(i: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(i + 1)}-of-${pad(count)}.safetensors`;
}

/** The index as transformers writes it: indent 2, weight_map sorted by name, trailing newline. */
export function indexJson(totalSize: number, weightMap: ReadonlyMap<string, string>): string {
  // built by hand: JSON.stringify would move integer-like tensor names to the front
  const names = [...weightMap.keys()].sort(compareNames);
  const lines = names.map((n) => `    ${JSON.stringify(n)}: ${JSON.stringify(weightMap.get(n))}`);
  return `{\n  "metadata": {\n    "total_size": ${totalSize}\n  },\n  "weight_map": {\n${lines.join(',\n')}\n  }\n}\n`;
}

class ShardedWriter implements ModelWriter {
  readonly order: readonly string[];
  private readonly shards: TensorSpec[][];
  private readonly shardOf: number[];
  private readonly writers: SafetensorsWriter[] = [];
  private readonly totalSize: number;
  private next = 0;
  private done = false;
  private indexTemp: string | null = null;
  private indexSha256: string | null = null;

  constructor(
    private readonly dir: string,
    specs: readonly TensorSpec[],
    private readonly metadata: Record<string, string>,
    max: number,
  ) {
    this.shards = planShards(hfOrder(specs), max);
    this.order = this.shards.flat().map((s) => s.name);
    this.shardOf = this.shards.flatMap((s, i) => s.map(() => i));
    this.totalSize = specs.reduce((s, t) => s + specByteLength(t), 0);
  }

  private fileName(i: number): string {
    return shardFileName(i, this.shards.length);
  }

  write(name: string, data: Float32Array | Buffer): void {
    if (this.done) throw new Error(`${this.dir}: writer is closed`);
    const i = this.next < this.order.length ? this.shardOf[this.next]! : this.shards.length - 1;
    if (this.order[this.next] !== name) {
      throw new Error(
        `${this.dir}: tensor ${name} written out of order; expected ${this.order[this.next] ?? 'no more tensors'}`,
      );
    }
    // one shard file open at a time: finish the previous one before starting the next
    if (i === this.writers.length) {
      this.writers[i - 1]?.finish();
      this.writers.push(new SafetensorsWriter(join(this.dir, this.fileName(i)), this.shards[i]!, this.metadata));
    }
    this.writers[i]!.write(name, data);
    this.next++;
  }

  commit(): string[] {
    if (this.next < this.order.length) {
      throw new Error(
        `${this.dir}: ${this.order.length - this.next} tensors not written yet (next: ${this.order[this.next]})`,
      );
    }
    for (const w of this.writers) w.finish();
    const weightMap = new Map<string, string>();
    this.shards.forEach((s, i) => s.forEach((t) => weightMap.set(t.name, this.fileName(i))));
    const index = join(this.dir, INDEX_FILE);
    const tmp = (this.indexTemp = tempPathFor(index));
    const indexText = indexJson(this.totalSize, weightMap);
    writeDurably(tmp, indexText);
    this.indexSha256 = createHash('sha256').update(indexText).digest('hex');
    // shards first, index last: a reader never sees an index naming shards that are not there
    for (const w of this.writers) w.publish();
    renameSync(tmp, index);
    this.indexTemp = null;
    fsyncDirSync(this.dir);
    this.done = true;
    return [...this.writers.map((w) => w.dest), index];
  }

  sha256(): Record<string, string> {
    if (this.indexSha256 === null) throw new Error(`${this.dir}: writer not committed`);
    return Object.assign({ [join(this.dir, INDEX_FILE)]: this.indexSha256 }, ...this.writers.map((w) => w.sha256()));
  }

  abort(): void {
    this.done = true;
    for (const w of this.writers) w.abort();
    if (this.indexTemp) {
      try {
        unlinkSync(this.indexTemp);
      } catch {
        /* never written or already gone */
      }
      this.indexTemp = null;
    }
  }
}

function writeDurably(path: string, text: string): void {
  const fd = openSync(path, 'wx');
  try {
    const b = Buffer.from(text, 'utf8');
    for (let off = 0; off < b.length;) off += writeSync(fd, b, off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(path);
    throw e;
  }
  closeSync(fd);
}
