import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { writeDemoModels } from '../../src/demo/synth.js';
import { createModelWriter, openModel } from '../../src/io/model.js';
import { badCheckpointKinds, packSafetensors, type BadKind } from '../helpers/bad-checkpoints.js';
import { cmerge } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

/**
 * Every kind of bad checkpoint makes `cmerge merge` exit nonzero with one line on stderr naming the
 * file, and leaves the merge state and the previous output untouched.
 */
const work = tempDir();
const state = join(work, 'state');
const out = join(work, 'merged.safetensors');
const badDir = join(work, 'bad');
let base = '';
let good = '';

function snapshot(): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else h.update(p).update(readFileSync(p));
    }
  };
  walk(state);
  return h.update(readFileSync(out)).digest('hex');
}

/** kinds the shared helper leaves out: header details the CLI reports the same way */
function cliOnlyKinds(): BadKind[] {
  const parts = () => {
    const bytes = readFileSync(good);
    const n = Number(bytes.readBigUInt64LE(0));
    return {
      header: JSON.parse(bytes.subarray(8, 8 + n).toString()) as Record<string, Record<string, unknown>>,
      data: bytes.subarray(8 + n),
    };
  };
  const file = (dir: string, name: string, bytes: Buffer) => (writeFileSync(join(dir, name), bytes), join(dir, name));
  return [
    {
      kind: 'unknown dtype',
      name: 'dtype-unknown.safetensors',
      reason: /dtype/i,
      make(dir) {
        const { header, data } = parts();
        header[Object.keys(header).find((x) => x !== '__metadata__')!].dtype = 'Q4_K';
        return file(dir, this.name, packSafetensors(header, data));
      },
    },
    {
      kind: 'metadata not a string map',
      name: 'metadata.safetensors',
      reason: /metadata/i,
      make(dir) {
        const { header, data } = parts();
        header.__metadata__ = { format: 3 };
        return file(dir, this.name, packSafetensors(header, data));
      },
    },
    {
      kind: 'no such file',
      name: 'nope.safetensors',
      reason: /no such|not found|ENOENT|not a/i,
      make: (dir) => join(dir, 'nope.safetensors'),
    },
  ];
}

describe('cmerge merge rejects bad checkpoints', () => {
  before(() => {
    mkdirSync(badDir, { recursive: true });
    const m = writeDemoModels(join(work, 'models'), 2, { d: 16, layers: 1 });
    base = m.base;
    good = m.tasks[1];
    const r = cmerge(['merge', '--base', base, '--state', state, '--method', 'opcm', '--out', out, m.tasks[0]]);
    assert.equal(r.status, 0, r.stderr);
  });

  // the kinds are made lazily (inside each test), once the base and the good checkpoint exist
  const kinds = () => [...badCheckpointKinds(base, good), ...cliOnlyKinds()];
  const names = badCheckpointKinds('', '')
    .map((k) => k.kind)
    .concat(['unknown dtype', 'metadata not a string map', 'no such file']);
  for (const kindName of names) {
    test(kindName, () => {
      const k = kinds().find((x) => x.kind === kindName)!;
      const bad = k.make(badDir);
      const before = snapshot();
      const r = cmerge(['merge', '--base', base, '--state', state, '--method', 'opcm', '--out', out, bad]);
      assert.notEqual(r.status, 0);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `one line expected, got: ${r.stderr}`);
      assert.ok(lines[0].includes(bad), `names the file: ${lines[0]}`);
      assert.match(lines[0], k.reason);
      assert.equal(snapshot(), before, 'state and output untouched');
    });
  }

  test('a good checkpoint still merges afterwards', () => {
    const r = cmerge(['merge', '--base', base, '--state', state, '--method', 'opcm', '--out', out, '--json', good]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).step, 2);
  });

  test('a float dtype mix (a weight stored BF16 in an F32 checkpoint of an F32 base) is merged, not refused', () => {
    // the former `dtype mismatch` kind: merged now, in the base's dtypes (test/cli/merge-dtype.test.ts has the values)
    const source = openModel(good);
    const specs = [...source.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape] }));
    const target = specs.find((s) => s.shape.length === 2 && s.name.endsWith('.weight'))!;
    target.dtype = 'BF16';
    const mixed = join(work, 'bf16-weight.safetensors');
    const w = createModelWriter(mixed, specs);
    for (const name of w.order) w.write(name, source.readF32(name));
    w.commit();
    source.close();
    const mixedOut = join(work, 'mixed.safetensors');
    const r = cmerge([
      'merge',
      '--base',
      base,
      '--state',
      state,
      '--method',
      'opcm',
      '--out',
      mixedOut,
      '--json',
      mixed,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { steps: { dtype: string }[] }).steps[0].dtype, 'BF16+F32');
    const merged = openModel(mixedOut);
    assert.deepEqual(new Set([...merged.tensors.values()].map((t) => t.dtype)), new Set(['F32']), "the base's dtype");
    merged.close();
  });

  test('a bad file after a good one in the same call: nothing is written', () => {
    const before = snapshot();
    const r = cmerge([
      'merge',
      '--base',
      base,
      '--state',
      state,
      '--method',
      'opcm',
      '--out',
      join(work, 'x.safetensors'),
      good,
      join(badDir, 'nan.safetensors'),
    ]);
    assert.notEqual(r.status, 0);
    assert.equal(snapshot(), before);
    assert.throws(() => statSync(join(work, 'x.safetensors')));
  });

  test('continuing a state with another method is refused', () => {
    const r = cmerge(['merge', '--base', base, '--state', state, '--method', 'dop', '--out', out, good]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /state was made by opcm/);
  });
});
