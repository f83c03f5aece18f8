import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { openStore, SCHEMA_VERSION } from '../../src/store/index.js';
import { tempDir } from '../helpers/paths.js';
import { arrival, freshStore, mergeHead, sha } from './helpers.js';

/**
 * Migration 5: each merged checkpoint records the float dtypes it was stored in (they may differ
 * from the base's, docs/methods.md); history and show carry it. Earlier merges have none.
 */
test('a version-4 database is migrated: its merged checkpoints have no recorded dtype', () => {
  const path = join(tempDir(), 'v4.sqlite');
  const raw = new Database(path);
  for (const m of MIGRATIONS.filter((x) => x.version <= 4)) raw.exec(m.sql);
  raw.pragma('user_version = 4');
  const at = '2026-11-01T00:00:00.000Z';
  raw.prepare(`INSERT INTO pipelines (name, created_at, merged_count) VALUES ('clip', ?, 1)`).run(at);
  raw
    .prepare(
      `INSERT INTO checkpoints (pipeline_id, name, path, sha256, size, arrived_at, status, step, merged_at)
      VALUES (1, 'a', '/d/a', ?, 1, ?, 'merged', 1, ?)`,
    )
    .run(sha(1), at, at);
  raw.close();

  const store = openStore(path);
  assert.equal(store.db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  assert.deepEqual(
    store.mergedCheckpoints('clip').map((c) => [c.name, c.dtype]),
    [['a', null]],
  );
  store.close();
});

test('the commit records the checkpoint dtype; history and show carry it, a queued one has none', () => {
  const { store } = freshStore();
  for (const i of [1, 2, 3]) store.enqueue('clip', arrival(i));
  const first = mergeHead(store, 'clip', { checkpoint_dtype: 'F32' });
  mergeHead(store, 'clip', { checkpoint_dtype: 'BF16+F32' });
  store.recordVersion({
    pipeline: 'clip',
    number: 2,
    parent: null,
    merge_id: first.id + 1,
    path: '/r/clip/2',
    files: {},
    manifest_sha256: 'c'.repeat(64),
  });
  assert.deepEqual(
    store.mergedCheckpoints('clip').map((c) => [c.step, c.dtype]),
    [
      [1, 'F32'],
      [2, 'BF16+F32'],
    ],
  );
  assert.equal(store.queued('clip')[0]!.dtype, null, 'recorded when merged, not before');
  assert.deepEqual(
    store.history('clip').map((h) => [h.checkpoint, h.dtype]),
    [
      ['ck-1.safetensors', 'F32'],
      ['ck-2.safetensors', 'BF16+F32'],
    ],
  );
  assert.deepEqual(
    store.show('clip', 2)!.checkpoints.map((c) => [c.name, c.dtype]),
    [
      ['ck-1.safetensors', 'F32'],
      ['ck-2.safetensors', 'BF16+F32'],
    ],
  );
  assert.deepEqual(store.integrityCheck(), []);
  store.close();
});
