/** Writer → reader round trips, byte layout against the HF writer and the reference fixtures. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixturesDir, tempDir } from '../helpers/paths.js';
import type { DType, TensorSpec } from '../../src/io/types.js';
import { SafetensorsFile } from '../../src/io/safetensors/reader.js';
import { SafetensorsWriter, planHeader } from '../../src/io/safetensors/writer.js';
import { encodeBF16, encodeF16 } from '../../src/io/safetensors/dtype.js';

const dir = tempDir('cmerge-io-rt-');
let n = 0;
const out = (name = `o${++n}.safetensors`) => join(dir, name);

function writeAll(
  path: string,
  specs: TensorSpec[],
  data: Record<string, Float32Array | Buffer>,
  metadata?: Record<string, string>,
): string {
  const w = new SafetensorsWriter(path, specs, metadata);
  for (const name of w.order) w.write(name, data[name]!);
  assert.deepEqual(w.commit(), [path]);
  return path;
}

const ramp = (k: number, scale = 1) => Float32Array.from({ length: k }, (_, i) => (i - k / 2) * scale + 0.1);

test('float dtypes round trip: F32 and F64 exactly, F16/BF16 to their rounding', () => {
  const x = Float32Array.from([0, -0, 1, -2.5, 3.14159, 1e-3, 65504, 1e-7, 12345.678, -0.33333]);
  const specs: TensorSpec[] = (['F32', 'F64', 'F16', 'BF16'] as DType[]).map((dtype) => ({
    name: dtype.toLowerCase(),
    dtype,
    shape: [2, 5],
  }));
  const path = writeAll(out(), specs, { f32: x, f64: x, f16: x, bf16: x });
  const f = SafetensorsFile.open(path);
  assert.deepEqual(f.readF32('f32'), x);
  assert.deepEqual(f.readF32('f64'), x);
  assert.deepEqual(new Uint16Array(f.readRaw('f16').buffer), encodeF16(x));
  assert.deepEqual(new Uint16Array(f.readRaw('bf16').buffer), encodeBF16(x));
  // reading back and writing again is stable (already-rounded values re-encode to themselves)
  const again = writeAll(out(), specs, {
    f32: f.readF32('f32'),
    f64: f.readF32('f64'),
    f16: f.readF32('f16'),
    bf16: f.readF32('bf16'),
  });
  assert.deepEqual(readFileSync(again), readFileSync(path));
  // on disk: F64 (80 B), F32 (40 B), BF16, F16: the HF enum ranks BF16 above F16
  assert.deepEqual(f.tensors.get('f16'), {
    name: 'f16',
    dtype: 'F16',
    shape: [2, 5],
    size: 10,
    byteLength: 20,
    begin: 140,
    end: 160,
  });
  f.close();
});

test('integer and bool tensors pass through untouched; readF32 refuses them', () => {
  const dtypes: DType[] = ['I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL', 'F8_E4M3', 'F8_E5M2'];
  const sizes: Record<string, number> = { I64: 8, U64: 8, I32: 4, U32: 4, I16: 2, U16: 2 };
  const specs = dtypes.map((dtype) => ({ name: `t_${dtype}`, dtype, shape: [3] }));
  const data: Record<string, Buffer> = {};
  for (const s of specs)
    data[s.name] = Buffer.from(
      Array.from({ length: 3 * (sizes[s.dtype] ?? 1) }, (_, i) => (i * 37 + s.name.length) & 0xff),
    );
  const f = SafetensorsFile.open(writeAll(out(), specs, data));
  for (const s of specs) {
    assert.deepEqual(f.readRaw(s.name), data[s.name], s.dtype);
    assert.throws(() => f.readF32(s.name), new RegExp(`is ${s.dtype}, which does not decode to float32`));
  }
  f.close();
});

test('tensor order is the HF order: dtype alignment rank descending, then name (UTF-8 bytes)', () => {
  const specs: TensorSpec[] = [
    { name: 'b', dtype: 'BF16', shape: [1] },
    { name: 'a', dtype: 'BF16', shape: [1] },
    { name: 'z', dtype: 'BOOL', shape: [1] },
    { name: 'i', dtype: 'I64', shape: [1] },
    { name: 'u', dtype: 'U64', shape: [1] },
    { name: 'd', dtype: 'F64', shape: [1] },
    { name: 'f', dtype: 'F32', shape: [1] },
    { name: 'h', dtype: 'F16', shape: [1] },
    { name: 'q', dtype: 'I32', shape: [1] },
    { name: 'e', dtype: 'U8', shape: [1] },
    { name: '\u{1F600}', dtype: 'F32', shape: [1] },
    { name: '\uFF21', dtype: 'F32', shape: [1] },
    { name: '10', dtype: 'F32', shape: [1] },
    { name: '9', dtype: 'F32', shape: [1] },
  ];
  const order = planHeader(specs).tensors.map((t) => t.name);
  // U+FF21 sorts before U+1F600 in UTF-8 (and code points), though not in UTF-16 units
  assert.deepEqual(order, ['u', 'i', 'd', '10', '9', 'f', '\uFF21', '\u{1F600}', 'q', 'a', 'b', 'h', 'e', 'z']);
});

test('header layout matches the HF writer byte for byte (its test vectors)', () => {
  // safetensors/src/tensor.rs test_serialization: {"attn.0": F32 [1,2,3]}, header length 64
  const one = planHeader([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3] }]).bytes;
  const expected = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
  assert.equal(one.readBigUInt64LE(0), 64n);
  assert.equal(one.subarray(8).toString(), expected.padEnd(64, ' '));
  // test_empty: {} → 8 bytes; with metadata {"framework":"pt"} → 40 bytes, metadata first
  assert.equal(planHeader([]).bytes.subarray(8).toString(), '{}      ');
  assert.equal(
    planHeader([], { framework: 'pt' }).bytes.subarray(8).toString(),
    '{"__metadata__":{"framework":"pt"}}     ',
  );
});

test('writes are deterministic: same tensors, same bytes (metadata key order does not matter)', () => {
  const specs: TensorSpec[] = [
    { name: 'w', dtype: 'BF16', shape: [4, 8] },
    { name: 'b', dtype: 'F32', shape: [8] },
  ];
  const data = { w: ramp(32, 0.01), b: ramp(8) };
  const a = writeAll(out(), specs, data, { x: '1', a: '2' });
  const b = writeAll(out(), [...specs].reverse(), data, { a: '2', x: '1' });
  assert.deepEqual(readFileSync(a), readFileSync(b));
});

test("parity fixture: reading and writing back reproduces the reference writer's file", () => {
  // st.py sorts by name (= HF order for a single dtype) but puts __metadata__ last, HF first:
  // the only difference is where that entry sits; the length, offsets and data are identical.
  for (const rel of ['parity/clip-f32/base.safetensors', 'parity/llama-bf16/base.safetensors']) {
    const src = join(fixturesDir, rel);
    const f = SafetensorsFile.open(src);
    const specs = [...f.tensors.values()].map(({ name, dtype, shape }) => ({ name, dtype, shape }));
    const w = new SafetensorsWriter(out(), specs, { ...f.metadata });
    // float tensors go through float32 (BF16 → F32 → BF16 is exact), so both paths are checked
    for (const name of w.order) w.write(name, f.readF32(name));
    const [written] = w.commit();
    const ref = readFileSync(src);
    const mine = readFileSync(written!);
    assert.equal(mine.length, ref.length, rel);
    const n = Number(ref.readBigUInt64LE(0));
    assert.deepEqual(mine.subarray(8 + n), ref.subarray(8 + n), `${rel}: data section`);
    const refHeader = ref.subarray(8, 8 + n).toString();
    const meta = ',"__metadata__":{"format":"pt"}';
    assert.ok(refHeader.includes(meta + '}'), 'reference puts metadata last');
    const moved = '{"__metadata__":{"format":"pt"},' + refHeader.slice(1).replace(meta, '');
    assert.equal(mine.subarray(0, 8 + n).toString('latin1'), ref.subarray(0, 8).toString('latin1') + moved);
    f.close();
  }
});

test('expected64 fixtures (F64) pass through readRaw unchanged', () => {
  const src = join(fixturesDir, 'parity/clip-f32/expected64/opcm/step_1.safetensors');
  const f = SafetensorsFile.open(src);
  const specs = [...f.tensors.values()].map(({ name, dtype, shape }) => ({ name, dtype, shape }));
  const w = new SafetensorsWriter(out(), specs, { ...f.metadata });
  for (const name of w.order) w.write(name, f.readRaw(name));
  const [written] = w.commit();
  const ref = readFileSync(src);
  const n = Number(ref.readBigUInt64LE(0));
  assert.deepEqual(readFileSync(written!).subarray(8 + n), ref.subarray(8 + n));
  f.close();
});

test('reading one tensor reads only its bytes', () => {
  const big = new Float32Array(1 << 20).fill(1.5);
  const path = writeAll(
    out(),
    [
      { name: 'big', dtype: 'F32', shape: [1 << 20] },
      { name: 'small', dtype: 'F32', shape: [4] },
      { name: 'z_after', dtype: 'F32', shape: [1 << 10] },
    ],
    { big, small: Float32Array.from([1, 2, 3, 4]), z_after: new Float32Array(1 << 10) },
  );
  const f = SafetensorsFile.open(path);
  assert.deepEqual([...f.readF32('small')], [1, 2, 3, 4]);
  assert.equal(f.bytesRead, 16);
  assert.equal(f.readF32('big')[12345], 1.5);
  assert.equal(f.bytesRead, 16 + 4 * (1 << 20));
  f.close();
});

test('writer rejects out-of-order, unknown, wrongly sized and non-float writes; leaves no file', () => {
  const dest = out();
  const w = new SafetensorsWriter(dest, [
    { name: 'a', dtype: 'F32', shape: [2] },
    { name: 'b', dtype: 'I32', shape: [2] },
  ]);
  assert.throws(() => w.write('b', Buffer.alloc(8)), /out of order; expected a/);
  assert.throws(() => w.write('nope', Buffer.alloc(8)), /not in the specs/);
  assert.throws(() => w.write('a', new Float32Array(3)), /3 elements, expected 2/);
  assert.throws(() => w.write('a', Buffer.alloc(4)), /4 bytes, expected 8/);
  w.write('a', new Float32Array(2));
  assert.throws(() => w.write('b', new Float32Array(2)), /float32 data can only be written to float dtypes/);
  assert.throws(() => w.commit(), /1 tensors not written yet/);
  assert.ok(existsSync(w.tempPath));
  assert.ok(w.tempPath.startsWith(join(dir, '.')), 'temp file is dot-prefixed next to the destination');
  assert.ok(!existsSync(dest), 'nothing at the destination before commit');
  w.abort();
  assert.ok(!existsSync(w.tempPath));
  assert.ok(!existsSync(dest));
  assert.throws(() => w.write('a', new Float32Array(2)), /aborted/);
});

test('commit leaves only the destination; abort after commit is a no-op', () => {
  const sub = tempDir('cmerge-io-commit-');
  const dest = join(sub, 'm.safetensors');
  const w = new SafetensorsWriter(dest, [{ name: 'a', dtype: 'F16', shape: [3] }]);
  w.write('a', Float32Array.from([1, 2, 3]));
  w.commit();
  w.abort();
  assert.deepEqual(readdirSync(sub), ['m.safetensors']);
  assert.deepEqual([...SafetensorsFile.open(dest).readF32('a')], [1, 2, 3]);
});

test('large float tensors are encoded in chunks correctly (beyond one scratch chunk)', () => {
  const k = (1 << 20) * 2 + 3;
  const x = ramp(k, 1e-3);
  const path = writeAll(
    out(),
    [
      { name: 'h', dtype: 'F16', shape: [k] },
      { name: 'g', dtype: 'BF16', shape: [k] },
      { name: 'd', dtype: 'F64', shape: [k] },
    ],
    { h: x, g: x, d: x },
  );
  const f = SafetensorsFile.open(path);
  assert.deepEqual(new Uint16Array(f.readRaw('h').buffer), encodeF16(x));
  assert.deepEqual(new Uint16Array(f.readRaw('g').buffer), encodeBF16(x));
  assert.deepEqual(f.readF32('d'), x);
  f.close();
});

test('zero-element and scalar tensors', () => {
  const path = writeAll(
    out(),
    [
      { name: 'empty', dtype: 'F32', shape: [0, 4] },
      { name: 'scalar', dtype: 'F32', shape: [] },
    ],
    {
      empty: new Float32Array(0),
      scalar: Float32Array.from([7]),
    },
  );
  const f = SafetensorsFile.open(path);
  assert.equal(f.readF32('empty').length, 0);
  assert.deepEqual([...f.readF32('scalar')], [7]);
  f.close();
});
