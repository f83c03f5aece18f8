/** openModel / createModelWriter / findCheckpointFiles over single files, folders and shards. */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixturesDir, tempDir } from '../helpers/paths.js';
import { InputError, type TensorSpec } from '../../src/io/types.js';
import { createModelWriter, findCheckpointFiles, openModel } from '../../src/io/model.js';
import { craftBytes, entry } from './craft.js';

const specs: TensorSpec[] = [
  { name: 'layer.0.weight', dtype: 'BF16', shape: [16, 8] }, // 256 bytes
  { name: 'layer.0.bias', dtype: 'F32', shape: [16] }, // 64
  { name: 'layer.1.weight', dtype: 'BF16', shape: [16, 16] }, // 512
  { name: 'embed', dtype: 'F32', shape: [10, 8] }, // 320
  { name: 'steps', dtype: 'I64', shape: [1] }, // 8
];
const data = (s: TensorSpec) =>
  s.dtype === 'I64'
    ? Buffer.from(new BigInt64Array([42n]).buffer)
    : Float32Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, (_, i) => (i % 13) / 4 - 1);

function writeModel(dest: string, opts: { maxShardBytes?: number } = {}): string[] {
  const w = createModelWriter(dest, specs, { metadata: { format: 'pt' }, ...opts });
  const byName = new Map(specs.map((s) => [s.name, s]));
  for (const name of w.order) w.write(name, data(byName.get(name)!));
  return w.commit();
}

function expectInputError(fn: () => unknown, file: string, reason: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, String(e));
    assert.equal(e.file, file);
    assert.match(e.reason, reason);
    return true;
  });
}

test('single file, folder with model.safetensors, and sharded checkpoint read back the same', () => {
  const root = tempDir('cmerge-io-model-');
  const file = join(root, 'one.safetensors');
  const folder = join(root, 'folder');
  const sharded = join(root, 'sharded');
  assert.deepEqual(writeModel(file), [file]);
  assert.deepEqual(writeModel(folder), [join(folder, 'model.safetensors')]);
  const files = writeModel(sharded, { maxShardBytes: 600 });
  // HF order: I64, F32 (embed, layer.0.bias), BF16 (layer.0.weight, layer.1.weight); greedy
  // 600-byte shards: [steps, embed, layer.0.bias] 392 B, [layer.0.weight] 256 B, [layer.1.weight] 512 B
  assert.deepEqual(
    files.map((f) => f.slice(sharded.length + 1)),
    [
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
    ],
  );
  assert.deepEqual(
    readdirSync(sharded).sort(),
    files.map((f) => f.slice(sharded.length + 1)).sort(),
    'no temp files left',
  );
  const index = JSON.parse(readFileSync(join(sharded, 'model.safetensors.index.json'), 'utf8'));
  assert.deepEqual(index, {
    metadata: { total_size: 1160 },
    weight_map: {
      embed: 'model-00001-of-00003.safetensors',
      'layer.0.bias': 'model-00001-of-00003.safetensors',
      'layer.0.weight': 'model-00002-of-00003.safetensors',
      'layer.1.weight': 'model-00003-of-00003.safetensors',
      steps: 'model-00001-of-00003.safetensors',
    },
  });

  const models = [openModel(file), openModel(folder), openModel(sharded)];
  for (const m of models) {
    assert.deepEqual([...m.tensors.keys()], ['embed', 'layer.0.bias', 'layer.0.weight', 'layer.1.weight', 'steps']);
    assert.equal(m.dataBytes, 1160);
    assert.deepEqual({ ...m.metadata }, { format: 'pt' });
    assert.deepEqual(m.readF32('embed'), data(specs[3]!));
    assert.deepEqual(m.readF32('layer.1.weight'), data(specs[2]!)); // values are exact in BF16
    assert.deepEqual(m.readRaw('steps'), data(specs[4]!));
    assert.deepEqual(m.tensors.get('layer.0.weight'), {
      name: 'layer.0.weight',
      dtype: 'BF16',
      shape: [16, 8],
      size: 128,
      byteLength: 256,
    });
    expectInputError(() => m.readF32('missing'), m.path, /no tensor named "missing"/);
  }
  assert.deepEqual(models[2]!.files, [join(sharded, 'model.safetensors.index.json'), ...files.slice(0, 3)]);
  assert.deepEqual(findCheckpointFiles(sharded), models[2]!.files);
  assert.deepEqual(findCheckpointFiles(folder), [join(folder, 'model.safetensors')]);
  assert.deepEqual(findCheckpointFiles(file), [file]);
  assert.equal(findCheckpointFiles(root), null);
  assert.equal(findCheckpointFiles(join(root, 'nope')), null);
  for (const m of models) m.close();
});

test('sharded order is the concatenation of the shards, and each shard is a valid file alone', () => {
  const dest = join(tempDir('cmerge-io-shard-'), 'm');
  const w = createModelWriter(dest, specs, { maxShardBytes: 600 });
  assert.deepEqual(w.order, ['steps', 'embed', 'layer.0.bias', 'layer.0.weight', 'layer.1.weight']);
  assert.throws(() => w.write('embed', new Float32Array(80)), /out of order; expected steps/);
  for (const name of w.order) w.write(name, data(specs.find((s) => s.name === name)!));
  w.commit();
  const shard = openModel(join(dest, 'model-00001-of-00003.safetensors'));
  assert.deepEqual([...shard.tensors.keys()], ['embed', 'layer.0.bias', 'steps']);
  shard.close();
});

test('sharded writer abort removes every temporary file', () => {
  const dest = join(tempDir('cmerge-io-abort-'), 'm');
  const w = createModelWriter(dest, specs, { maxShardBytes: 600 });
  for (const name of w.order.slice(0, 4)) w.write(name, data(specs.find((s) => s.name === name)!));
  assert.equal(readdirSync(dest).length, 2, 'shard 1 finished, shard 2 in progress');
  w.abort();
  assert.deepEqual(readdirSync(dest), []);
});

/** a sharded checkpoint to break in various ways */
function shardedFixture(): string {
  const dest = join(tempDir('cmerge-io-bad-'), 'm');
  writeModel(dest, { maxShardBytes: 600 });
  return dest;
}
const idx = (d: string) => join(d, 'model.safetensors.index.json');
const editIndex = (d: string, edit: (x: { weight_map: Record<string, string> }) => void) => {
  const x = JSON.parse(readFileSync(idx(d), 'utf8'));
  edit(x);
  writeFileSync(idx(d), JSON.stringify(x));
};

test('index naming a missing shard', () => {
  const d = shardedFixture();
  rmSync(join(d, 'model-00003-of-00003.safetensors'));
  expectInputError(() => openModel(d), idx(d), /index names missing shard model-00003-of-00003.safetensors/);
  // discovery still lists it, so an intake can wait for it
  assert.ok(findCheckpointFiles(d)!.includes(join(d, 'model-00003-of-00003.safetensors')));
});

test('shard lacking a tensor the index maps to it', () => {
  const d = shardedFixture();
  editIndex(d, (x) => {
    x.weight_map['ghost'] = 'model-00001-of-00003.safetensors';
  });
  expectInputError(() => openModel(d), join(d, 'model-00001-of-00003.safetensors'), /lacks tensor "ghost"/);
});

test('index mapping a tensor to the wrong shard', () => {
  const d = shardedFixture();
  editIndex(d, (x) => {
    x.weight_map['embed'] = 'model-00002-of-00003.safetensors';
  });
  expectInputError(() => openModel(d), join(d, 'model-00002-of-00003.safetensors'), /lacks tensor "embed"/);
});

test('tensor present in two shards', () => {
  const d = shardedFixture();
  // replace shard 3 with a file holding layer.1.weight and, again, embed
  const body = new Uint8Array(512 + 320);
  writeFileSync(
    join(d, 'model-00003-of-00003.safetensors'),
    craftBytes(
      {
        embed: entry('F32', [10, 8], 0, 320),
        'layer.1.weight': entry('BF16', [16, 16], 320, 832),
      },
      body,
    ),
  );
  expectInputError(
    () => openModel(d),
    join(d, 'model-00003-of-00003.safetensors'),
    /tensor "embed" is also in shard .*model-00001-of-00003/,
  );
});

test('shard tensor missing from the index', () => {
  const d = shardedFixture();
  editIndex(d, (x) => {
    delete x.weight_map['steps'];
  });
  expectInputError(() => openModel(d), join(d, 'model-00001-of-00003.safetensors'), /"steps" is not in the index/);
});

test('malformed index, path escapes, bad shard, ambiguous folder, not a checkpoint', () => {
  const d = shardedFixture();
  writeFileSync(idx(d), '{"weight_map": ');
  expectInputError(() => openModel(d), idx(d), /not valid JSON/);
  writeFileSync(idx(d), '{"metadata": {}}');
  expectInputError(() => openModel(d), idx(d), /no "weight_map"/);
  writeFileSync(idx(d), JSON.stringify({ weight_map: { a: '../x.safetensors' } }));
  expectInputError(() => openModel(d), idx(d), /invalid shard file "..\/x.safetensors"/);

  const e = shardedFixture();
  writeFileSync(join(e, 'model-00002-of-00003.safetensors'), 'garbage');
  expectInputError(() => openModel(e), join(e, 'model-00002-of-00003.safetensors'), /not safetensors/);

  const f = shardedFixture();
  copyFileSync(join(fixturesDir, 'parity/clip-f32/base.safetensors'), join(f, 'model.safetensors'));
  expectInputError(() => openModel(f), f, /ambiguous/);

  const empty = tempDir('cmerge-io-empty-');
  mkdirSync(join(empty, 'x'));
  expectInputError(() => openModel(join(empty, 'x')), join(empty, 'x'), /not a checkpoint/);
});

test('folder writes with total ≤ maxShardBytes give one model.safetensors', () => {
  const dest = join(tempDir('cmerge-io-one-'), 'm');
  assert.deepEqual(writeModel(dest, { maxShardBytes: 1160 }), [join(dest, 'model.safetensors')]);
});
