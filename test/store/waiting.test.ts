import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { openStore, SCHEMA_VERSION } from '../../src/store/index.js';
import { tempDir } from '../helpers/paths.js';
import { freshStore } from './helpers.js';

/**
 * Migration 7: drop-folder entries the intake waits for (README, intake). The daemon records and
 * updates them; status reads them from another, read-only connection; first_seen survives updates.
 */
test('a version-6 database is migrated and has no waiting entries', () => {
  const path = join(tempDir(), 'v6.sqlite');
  const raw = new Database(path);
  for (const m of MIGRATIONS.filter((x) => x.version <= 6)) raw.exec(m.sql);
  raw.pragma('user_version = 6');
  raw.prepare(`INSERT INTO pipelines (name, created_at) VALUES ('clip', '2026-11-01T00:00:00.000Z')`).run();
  raw.close();
  const store = openStore(path);
  assert.ok(SCHEMA_VERSION >= 7);
  assert.equal(store.db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  assert.deepEqual(store.waiting('clip'), []);
  assert.deepEqual(store.status(['clip'])[0]!.waiting, []);
  store.close();
});

test('an entry is recorded, updated with first_seen kept, read by a read-only connection, and forgotten', () => {
  const { store, dbPath } = freshStore();
  const entry = {
    path: '/drop/big.safetensors',
    name: 'big.safetensors',
    size: 200,
    expected_size: null,
    reason: 'growing' as const,
    signature: '200:1',
    last_change: '2026-12-01T10:00:00.000Z',
  };
  store.recordWaiting('clip', entry);
  store.recordWaiting('clip', {
    ...entry,
    size: 5000,
    expected_size: 9000,
    signature: '5000:2',
    first_seen: '2026-12-01T10:00:03.000Z',
    last_change: '2026-12-01T10:00:03.000Z',
  });
  const reader = openStore(dbPath, { readonly: true });
  assert.deepEqual(reader.waiting('clip'), [
    {
      pipeline: 'clip',
      path: '/drop/big.safetensors',
      name: 'big.safetensors',
      size: 5000,
      expected_size: 9000,
      reason: 'growing',
      signature: '5000:2',
      first_seen: '2026-12-01T10:00:00.000Z',
      last_change: '2026-12-01T10:00:03.000Z',
    },
  ]);
  assert.deepEqual(reader.waiting('other'), []);
  store.forgetWaiting('clip', '/drop/big.safetensors');
  assert.deepEqual(reader.waiting('clip'), []);
  assert.throws(() => store.recordWaiting('clip', { ...entry, reason: 'stuck' as 'growing' }), /CHECK constraint/);
  reader.close();
  store.close();
});
