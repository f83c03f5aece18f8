import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { openStore, SCHEMA_VERSION, type AdapterRecord } from '../../src/store/index.js';
import { tempDir } from '../helpers/paths.js';
import { arrival, freshStore, mergeHead, sha } from './helpers.js';

/**
 * Migration 4: a checkpoint that was a PEFT LoRA adapter folder records what it was (r, alpha,
 * rsLoRA, targets, modules_to_save, each file's sha256); history and show carry it.
 */
const adapter: AdapterRecord = {
  r: 4,
  alpha: 8,
  use_rslora: false,
  target_tensors: 4,
  target_modules: ['v_proj', 'q_proj'],
  modules_to_save: [],
  config_sha256: 'a'.repeat(64),
  weights_sha256: 'b'.repeat(64),
};

test('a version-3 database is migrated: its checkpoints were no adapters', () => {
  const path = join(tempDir(), 'v3.sqlite');
  const raw = new Database(path);
  for (const m of MIGRATIONS.filter((x) => x.version <= 3)) raw.exec(m.sql);
  raw.pragma('user_version = 3');
  const at = '2026-11-01T00:00:00.000Z';
  raw.prepare(`INSERT INTO pipelines (name, created_at) VALUES ('clip', ?)`).run(at);
  raw
    .prepare(
      `INSERT INTO checkpoints (pipeline_id, name, path, sha256, size, arrived_at, status) VALUES (1, 'a', '/d/a', ?, 1, ?, 'queued')`,
    )
    .run(sha(1), at);
  raw.close();

  const store = openStore(path);
  // migrated through 4 and every later one
  assert.ok(SCHEMA_VERSION >= 4);
  assert.equal(store.db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  assert.equal(store.queued('clip')[0]!.adapter, null);
  store.close();
});

test('an adapter arrival keeps its record through the queue, the merge, history and show', () => {
  const { store } = freshStore();
  const queued = store.enqueue('clip', { ...arrival(1), name: 'seq-1', path: '/drop/seq-1', adapter });
  assert.equal(queued.outcome, 'queued');
  assert.deepEqual(queued.checkpoint.adapter, adapter);
  store.enqueue('clip', arrival(2));
  assert.equal(store.findByPath('clip', arrival(2).path)!.adapter, null, 'a full checkpoint has none');
  assert.deepEqual(
    store.queued('clip').map((c) => c.adapter),
    [adapter, null],
  );
  const first = mergeHead(store, 'clip');
  mergeHead(store, 'clip');
  store.recordVersion({
    pipeline: 'clip',
    number: 1,
    parent: null,
    merge_id: first.id,
    path: '/r/clip/1',
    files: {},
    manifest_sha256: 'c'.repeat(64),
  });
  assert.deepEqual(
    store.mergedCheckpoints('clip').map((c) => [c.name, c.adapter]),
    [
      ['seq-1', adapter],
      ['ck-2.safetensors', null],
    ],
  );
  assert.deepEqual(
    store.history('clip').map((h) => [h.checkpoint, h.adapter]),
    [
      ['seq-1', adapter],
      ['ck-2.safetensors', null],
    ],
  );
  assert.deepEqual(
    store.show('clip', 1)!.checkpoints.map((c) => [c.name, c.adapter]),
    [['seq-1', adapter]],
  );
  // a refusal records no adapter
  const rejected = store.reject('clip', { name: 'dora', path: '/drop/dora', sha256: sha(3) }, 'DoRA', '/q/dora');
  assert.equal(rejected.adapter, null);
  assert.deepEqual(store.integrityCheck(), []);
  store.close();
});
