import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { openModel } from '../../src/io/model.js';
import type { DType } from '../../src/io/types.js';
import { cmerge } from '../helpers/cli.js';
import { baseValues, FLOATS, POSITIONS, rounded, tuned, writeModel } from '../helpers/dtype-models.js';
import { tempDir } from '../helpers/paths.js';

interface Merged {
  /** name → [dtype, values as float32] */
  tensors: Map<string, { dtype: DType; values: Float32Array }>;
  bytes: Buffer;
  report: { steps: { dtype: string }[] };
}

/** A real `cmerge merge` into a fresh state; its output read back. */
function merge(dir: string, base: string, checkpoints: string[], method: string, extra: string[] = []): Merged {
  const out = join(dir, 'out.safetensors');
  const r = cmerge([
    'merge',
    '--base',
    base,
    '--state',
    join(dir, 'state'),
    '--method',
    method,
    '--out',
    out,
    '--json',
    ...extra,
    ...checkpoints,
  ]);
  assert.equal(r.status, 0, r.stderr);
  const m = openModel(out);
  try {
    const tensors = new Map(
      [...m.tensors.values()].map((t) => [
        t.name,
        { dtype: t.dtype, values: t.name === POSITIONS ? new Float32Array(0) : m.readF32(t.name) },
      ]),
    );
    return { tensors, bytes: readFileSync(out), report: JSON.parse(r.stdout) as Merged['report'] };
  } finally {
    m.close();
  }
}

const dtypesOf = (m: Merged) => Object.fromEntries([...m.tensors].map(([name, t]) => [name, t.dtype]));
const expectDtypes = (float: DType) => Object.fromEntries([...FLOATS.map((f) => [f.name, float]), [POSITIONS, 'I64']]);

/** bfloat16's spacing at |x|: 2^(exponent − 7) (normal numbers; the values here are all normal) */
const bf16Ulp = (x: number) => 2 ** (Math.floor(Math.log2(Math.abs(x))) - 7);

/**
 * A float checkpoint whose dtype differs from the base's (a float32 fine-tune of a bf16 base) is
 * merged: every value is decoded to float32, as for a matching one, and the output keeps the
 * base's dtypes unless --out-dtype says otherwise. Integer tensors must still match the base.
 */
describe('cmerge merge with checkpoints in another float dtype than the base', () => {
  const work = tempDir('cmerge-dtype-');
  const b = baseValues(1);
  const bBf16 = rounded('BF16', b);
  const bf16Base = writeModel(join(work, 'base-bf16.safetensors'), 'BF16', b);
  const f32Base = writeModel(join(work, 'base-f32.safetensors'), 'F32', b);
  const t1 = tuned(b, 2);
  const t2 = tuned(b, 3);

  test('F32 and F64 checkpoints into a BF16 base: BF16 output, byte-identical to the same values stored as BF16', () => {
    // values a BF16 file can hold: the mix must change nothing but the file's dtype
    const v1 = rounded('BF16', t1);
    const v2 = rounded('BF16', t2);
    const dir = join(work, 'f32-into-bf16');
    const mixed = merge(
      join(dir, 'mixed'),
      bf16Base,
      [
        writeModel(join(work, 'v1-f32.safetensors'), 'F32', v1),
        writeModel(join(work, 'v2-f64.safetensors'), 'F64', v2),
      ],
      'opcm',
    );
    const same = merge(
      join(dir, 'same'),
      bf16Base,
      [
        writeModel(join(work, 'v1-bf16.safetensors'), 'BF16', v1),
        writeModel(join(work, 'v2-bf16.safetensors'), 'BF16', v2),
      ],
      'opcm',
    );
    assert.deepEqual(dtypesOf(mixed), expectDtypes('BF16'));
    assert.ok(mixed.bytes.equals(same.bytes), 'the output files are byte-identical');
    assert.deepEqual(
      mixed.report.steps.map((s) => s.dtype),
      ['F32', 'F64'],
      'the report records each checkpoint dtype',
    );
    const state = JSON.parse(readFileSync(join(dir, 'mixed', 'state', 'gen-00000002', 'state.json'), 'utf8')) as {
      checkpoints: { dtype: string }[];
    };
    assert.deepEqual(
      state.checkpoints.map((c) => c.dtype),
      ['F32', 'F64'],
      'and so does the state lineage',
    );
  });

  test('F32 values a BF16 file cannot hold: within 1 BF16 ulp of merging them pre-rounded, and the float32 math of an all-F32 merge', (t) => {
    const dir = join(work, 'f32-exact-into-bf16');
    const args = ['--param', 'scaling_factor=0.3'];
    const f32Ckpt = writeModel(join(work, 't1-f32.safetensors'), 'F32', t1);
    const mixed = merge(join(dir, 'mixed'), bf16Base, [f32Ckpt], 'task_arithmetic', args);
    const pre = merge(
      join(dir, 'pre'),
      bf16Base,
      [writeModel(join(work, 't1-bf16.safetensors'), 'BF16', t1)],
      'task_arithmetic',
      args,
    );
    // the bound: pre-rounding moves θ_t by ≤ ½ ulp(θ_t), scaled by 0.3, then both are rounded to
    // BF16; the difference is at most one BF16 ulp at the larger of the outputs and θ_t
    let worst = 0;
    let differing = 0;
    for (const f of FLOATS) {
      const x = mixed.tensors.get(f.name)!.values;
      const y = pre.tensors.get(f.name)!.values;
      const theta = t1.get(f.name)!;
      for (let i = 0; i < x.length; i++) {
        const ulps = Math.abs(x[i] - y[i]) / bf16Ulp(Math.max(Math.abs(x[i]), Math.abs(y[i]), Math.abs(theta[i])));
        worst = Math.max(worst, ulps);
        if (x[i] !== y[i]) differing++;
      }
    }
    t.diagnostic(`largest difference ${worst} BF16 ulp; ${differing} elements differ`);
    assert.ok(worst <= 1, `within 1 BF16 ulp (got ${worst})`);

    // same decoded inputs, same float32 math: an F32 base holding the BF16 base's values, rounded by --out-dtype
    const f32OfBf16 = writeModel(join(work, 'base-f32-of-bf16.safetensors'), 'F32', bBf16);
    const allF32 = merge(join(dir, 'all-f32'), f32OfBf16, [f32Ckpt], 'task_arithmetic', [
      ...args,
      '--out-dtype',
      'BF16',
    ]);
    assert.deepEqual(dtypesOf(allF32), expectDtypes('BF16'));
    for (const f of FLOATS) {
      assert.deepEqual(mixed.tensors.get(f.name)!.values, allF32.tensors.get(f.name)!.values, f.name);
    }
  });

  for (const dtype of ['F16', 'BF16'] as const) {
    test(`a ${dtype} checkpoint into an F32 base: F32 output, byte-identical to the same values stored as F32`, () => {
      const dir = join(work, `${dtype}-into-f32`);
      const v1 = rounded(dtype, t1);
      const second = writeModel(join(work, `t2-f32-${dtype}.safetensors`), 'F32', t2);
      const mixed = merge(
        join(dir, 'mixed'),
        f32Base,
        [writeModel(join(work, `v1-${dtype}.safetensors`), dtype, v1), second],
        'opcm',
      );
      const same = merge(
        join(dir, 'same'),
        f32Base,
        [writeModel(join(work, `v1-f32-of-${dtype}.safetensors`), 'F32', v1), second],
        'opcm',
      );
      assert.deepEqual(dtypesOf(mixed), expectDtypes('F32'));
      assert.ok(mixed.bytes.equals(same.bytes), 'the output files are byte-identical');
      assert.deepEqual(
        mixed.report.steps.map((s) => s.dtype),
        [dtype, 'F32'],
      );
    });
  }

  test('--out-dtype sets every float tensor, merged or copied, and leaves integer tensors as stored', () => {
    const dir = join(work, 'out-dtype');
    const ckpt = writeModel(join(work, 't1-f32-out.safetensors'), 'F32', t1);
    const args = ['--exclude', 'head.weight'];
    const f16 = merge(join(dir, 'f16'), bf16Base, [ckpt], 'opcm', [...args, '--out-dtype', 'f16']);
    const f32 = merge(join(dir, 'f32'), bf16Base, [ckpt], 'opcm', [...args, '--out-dtype', 'F32']);
    assert.deepEqual(dtypesOf(f16), expectDtypes('F16'));
    assert.deepEqual(dtypesOf(f32), expectDtypes('F32'));
    // one rounding, from the float32 result: F16 of the F32 output exactly; the copied head is the base's values
    const asF16 = rounded(
      'F16',
      new Map([...f32.tensors].filter(([n]) => n !== POSITIONS).map(([n, x]) => [n, x.values])),
    );
    for (const f of FLOATS) assert.deepEqual(f16.tensors.get(f.name)!.values, asF16.get(f.name), f.name);
    assert.deepEqual(f32.tensors.get('head.weight')!.values, bBf16.get('head.weight'));
    const base = openModel(bf16Base);
    const out = openModel(join(dir, 'f16', 'out.safetensors'));
    try {
      assert.ok(out.readRaw(POSITIONS).equals(base.readRaw(POSITIONS)), 'position_ids copied as stored');
    } finally {
      base.close();
      out.close();
    }

    const bad = cmerge([
      'merge',
      '--base',
      bf16Base,
      '--state',
      join(dir, 's'),
      '--method',
      'opcm',
      '--out',
      join(dir, 'x.safetensors'),
      '--out-dtype',
      'I32',
      ckpt,
    ]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--out-dtype must be F32, F16, BF16 or F64, not "I32"/);
    assert.ok(!existsSync(join(dir, 's')), 'nothing written');
  });

  test('an integer tensor in another dtype than the base is refused, naming the file and the tensor', () => {
    const dir = join(work, 'int');
    const ckpt = writeModel(join(work, 't1-i32.safetensors'), 'F32', t1, 'I32');
    const out = join(dir, 'out.safetensors');
    const r = cmerge([
      'merge',
      '--base',
      bf16Base,
      '--state',
      join(dir, 'state'),
      '--method',
      'opcm',
      '--out',
      out,
      ckpt,
    ]);
    assert.equal(r.status, 1);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0].includes(ckpt), lines[0]);
    assert.match(lines[0], /dtype mismatch for position_ids: I32 vs base I64 \(only float dtypes may differ/);
    assert.ok(!existsSync(out) && !existsSync(join(dir, 'state', 'CURRENT')), 'nothing written');
  });
});
