import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { openStore, SCHEMA_VERSION, StoreError } from '../../src/store/index.js';
import { tempDir } from '../helpers/paths.js';
import { freshStore } from './helpers.js';

test('a fresh database gets every migration, WAL, synchronous=FULL, foreign keys', () => {
  const { store, dbPath } = freshStore();
  const db = store.db;
  assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(db.pragma('synchronous', { simple: true }), 2); // FULL
  assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
  assert.ok((db.pragma('busy_timeout', { simple: true }) as number) > 0);
  const tables = (
    db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]
  ).map((r) => r.name);
  for (const t of [
    'pipelines',
    'checkpoints',
    'merges',
    'versions',
    'tensor_metrics',
    'model_metrics',
    'retention',
    'evaluations',
    'notifications',
  ]) {
    assert.ok(tables.includes(t), `missing table ${t}`);
  }
  assert.deepEqual(store.integrityCheck(), []);
  store.close();
  assert.ok(dbPath.endsWith('cmerge.sqlite'));
});

test('re-opening keeps the data and does not re-run migrations', () => {
  const { store, dbPath } = freshStore();
  store.enqueue('clip', { name: 'a', path: '/d/a', sha256: 'a'.repeat(64), size: 1 });
  store.close();
  const again = openStore(dbPath);
  assert.equal(again.db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  assert.equal(again.queued('clip').length, 1);
  again.close();
});

test('a database from a newer cmerge is refused, not touched', () => {
  const dir = tempDir();
  const path = join(dir, 'x.sqlite');
  const raw = new Database(path);
  raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  raw.close();
  assert.throws(
    () => openStore(path),
    (e: unknown) => e instanceof StoreError && /newer than this cmerge/.test(e.message),
  );
  const check = new Database(path);
  assert.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION + 1);
  assert.equal((check.prepare(`SELECT count(*) AS n FROM sqlite_master`).get() as { n: number }).n, 0);
  check.close();
});

test('a failing migration leaves the previous version (runs in a transaction)', () => {
  const dir = tempDir();
  const path = join(dir, 'x.sqlite');
  const raw = new Database(path);
  // a table the first migration also creates: its CREATE fails half-way through the script
  raw.exec('CREATE TABLE versions (x)');
  raw.close();
  assert.throws(() => openStore(path), /already exists/);
  const check = new Database(path);
  assert.equal(check.pragma('user_version', { simple: true }), 0);
  const names = (check.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map(
    (r) => r.name,
  );
  assert.deepEqual(names, ['versions'], 'tables created before the failure were rolled back');
  check.close();
});

test('readonly open for inspection: reads, cannot write, requires a migrated file', () => {
  const { store, dbPath } = freshStore();
  store.enqueue('clip', { name: 'a', path: '/d/a', sha256: 'a'.repeat(64), size: 1 });
  const ro = openStore(dbPath, { readonly: true });
  assert.equal(ro.status()[0]!.queued, 1);
  assert.throws(() => ro.enqueue('clip', { name: 'b', path: '/d/b', sha256: 'b'.repeat(64), size: 1 }), /readonly/);
  ro.close();
  store.close();
  assert.throws(() => openStore(join(tempDir(), 'missing.sqlite'), { readonly: true }));
});

test('a version-1 database (before merge progress) is migrated, and the running merge reports its progress', () => {
  const dir = tempDir();
  const path = join(dir, 'v1.sqlite');
  const raw = new Database(path);
  raw.exec(MIGRATIONS[0]!.sql);
  raw.pragma('user_version = 1');
  raw.close();

  const store = openStore(path);
  assert.equal(store.db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  store.enqueue('clip', { name: 'a', path: '/d/a', sha256: 'a'.repeat(64), size: 1 });
  const { merge } = store.markMerging(store.nextQueued('clip')!.id, { method: 'opcm', params: {}, engine: 'native' });
  assert.equal(store.currentMerge('clip')!.progress, null, 'nothing reported yet');
  const p = { phase: 'update', done: 40, total: 200, at: '2026-11-23T15:00:00.000Z' };
  store.setMergeProgress(merge.id, p);
  assert.deepEqual(store.currentMerge('clip')!.progress, p);
  assert.equal(store.db.pragma('synchronous', { simple: true }), 2, 'other writes stay synchronous = FULL');
  assert.deepEqual(store.status(['clip'])[0]!.current_merge!.progress, p);

  store.commitMerge({ merge_id: merge.id, state: { generation: 1, path: 'states/clip/1' } });
  store.setMergeProgress(merge.id, { ...p, done: 41 }); // a late report after the commit is ignored
  assert.equal(store.currentMerge('clip'), null);
  assert.deepEqual(store.merge(merge.id)!.progress, p);
  store.close();
});
