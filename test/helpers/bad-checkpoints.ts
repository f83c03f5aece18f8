/**
 * Bad checkpoints of every kind of docs/architecture.md#bad-input, made from a real base and a good checkpoint of it
 * (any models sharing the base's tensor layout, e.g. writeDemoModels). Each kind writes its file or
 * folder under a directory and names a pattern its rejection reason must match. Kinds that need a
 * running daemon's context (duplicate, symlink out of the drop folder) are left to the tests.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createModelWriter, openModel } from '../../src/io/model.js';
import type { TensorSpec } from '../../src/io/types.js';

export interface BadKind {
  kind: string;
  /** entry name: `<name>` is written under the directory given to make() */
  name: string;
  make(dir: string): string;
  reason: RegExp;
  /** rejected only once the incomplete timeout has passed (looks like a file still being written) */
  incomplete?: boolean;
}

/** bytes of a safetensors file: length prefix (default: the real one), header (object or text), data */
export function packSafetensors(header: unknown, data: Uint8Array, prefix?: bigint): Buffer {
  let json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const p = Buffer.alloc(8);
  p.writeBigUInt64LE(prefix ?? BigInt(json.length));
  return Buffer.concat([p, json, data]);
}

type Header = Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;

export function badCheckpointKinds(basePath: string, goodPath: string): BadKind[] {
  const specs = (): TensorSpec[] => {
    const r = openModel(basePath);
    try {
      return [...r.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape] }) as TensorSpec);
    } finally {
      r.close();
    }
  };
  const parts = (): { header: Header; data: Buffer; order: string[] } => {
    const bytes = readFileSync(goodPath);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString()) as Header;
    delete (header as Record<string, unknown>).__metadata__;
    const order = Object.keys(header).sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0]);
    return { header, data: bytes.subarray(8 + n), order };
  };
  const values = (path: string) => {
    const r = openModel(path);
    const cache = new Map<string, Float32Array>();
    return (name: string, i: number): number => {
      if (!cache.has(name)) cache.set(name, r.tensors.has(name) ? r.readF32(name) : new Float32Array(1 << 16));
      return cache.get(name)![i] ?? 0;
    };
  };
  const model = (path: string, list: TensorSpec[], value: (name: string, i: number) => number): string => {
    const w = createModelWriter(path, list, {});
    for (const n of w.order) {
      const s = list.find((x) => x.name === n)!;
      w.write(
        n,
        Float32Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, (_, i) => value(n, i)),
      );
    }
    w.commit();
    return path;
  };
  const file = (path: string, bytes: Buffer | string) => (writeFileSync(path, bytes), path);
  const firstLinear = () => specs().find((s) => s.shape.length === 2 && s.name.endsWith('.weight'))!.name;

  return [
    {
      kind: 'not safetensors (name)',
      name: 'notes.txt',
      make: (d) => file(join(d, 'notes.txt'), 'hello\n'),
      reason: /not a checkpoint/i,
    },
    {
      kind: 'not safetensors (content)',
      name: 'text.safetensors',
      make: (d) => file(join(d, 'text.safetensors'), 'this is not a model\n'),
      reason: /header|safetensors|length/i,
    },
    {
      kind: 'header over 100 MB',
      name: 'huge-header.safetensors',
      make: (d) => file(join(d, 'huge-header.safetensors'), packSafetensors({}, Buffer.alloc(0), 200n << 20n)),
      reason: /header/i,
    },
    {
      kind: 'header not a JSON object',
      name: 'array.safetensors',
      make: (d) => file(join(d, 'array.safetensors'), packSafetensors('[1,2,3]', Buffer.alloc(0))),
      reason: /object/i,
    },
    {
      kind: 'header not JSON',
      name: 'garbage.safetensors',
      make: (d) => file(join(d, 'garbage.safetensors'), packSafetensors('{"a": ', Buffer.alloc(0))),
      reason: /JSON/i,
    },
    {
      kind: 'offsets with a hole',
      name: 'hole.safetensors',
      reason: /hole|gap|contiguous/i,
      make: (d) => {
        const { header, data, order } = parts();
        const last = header[order.at(-1)!];
        last.data_offsets = [last.data_offsets[0] + 4, last.data_offsets[1] + 4];
        return file(join(d, 'hole.safetensors'), packSafetensors(header, Buffer.concat([data, Buffer.alloc(4)])));
      },
    },
    {
      kind: 'offsets overlapping',
      name: 'overlap.safetensors',
      reason: /overlap/i,
      make: (d) => {
        const { header, data, order } = parts();
        const t = header[order[1]];
        t.data_offsets = [t.data_offsets[0] - 4, t.data_offsets[1] - 4];
        return file(join(d, 'overlap.safetensors'), packSafetensors(header, data));
      },
    },
    {
      // the last offset lies past the end of the file: size ≠ 8 + N + last offset, as if still written
      kind: 'offsets past the end (truncated)',
      name: 'truncated.safetensors',
      reason: /truncat|being written|size|short|end/i,
      incomplete: true,
      make: (d) => {
        const b = readFileSync(goodPath);
        return file(join(d, 'truncated.safetensors'), b.subarray(0, b.length - 100));
      },
    },
    {
      kind: 'trailing bytes (size > 8 + N + last offset)',
      name: 'trailing.safetensors',
      make: (d) => file(join(d, 'trailing.safetensors'), Buffer.concat([readFileSync(goodPath), Buffer.alloc(16)])),
      reason: /trailing|size/i,
    },
    {
      kind: 'tensor missing',
      name: 'missing.safetensors',
      make: (d) =>
        model(
          join(d, 'missing.safetensors'),
          specs().filter((s) => s.name !== firstLinear()),
          values(goodPath),
        ),
      reason: /missing/i,
    },
    {
      kind: 'extra tensor',
      name: 'extra.safetensors',
      make: (d) =>
        model(
          join(d, 'extra.safetensors'),
          [...specs(), { name: 'head.weight', dtype: 'F32', shape: [3, 3] }],
          values(goodPath),
        ),
      reason: /not in the base|extra/i,
    },
    {
      kind: 'shape mismatch',
      name: 'shape.safetensors',
      reason: /shape/i,
      make: (d) =>
        model(
          join(d, 'shape.safetensors'),
          specs().map((s) => (s.name === firstLinear() ? { ...s, shape: [s.shape[0] * 2, s.shape[1] / 2] } : s)),
          values(goodPath),
        ),
    },
    {
      // a float dtype mix is merged (test/cli/merge-dtype.test.ts); an integer tensor for a float one is not
      kind: 'dtype mismatch (integer for float)',
      name: 'dtype.safetensors',
      make: (d) => {
        const { header, data } = parts();
        const target = firstLinear();
        assert.equal(header[target].dtype, 'F32');
        header[target].dtype = 'I32'; // same element size: the offsets stay valid
        return file(join(d, 'dtype.safetensors'), packSafetensors(header, data));
      },
      reason: /dtype mismatch for .*: I32 vs base F32/,
    },
    {
      kind: 'NaN',
      name: 'nan.safetensors',
      reason: /non-finite|NaN/i,
      make: (d) => {
        const v = values(goodPath);
        const target = firstLinear();
        return model(join(d, 'nan.safetensors'), specs(), (n, i) => (n === target && i === 7 ? NaN : v(n, i)));
      },
    },
    {
      kind: 'Inf',
      name: 'inf.safetensors',
      reason: /non-finite|Inf/i,
      make: (d) => {
        const v = values(goodPath);
        const target = specs().at(-1)!.name;
        return model(join(d, 'inf.safetensors'), specs(), (n, i) => (n === target && i === 3 ? -Infinity : v(n, i)));
      },
    },
    {
      kind: 'zero task vector (a copy of the base)',
      name: 'same-as-base.safetensors',
      make: (d) => file(join(d, 'same-as-base.safetensors'), readFileSync(basePath)),
      reason: /zero|equals the base/i,
    },
    {
      kind: 'absurdly large task-vector norm (base + 100 × noise)',
      name: 'huge-norm.safetensors',
      reason: /norm/i,
      make: (d) => {
        const b = values(basePath);
        return model(
          join(d, 'huge-norm.safetensors'),
          specs(),
          (n, i) => b(n, i) + 100 * (((i * 2654435761) % 1000) / 1000 - 0.5),
        );
      },
    },
    {
      kind: 'sharded index naming a missing shard',
      name: 'sharded',
      reason: /shard|missing|model-00002|incomplete/i,
      incomplete: true,
      make: (d) => {
        const dir = join(d, 'sharded');
        mkdirSync(dir, { recursive: true });
        const names = specs().map((s) => s.name);
        const half = Math.ceil(names.length / 2);
        const first = specs().filter((s) => names.indexOf(s.name) < half);
        model(join(dir, 'model-00001-of-00002.safetensors'), first, values(goodPath));
        writeFileSync(
          join(dir, 'model.safetensors.index.json'),
          JSON.stringify({
            metadata: { total_size: 1 },
            weight_map: Object.fromEntries(
              names.map((n, i) => [
                n,
                i < half ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors',
              ]),
            ),
          }),
        );
        return dir;
      },
    },
  ];
}
