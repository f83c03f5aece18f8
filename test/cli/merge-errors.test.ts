import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { demoShapes, writeDemoModels } from '../../src/demo/synth.js';
import { createModelWriter, openModel } from '../../src/io/model.js';
import type { TensorSpec } from '../../src/io/types.js';
import { cmerge } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

/**
 * Every kind of bad checkpoint makes `cmerge merge` exit nonzero with one line on stderr naming the
 * file, and leaves the merge state and the previous output untouched.
 */
const SPECS = () => demoShapes(16, 1);
const work = tempDir();
let base = '';
let good = '';
const state = join(work, 'state');
const out = join(work, 'merged.safetensors');

function snapshot(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else h.update(p).update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

/** bytes of a safetensors file from a header object and raw data */
function pack(header: unknown, data: Buffer, prefix?: bigint): Buffer {
  let json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const p = Buffer.alloc(8);
  p.writeBigUInt64LE(prefix ?? BigInt(json.length));
  return Buffer.concat([p, json, data]);
}

function goodParts(): { header: Record<string, any>; data: Buffer } {
  const bytes = readFileSync(good);
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString()), data: bytes.subarray(8 + n) };
}

function file(name: string, bytes: Buffer | string): string {
  const p = join(work, 'bad', name);
  writeFileSync(p, bytes);
  return p;
}

function model(name: string, specs: TensorSpec[], value: (name: string, i: number) => number): string {
  const p = join(work, 'bad', name);
  const w = createModelWriter(p, specs, {});
  for (const n of w.order) {
    const s = specs.find((x) => x.name === n)!;
    w.write(n, Float32Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, (_, i) => value(n, i)));
  }
  w.commit();
  return p;
}

/** the good checkpoint's values, tensor by tensor */
function goodValue(): (name: string, i: number) => number {
  const r = openModel(good);
  const cache = new Map<string, Float32Array>();
  return (name, i) => {
    if (!cache.has(name)) cache.set(name, r.tensors.has(name) ? r.readF32(name) : new Float32Array(1 << 16));
    return cache.get(name)![i] ?? 0;
  };
}

const cases: [string, () => string, RegExp][] = [
  ['not safetensors', () => file('text.safetensors', 'this is not a model\n'), /./],
  ['header over 100 MB', () => file('huge-header.safetensors', pack({}, Buffer.alloc(0), 200n << 20n)), /header/i],
  ['header not a JSON object', () => file('array.safetensors', pack('[1,2,3]', Buffer.alloc(0))), /object/i],
  ['header not JSON', () => file('garbage.safetensors', pack('{"a": ', Buffer.alloc(0))), /JSON/i],
  ['offsets with a hole', () => {
    const { header, data } = goodParts();
    const k = Object.keys(header).filter((x) => x !== '__metadata__').sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0]);
    const last = header[k[k.length - 1]];
    last.data_offsets = [last.data_offsets[0] + 4, last.data_offsets[1] + 4];
    return file('hole.safetensors', pack(header, Buffer.concat([data, Buffer.alloc(4)])));
  }, /hole|gap|contiguous/i],
  ['offsets overlapping', () => {
    const { header, data } = goodParts();
    const k = Object.keys(header).filter((x) => x !== '__metadata__').sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0]);
    const t = header[k[1]];
    t.data_offsets = [t.data_offsets[0] - 4, t.data_offsets[1] - 4];
    return file('overlap.safetensors', pack(header, data));
  }, /overlap/i],
  ['truncated (still being written)', () => {
    const b = readFileSync(good);
    return file('truncated.safetensors', b.subarray(0, b.length - 100));
  }, /truncated|being written|size/i],
  ['trailing bytes', () => file('trailing.safetensors', Buffer.concat([readFileSync(good), Buffer.alloc(16)])), /trailing|size/i],
  ['unknown dtype', () => {
    const { header, data } = goodParts();
    header[Object.keys(header).find((x) => x !== '__metadata__')!].dtype = 'Q4_K';
    return file('dtype-unknown.safetensors', pack(header, data));
  }, /dtype/i],
  ['metadata not a string map', () => {
    const { header, data } = goodParts();
    header.__metadata__ = { format: 3 };
    return file('metadata.safetensors', pack(header, data));
  }, /metadata/i],
  ['tensor missing', () => model('missing.safetensors', SPECS().filter((s) => !s.name.endsWith('fc1.weight')), goodValue()), /missing/i],
  ['extra tensor', () => model('extra.safetensors', [...SPECS(), { name: 'head.weight', dtype: 'F32', shape: [3, 3] }], goodValue()), /not in the base|extra/i],
  ['shape mismatch', () => model('shape.safetensors', SPECS().map((s) => (s.name === 'visual_projection.weight' ? { ...s, shape: [16, 128] } : s)), goodValue()), /shape/i],
  ['dtype mismatch', () => model('dtype.safetensors', SPECS().map((s) => (s.name === 'visual_projection.weight' ? { ...s, dtype: 'BF16' as const } : s)), goodValue()), /dtype/i],
  ['NaN', () => {
    const v = goodValue();
    return model('nan.safetensors', SPECS(), (n, i) => (n.endsWith('q_proj.weight') && i === 7 ? NaN : v(n, i)));
  }, /non-finite|NaN/i],
  ['Inf', () => {
    const v = goodValue();
    return model('inf.safetensors', SPECS(), (n, i) => (n.endsWith('fc2.bias') && i === 3 ? Infinity : v(n, i)));
  }, /non-finite|Inf/i],
  ['checkpoint identical to the base', () => {
    const r = openModel(base);
    return model('same.safetensors', SPECS(), (n, i) => r.readF32(n)[i]);
  }, /zero|equals the base/i],
  ['sharded index naming a missing shard', () => {
    const d = join(work, 'bad', 'sharded');
    mkdirSync(d, { recursive: true });
    const names = SPECS().map((s) => s.name);
    writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 1 }, weight_map: Object.fromEntries(names.map((n) => [n, 'model-00001-of-00001.safetensors'])) }));
    return d;
  }, /shard|missing|model-00001/i],
  ['no such file', () => join(work, 'bad', 'nope.safetensors'), /no such|not found|ENOENT|not a/i],
];

describe('cmerge merge rejects bad checkpoints', () => {
  before(() => {
    mkdirSync(join(work, 'bad'), { recursive: true });
    const m = writeDemoModels(join(work, 'models'), 2, { d: 16, layers: 1 });
    base = m.base;
    good = m.tasks[1];
    const r = cmerge(['merge', '--base', base, '--state', state, '--method', 'opcm', '--out', out, m.tasks[0]]);
    assert.equal(r.status, 0, r.stderr);
  });

  for (const [kind, make, reason] of cases) {
    test(kind, () => {
      const bad = make();
      const before = snapshot(work + '/state') + createHash('sha256').update(readFileSync(out)).digest('hex');
      const r = cmerge(['merge', '--base', base, '--state', state, '--method', 'opcm', '--out', out, bad]);
      assert.notEqual(r.status, 0);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `one line expected, got: ${r.stderr}`);
      assert.ok(lines[0].includes(bad), `names the file: ${lines[0]}`);
      assert.match(lines[0], reason);
      assert.equal(snapshot(work + '/state') + createHash('sha256').update(readFileSync(out)).digest('hex'), before, 'state and output untouched');
    });
  }

  test('a good checkpoint still merges afterwards', () => {
    const r = cmerge(['merge', '--base', base, '--state', state, '--method', 'opcm', '--out', out, '--json', good]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).step, 2);
  });

  test('a bad file after a good one in the same call: nothing is written', () => {
    const before = snapshot(work + '/state');
    const r = cmerge(['merge', '--base', base, '--state', state, '--method', 'opcm', '--out', join(work, 'x.safetensors'), good, join(work, 'bad', 'nan.safetensors')]);
    assert.notEqual(r.status, 0);
    assert.equal(snapshot(work + '/state'), before);
    assert.throws(() => statSync(join(work, 'x.safetensors')));
  });

  test('continuing a state with another method is refused', () => {
    const r = cmerge(['merge', '--base', base, '--state', state, '--method', 'dop', '--out', out, good]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /state was made by opcm/);
  });
});
