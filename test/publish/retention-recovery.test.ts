import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyRetention, listVersions, readCurrent, recoverRepository, swapCurrent } from '../../src/publish/index.js';
import { tempDir } from '../helpers/paths.js';
import { publish } from './support.js';

test('retention keeps the newest K, current and pinned versions; no dot leftovers', async () => {
  const repo = join(tempDir(), 'repo');
  for (let n = 1; n <= 8; n++) await publish(repo, 'p', n);
  await swapCurrent(repo, 'p', 3); // a rollback: current is old
  const removed = await applyRetention(repo, 'p', { keep: 2, pinned: [5] });
  assert.deepEqual(removed, [1, 2, 4, 6]);
  assert.deepEqual(await listVersions(repo, 'p'), [3, 5, 7, 8]);
  assert.deepEqual(
    readdirSync(join(repo, 'p')).filter((n) => n.startsWith('.')),
    [],
  );
  assert.deepEqual(await applyRetention(repo, 'p', { keep: 2, pinned: [5] }), [], 'idempotent');
  await assert.rejects(applyRetention(repo, 'p', { keep: 0 }), RangeError);
});

test('recovery removes staging, half-deleted versions and temp links; repairs a dangling current', async () => {
  const repo = join(tempDir(), 'repo');
  for (let n = 1; n <= 3; n++) await publish(repo, 'p', n);
  const dir = join(repo, 'p');
  mkdirSync(join(dir, '.staging-4'));
  writeFileSync(join(dir, '.staging-4', 'model.safetensors'), 'partial');
  mkdirSync(join(dir, '.deleting-0-abcd'));
  symlinkSync('2', join(dir, '.current-tmp-1-ffff'));
  rmSync(join(dir, '3'), { recursive: true }); // current -> 3 now dangles
  const r = await recoverRepository(repo, 'p');
  assert.deepEqual(r.removed.sort(), ['.current-tmp-1-ffff', '.deleting-0-abcd', '.staging-4']);
  assert.equal(r.currentBefore, 3);
  assert.equal(r.currentAfter, 2);
  assert.equal(readlinkSync(join(dir, 'current')), '2');
  assert.deepEqual(r.versions, [1, 2]);
  assert.deepEqual(r.broken, []);
  assert.deepEqual(readdirSync(dir).sort(), ['1', '2', 'current']);
});

test('recovery moves a numbered folder without manifest aside, reports a corrupted one in place', async () => {
  const repo = join(tempDir(), 'repo');
  for (let n = 1; n <= 2; n++) await publish(repo, 'p', n);
  const dir = join(repo, 'p');
  mkdirSync(join(dir, '3'));
  writeFileSync(join(dir, '3', 'model.safetensors'), 'no manifest');
  writeFileSync(join(dir, '2', 'model.safetensors'), 'bit rot');
  await swapCurrent(repo, 'p', 1);
  const r = await recoverRepository(repo, 'p');
  assert.deepEqual(
    r.broken.map((b) => [b.version, b.movedTo !== null, b.problems[0]!.kind]),
    [
      [2, false, 'size'],
      [3, true, 'manifest'],
    ],
  );
  assert.ok(existsSync(r.broken[1]!.movedTo!), 'data kept under a dot name');
  assert.deepEqual(await listVersions(repo, 'p'), [1, 2]);
  assert.equal(await readCurrent(repo, 'p'), 1, 'a valid current is left alone');
});

test('recovery: no current link but versions exist -> newest intact; nothing left -> link removed', async () => {
  const repo = join(tempDir(), 'repo');
  for (let n = 1; n <= 2; n++) await publish(repo, 'p', n);
  const dir = join(repo, 'p');
  rmSync(join(dir, 'current'));
  assert.equal((await recoverRepository(repo, 'p')).currentAfter, 2);
  rmSync(join(dir, '1'), { recursive: true });
  rmSync(join(dir, '2'), { recursive: true });
  const r = await recoverRepository(repo, 'p');
  assert.equal(r.currentAfter, null);
  assert.deepEqual(readdirSync(dir), []);
  assert.deepEqual(await recoverRepository(repo, 'missing'), {
    removed: [],
    broken: [],
    versions: [],
    currentBefore: null,
    currentAfter: null,
  });
});

test('discarding uncommitted versions leaves no dot entry; a crash leftover of it is removed by recovery', async () => {
  const repo = join(tempDir(), 'repo');
  for (let n = 1; n <= 4; n++) await publish(repo, 'p', n);
  const { discardVersionsAbove } = await import('../../src/publish/index.js');
  assert.deepEqual(await discardVersionsAbove(repo, 'p', 2), [3, 4]);
  assert.deepEqual(await listVersions(repo, 'p'), [1, 2]);
  assert.deepEqual(
    readdirSync(join(repo, 'p')).filter((n) => n.startsWith('.')),
    [],
  );
  // what the daemon of cmerge 0.1 left when killed between its rename and its rm (issue 8, bug 2)
  const dir = join(repo, 'p');
  mkdirSync(join(dir, '.uncommitted-3-1700000000000'));
  writeFileSync(join(dir, '.uncommitted-3-1700000000000', 'model.safetensors'), 'model-sized');
  const r = await recoverRepository(repo, 'p');
  assert.deepEqual(r.removed, ['.uncommitted-3-1700000000000']);
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.startsWith('.')),
    [],
  );
});
