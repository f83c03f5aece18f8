import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { checkpointFiles, openStore, SCHEMA_VERSION } from '../../src/store/index.js';
import { tempDir } from '../helpers/paths.js';

/**
 * Migration 9: merged checkpoints archived (docs/operations.md). A version-8 database keeps its
 * merged checkpoints as unarchived (the daemon archives them at its next start); once archived a
 * checkpoint no longer owns its drop path, and its files are read from the archive.
 */
test('a version-8 database is migrated: merged checkpoints unarchived until moved; then the path is free', () => {
  const path = join(tempDir(), 'v8.sqlite');
  const raw = new Database(path);
  for (const m of MIGRATIONS.filter((x) => x.version <= 8)) raw.exec(m.sql);
  raw.pragma('user_version = 8');
  raw.prepare(`INSERT INTO pipelines (name, created_at) VALUES ('clip', '2026-11-01T00:00:00.000Z')`).run();
  raw
    .prepare(
      `INSERT INTO checkpoints (pipeline_id, name, path, sha256, size, arrived_at, status, step, merged_at)
       VALUES (1, 'a.safetensors', '/drop/a.safetensors', 'aa', 10, '2026-11-01T00:00:00.000Z', 'merged', 1, '2026-11-01T00:01:00.000Z')`,
    )
    .run();
  raw.close();
  const store = openStore(path);
  assert.ok(SCHEMA_VERSION >= 9);
  const [c] = store.unarchived('clip');
  assert.equal(c?.name, 'a.safetensors');
  assert.equal(c.archive_path, null);
  assert.equal(checkpointFiles(c), '/drop/a.safetensors');
  assert.equal(store.findByPath('clip', '/drop/a.safetensors')?.id, c.id, 'still owns its drop path');

  // the target recorded first: not archived yet, files still read from the drop path
  store.setArchivePath(c.id, '/drop.merged/a.safetensors');
  const recorded = store.unarchived('clip')[0]!;
  assert.equal(recorded.archive_path, '/drop.merged/a.safetensors');
  assert.equal(checkpointFiles(recorded), '/drop/a.safetensors');
  assert.equal(store.findByPath('clip', '/drop/a.safetensors')?.id, c.id);

  store.markArchived(c.id);
  assert.deepEqual(store.unarchived('clip'), []);
  const archived = store.checkpoint(c.id)!;
  assert.equal(checkpointFiles(archived), '/drop.merged/a.safetensors');
  assert.equal(store.findByPath('clip', '/drop/a.safetensors'), null, 'the drop path is free for a new arrival');
  // the same content again under that path is a duplicate of the merged one, not "known"
  const again = store.enqueue('clip', { name: 'a.safetensors', path: '/drop/a.safetensors', sha256: 'aa', size: 10 });
  assert.equal(again.outcome, 'duplicate');
  store.close();
});
