import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { openStore, SCHEMA_VERSION } from '../../src/store/index.js';
import { tempDir } from '../helpers/paths.js';
import { arrival, freshStore, mergeHead } from './helpers.js';

/**
 * Migration 3: each merge records its engine (name, device, library versions, TF32) and device
 * figures (null for the CPU engines); each version keeps its merge's engine, for replays.
 */
const cuda = {
  name: 'cuda',
  device: '0: NVIDIA H200 (sm_90, 139.8 GiB)',
  versions: { driver: '13.0', runtime: '13.0', cublas: '13.1.0', cusolver: '12.0.4' },
  tf32: false,
};
const gpu = { gpu_seconds: 2.5, peak_device_bytes: 3 * 2 ** 30, cpu_fallbacks: 1 };

test('a version-2 database is migrated: earlier merges and versions get their engine by name', () => {
  const path = join(tempDir(), 'v2.sqlite');
  const raw = new Database(path);
  for (const m of MIGRATIONS.filter((x) => x.version <= 2)) raw.exec(m.sql);
  raw.pragma('user_version = 2');
  // what cmerge of schema 2 left: one committed, published merge (native) and one in flight ('auto' as configured)
  const at = '2026-11-01T00:00:00.000Z';
  raw
    .prepare(
      `INSERT INTO pipelines (name, created_at, merged_count, state_generation, state_path) VALUES ('clip', ?, 1, 1, 's/1')`,
    )
    .run(at);
  raw
    .prepare(
      `INSERT INTO checkpoints (pipeline_id, name, path, sha256, size, arrived_at, status, step, merged_at) VALUES (1, 'a', '/d/a', ?, 1, ?, 'merged', 1, ?)`,
    )
    .run('a'.repeat(64), at, at);
  raw
    .prepare(
      `INSERT INTO checkpoints (pipeline_id, name, path, sha256, size, arrived_at, status) VALUES (1, 'b', '/d/b', ?, 1, ?, 'merging')`,
    )
    .run('b'.repeat(64), at);
  raw
    .prepare(
      `INSERT INTO merges (checkpoint_id, pipeline_id, step, method, params, engine, started_at, finished_at, status, state_generation, state_path)
    VALUES (1, 1, 1, 'opcm', '{}', 'native', ?, ?, 'committed', 1, 's/1')`,
    )
    .run(at, at);
  raw
    .prepare(
      `INSERT INTO merges (checkpoint_id, pipeline_id, step, method, params, engine, started_at, status) VALUES (2, 1, 2, 'opcm', '{}', 'auto', ?, 'running')`,
    )
    .run(at);
  raw
    .prepare(
      `INSERT INTO versions (pipeline_id, number, parent, merge_id, path, files, manifest_sha256, created_at) VALUES (1, 1, NULL, 1, '/r/clip/1', '{}', ?, ?)`,
    )
    .run('c'.repeat(64), at);
  raw.close();

  const store = openStore(path);
  assert.equal(store.db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  const old = store.merge(1)!;
  assert.deepEqual(old.engine_info, { name: 'native' });
  assert.deepEqual(
    [old.gpu_seconds, old.peak_device_bytes, old.cpu_fallbacks],
    [null, null, null],
    'no device figures for a CPU engine',
  );
  assert.deepEqual(store.version('clip', 1)!.engine, { name: 'native' });
  assert.equal(store.merge(2)!.engine_info, null, 'the merge in flight ran on an engine not known yet');
  assert.deepEqual(store.status(['clip'])[0]!.engine, { step: 1, info: { name: 'native' }, gpu: null });

  // the interrupted merge is redone on the GPU: its engine and figures are recorded, and the version keeps them
  store.recoverInterrupted();
  const { merge } = store.markMerging(store.nextQueued('clip')!.id, { method: 'opcm', params: {}, engine: 'auto' });
  const m = store.commitMerge({
    merge_id: merge.id,
    state: { generation: 2, path: 's/2' },
    engine: 'cuda',
    engine_info: cuda,
    gpu,
  });
  assert.equal(m.engine, 'cuda');
  assert.deepEqual(m.engine_info, cuda);
  assert.deepEqual([m.gpu_seconds, m.peak_device_bytes, m.cpu_fallbacks], [2.5, 3 * 2 ** 30, 1]);
  const v = store.recordVersion({
    pipeline: 'clip',
    number: 2,
    parent: 1,
    merge_id: m.id,
    path: '/r/clip/2',
    files: {},
    manifest_sha256: 'd'.repeat(64),
  });
  assert.deepEqual(v.engine, cuda, 'the version row holds what a replay needs');
  assert.deepEqual(store.status(['clip'])[0]!.engine, { step: 2, info: cuda, gpu });
  const h = store.history('clip');
  assert.deepEqual(
    h.map((r) => [r.step, r.status, r.engine, r.engine_info?.name ?? null, r.gpu]),
    [
      [1, 'committed', 'native', 'native', null],
      [2, 'interrupted', 'auto', null, null],
      [2, 'committed', 'cuda', 'cuda', gpu],
    ],
  );
  assert.deepEqual(store.show('clip', 2)!.version.engine, cuda);
  assert.deepEqual(store.integrityCheck(), []);
  store.close();
});

test('a CPU merge records its engine and no device figures; the engine name follows engine_info', () => {
  const { store } = freshStore();
  store.enqueue('clip', arrival(1));
  const m = mergeHead(store, 'clip', { engine_info: { name: 'native' }, gpu: null });
  assert.equal(m.engine, 'native', 'engine_info names the engine when engine is not given');
  assert.deepEqual(m.engine_info, { name: 'native' });
  assert.equal(m.gpu_seconds, null);
  store.recordVersion({
    pipeline: 'clip',
    number: 1,
    parent: null,
    merge_id: m.id,
    path: '/r/clip/1',
    files: {},
    manifest_sha256: 'e'.repeat(64),
  });
  assert.deepEqual(store.version('clip', 1)!.engine, { name: 'native' });
  assert.deepEqual(store.lastEngine('clip'), { step: 1, info: { name: 'native' }, gpu: null });
  assert.equal(store.lastEngine('other'), null);
  store.close();
});
