import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openModel } from '../../src/io/model.js';
import { openStore } from '../../src/store/index.js';
import { cmerge } from '../helpers/cli.js';
import { baseValues, FLOATS, POSITIONS, rounded, tuned, writeModel } from '../helpers/dtype-models.js';
import { tempDir } from '../helpers/paths.js';
import {
  assertSameAsOneShot,
  assertVerifyClean,
  DaemonProc,
  dropFile,
  history,
  manifest,
  waitForVersion,
  writeConfig,
} from './support.js';

/** name → dtype of every tensor of a published version's model */
function dtypes(path: string): Record<string, string> {
  const m = openModel(path);
  try {
    return Object.fromEntries([...m.tensors.values()].map((t) => [t.name, t.dtype]));
  } finally {
    m.close();
  }
}

const expected = (float: string) => Object.fromEntries([...FLOATS.map((f) => [f.name, float]), [POSITIONS, 'I64']]);

/**
 * A real daemon merges a float32 fine-tune of a bf16 base, then a bf16 one: the versions keep the
 * base's dtypes (a pipeline with `out_dtype` gets its own), equal the one-shot `cmerge merge` of
 * the same files, and the lineage (SQLite, show/history --json, manifest) records each dtype.
 */
test('the daemon merges checkpoints in another float dtype than the base and records each dtype', async () => {
  const work = tempDir('cmerge-daemon-dtype-');
  const b = baseValues(7);
  const base = writeModel(join(work, 'base-bf16.safetensors'), 'BF16', b);
  const f32 = writeModel(join(work, 'tuned-f32.safetensors'), 'F32', tuned(b, 8));
  const bf16 = writeModel(join(work, 'tuned-bf16.safetensors'), 'BF16', rounded('BF16', tuned(b, 9)));
  const repo = join(work, 'repo');
  const drops = { mixed: join(work, 'drop-mixed'), wide: join(work, 'drop-wide') };
  mkdirSync(drops.mixed);
  mkdirSync(drops.wide);
  const config = writeConfig(join(work, 'cmerge.yaml'), join(work, 'state'), [
    { name: 'mixed', base, drop: drops.mixed, repository: repo, settle_ms: 200 },
    { name: 'wide', base, drop: drops.wide, repository: repo, settle_ms: 200, out_dtype: 'f32' },
  ]);
  const d = new DaemonProc(config);
  try {
    await d.ready();
    dropFile(f32, drops.mixed);
    dropFile(f32, drops.wide);
    await waitForVersion(repo, 'mixed', 1, 60_000, d);
    dropFile(bf16, drops.mixed);
    await waitForVersion(repo, 'mixed', 2, 60_000, d);
    await waitForVersion(repo, 'wide', 1, 60_000, d);

    const published = (p: string, n: number) => join(repo, p, String(n), 'model.safetensors');
    assert.deepEqual(dtypes(published('mixed', 1)), expected('BF16'), "the base's dtypes");
    assert.deepEqual(dtypes(published('mixed', 2)), expected('BF16'));
    assert.deepEqual(dtypes(published('wide', 1)), expected('F32'), 'out_dtype: F32');
    assertSameAsOneShot({ base, checkpoints: [f32, bf16], published: published('mixed', 2), work });

    assert.deepEqual(
      manifest(repo, 'mixed', 2).checkpoints.map((c) => [c.name, (c as { dtype?: string }).dtype]),
      [
        ['tuned-f32.safetensors', 'F32'],
        ['tuned-bf16.safetensors', 'BF16'],
      ],
    );
    const shown = cmerge(['show', '--config', config, 'mixed', '2', '--json']);
    assert.equal(shown.status, 0, shown.stderr);
    const checkpoints = (JSON.parse(shown.stdout) as { checkpoints: { name: string; dtype: string | null }[] })
      .checkpoints;
    assert.deepEqual(
      checkpoints.map((c) => c.dtype),
      ['F32', 'BF16'],
    );
    const text = cmerge(['show', '--config', config, 'mixed', '2']);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /DTYPE/);
    assert.match(text.stdout, /tuned-f32\.safetensors +\S+ +F32 /);
    const h = history(config) as unknown as { pipeline: string; checkpoint: string; dtype: string | null }[];
    assert.deepEqual(h.map((e) => [e.pipeline, e.checkpoint, e.dtype]).sort(), [
      ['mixed', 'tuned-bf16.safetensors', 'BF16'],
      ['mixed', 'tuned-f32.safetensors', 'F32'],
      ['wide', 'tuned-f32.safetensors', 'F32'],
    ]);
    assertVerifyClean(config);
    const exit = await d.stop('SIGTERM');
    assert.equal(exit.code, 0, d.tail());

    const store = openStore(join(work, 'state', 'cmerge.sqlite'), { readonly: true });
    try {
      assert.deepEqual(
        store.mergedCheckpoints('mixed').map((c) => [c.step, c.dtype]),
        [
          [1, 'F32'],
          [2, 'BF16'],
        ],
      );
    } finally {
      store.close();
    }
  } finally {
    await d.kill();
  }
});
