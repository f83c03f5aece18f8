/**
 * The intake in-process: a real drop folder, real files written (partially, growing, a folder
 * completing later, a symlink out, a corrupt header, a duplicate), chokidar's real events and a
 * real SQLite store; only time is the test's. The clock decides stability windows and retry
 * waits, so the windows are asserted to the tick without sleeping through them.
 */
import assert from 'node:assert/strict';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import type { IntakeTimings } from '../../src/daemon/intake/index.js';
import { writeDemoModels } from '../../src/demo/synth.js';
import { createModelWriter, openModel } from '../../src/io/model.js';
import { tempDir } from '../helpers/paths.js';
import { intakeRig, tickUntil, TICK, SETTLE, type Rig } from './intake-rig.js';
import { dropFile, sleep, waitUntil } from './support.js';

/** The rig on demo models (a CLIP-like base and three fine-tuned checkpoints). */
async function rig(
  prefix: string,
  timings: Partial<IntakeTimings> = {},
): Promise<Rig & { models: { base: string; tasks: string[] } }> {
  const models = writeDemoModels(join(tempDir(prefix), 'models'), 3, { d: 16, layers: 1, seed: 7 });
  return Object.assign(await intakeRig(prefix, models.base, timings), { models });
}

/** every row the store holds for the pipeline: queued and rejected */
function rows(r: Rig) {
  return [...r.store.queued('clip'), ...r.store.rejected('clip')];
}

test('a file still being written is taken once it is complete and unchanged for the settle window, exactly once', async () => {
  // no periodic listing: after start, only chokidar's events name the file
  const r = await rig('cmerge-intake-growing-', { rescanMs: 3_600_000 });
  try {
    const bytes = readFileSync(r.models.tasks[0]);
    const path = join(r.drop, 'growing.safetensors');
    writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length * 0.4)));
    await waitUntil(() => r.intake.pending === 1, 10_000, 'the watcher names the new file');

    // header says more data is coming: waits, however long it stays like that (below the timeout)
    await r.elapse(5_000);
    appendFileSync(path, bytes.subarray(Math.floor(bytes.length * 0.4), Math.floor(bytes.length * 0.8)));
    await r.elapse(5_000);
    assert.equal(r.queued, 0, 'an incomplete file is not taken');
    assert.equal(r.store.findByPath('clip', path), null);
    assert.equal(r.intake.pending, 1);

    // complete now: the first tick sees the new size, the window starts there
    appendFileSync(path, bytes.subarray(Math.floor(bytes.length * 0.8)));
    await r.elapse(TICK);
    const completeSeen = r.clock.now();
    await r.elapse(SETTLE - 2 * TICK);
    assert.equal(r.queued, 0, 'not taken before the settle window has passed');
    const takenAt = await tickUntil(r, () => r.queued > 0, 5 * TICK, 'the complete file is queued');
    assert.ok(takenAt - completeSeen >= SETTLE, `taken ${takenAt - completeSeen} ms after it was seen complete`);
    assert.ok(takenAt - completeSeen <= SETTLE + TICK);

    const row = r.store.findByPath('clip', path);
    assert.equal(row?.status, 'queued');
    assert.equal(row?.size, bytes.length);

    // later file events, further listings and a restart do not take it again
    await r.elapse(10_000);
    await r.intake.stop();
    await r.restart();
    await r.elapse(10_000);
    assert.equal(r.queued, 1, 'queued exactly once');
    assert.deepEqual(
      rows(r).map((c) => [c.name, c.status]),
      [['growing.safetensors', 'queued']],
    );
    assert.equal(r.logs.filter((l) => l.message === 'queued growing.safetensors').length, 1);
    assert.ok(existsSync(path), 'a queued checkpoint stays where it was dropped');
  } finally {
    await r.close();
  }
});

test('a folder checkpoint is taken once its last shard has come and settled', async () => {
  const r = await rig('cmerge-intake-folder-');
  try {
    // the checkpoint as shards, written aside; then brought into the drop folder piece by piece
    const staged = join(r.work, 'staged');
    const source = openModel(r.models.tasks[1]);
    const specs = [...source.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape] }));
    const writer = createModelWriter(staged, specs, { maxShardBytes: Math.ceil(source.dataBytes / 3) });
    for (const name of writer.order) writer.write(name, source.readF32(name));
    writer.commit();
    source.close();
    const shards = readdirSync(staged)
      .filter((f) => f.endsWith('.safetensors'))
      .sort();
    assert.ok(shards.length >= 2, `${shards.length} shards`);
    const last = shards.at(-1)!;

    const folder = join(r.drop, 'sharded-task');
    mkdirSync(folder);
    for (const f of ['model.safetensors.index.json', ...shards.slice(0, -1)])
      copyFileSync(join(staged, f), join(folder, f));
    await r.elapse(5_000);
    assert.equal(r.queued + r.rejected, 0, 'an index naming a missing shard waits');
    assert.equal(r.intake.pending, 1);

    const lastBytes = readFileSync(join(staged, last));
    writeFileSync(join(folder, last), lastBytes.subarray(0, lastBytes.length >> 1));
    await r.elapse(5_000);
    assert.equal(r.queued + r.rejected, 0, 'a shard still being written waits');

    appendFileSync(join(folder, last), lastBytes.subarray(lastBytes.length >> 1));
    await r.elapse(TICK);
    const completeSeen = r.clock.now();
    await r.elapse(SETTLE - 2 * TICK);
    assert.equal(r.queued, 0, 'not taken before the settle window has passed');
    const takenAt = await tickUntil(r, () => r.queued > 0, 5 * TICK, 'the folder is queued');
    assert.ok(takenAt - completeSeen >= SETTLE);
    assert.equal(r.rejected, 0);
    const row = r.store.findByPath('clip', folder);
    assert.equal(row?.name, 'sharded-task');
    assert.equal(row?.status, 'queued');
  } finally {
    await r.close();
  }
});

test('bad entries are quarantined with their reason recorded, and kept', async () => {
  const r = await rig('cmerge-intake-bad-');
  try {
    // a symlink to a good checkpoint outside the drop folder: only the link is wrong
    symlinkSync(r.models.tasks[2], join(r.drop, 'escape.safetensors'));
    // a header that is not JSON, arriving by rename
    const corrupt = Buffer.alloc(8 + 16 + 64);
    corrupt.writeBigUInt64LE(16n);
    corrupt.write('{"a": not json!}', 8);
    writeFileSync(join(r.drop, '.corrupt.safetensors.part'), corrupt);
    renameSync(join(r.drop, '.corrupt.safetensors.part'), join(r.drop, 'corrupt.safetensors'));

    await tickUntil(r, () => r.rejected === 2, 20 * TICK + SETTLE, 'both are rejected');
    assert.equal(r.queued, 0);
    const reasons = new Map(r.store.rejected('clip').map((c) => [c.name, c]));
    assert.match(reasons.get('escape.safetensors')!.reason!, /symlink leads out of the drop folder/);
    assert.match(reasons.get('corrupt.safetensors')!.reason!, /JSON|header/i);

    const quarantine = join(r.drop, '.quarantine');
    for (const [name, row] of reasons) {
      assert.equal(row.quarantine_path, join(quarantine, name));
      assert.ok(!lstatSync(join(r.drop, name), { throwIfNoEntry: false }), `${name} left the drop folder`);
      assert.equal(readFileSync(join(quarantine, `${name}.reason.txt`), 'utf8').includes(row.reason!), true);
      assert.ok(
        r.logs.some((l) => l.level === 'warn' && l.message === `rejected ${name}: ${row.reason}`),
        `the rejection of ${name} is logged`,
      );
    }
    assert.ok(lstatSync(join(quarantine, 'escape.safetensors')).isSymbolicLink(), 'the link itself is kept');
    assert.ok(existsSync(r.models.tasks[2]), 'its target is untouched');
    assert.deepEqual(readFileSync(join(quarantine, 'corrupt.safetensors')), corrupt, 'kept byte for byte');

    // nothing more happens to them
    await r.elapse(5_000);
    assert.equal(r.rejected, 2);
    assert.equal(rows(r).length, 2);
  } finally {
    await r.close();
  }
});

test('a file that stays incomplete is rejected once the incomplete timeout has passed, not before', async () => {
  const incompleteTimeoutMs = 10_000;
  const r = await rig('cmerge-intake-truncated-', { incompleteTimeoutMs });
  try {
    const bytes = readFileSync(r.models.tasks[0]);
    const path = join(r.drop, 'truncated.safetensors');
    writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    await waitUntil(() => r.intake.pending === 1, 10_000, 'the watcher names the new file');
    await r.elapse(TICK);
    const seen = r.clock.now();
    await r.elapse(incompleteTimeoutMs - 2 * TICK);
    assert.equal(r.rejected + r.queued, 0, 'still waiting for the rest of the file');
    const rejectedAt = await tickUntil(r, () => r.rejected === 1, 5 * TICK, 'rejected after the timeout');
    assert.ok(rejectedAt - seen >= incompleteTimeoutMs);
    const row = r.store.rejected('clip')[0];
    assert.equal(row.name, 'truncated.safetensors');
    assert.match(row.reason!, /truncat|size|short|end/i);
    assert.ok(existsSync(join(r.drop, '.quarantine', 'truncated.safetensors')), 'kept in quarantine');
  } finally {
    await r.close();
  }
});

test('a file shorter than its length prefix or its header waits like a truncated one, until the incomplete timeout', async () => {
  const incompleteTimeoutMs = 10_000;
  const r = await rig('cmerge-intake-short-', { incompleteTimeoutMs });
  try {
    const bytes = readFileSync(r.models.tasks[0]);
    writeFileSync(join(r.drop, 'four-bytes.safetensors'), bytes.subarray(0, 4));
    writeFileSync(join(r.drop, 'part-header.safetensors'), bytes.subarray(0, 200));
    await waitUntil(() => r.intake.pending === 2, 10_000, 'the watcher names both files');
    await r.elapse(TICK);
    const seen = r.clock.now();
    // a slow writer may pause this long: far beyond the settle window, not bad input yet
    await r.elapse(incompleteTimeoutMs - 2 * TICK);
    assert.equal(r.rejected + r.queued, 0, 'both still wait for the rest');
    const rejectedAt = await tickUntil(r, () => r.rejected === 2, 5 * TICK, 'rejected after the timeout');
    assert.ok(rejectedAt - seen >= incompleteTimeoutMs);
    const reasons = new Map(r.store.rejected('clip').map((c) => [c.name, c.reason ?? '']));
    assert.match(reasons.get('four-bytes.safetensors')!, /4 bytes, shorter than the 8-byte header length/);
    assert.match(reasons.get('part-header.safetensors')!, /header length \d+ exceeds the file size 200/);
  } finally {
    await r.close();
  }
});

test('a duplicate is rejected with a reason naming the checkpoint it duplicates', async () => {
  const r = await rig('cmerge-intake-duplicate-');
  try {
    dropFile(r.models.tasks[0], r.drop, 'first.safetensors');
    await tickUntil(r, () => r.queued === 1, 20 * TICK + SETTLE, 'the first is queued');
    const second = dropFile(r.models.tasks[0], r.drop, 'second.safetensors');
    await tickUntil(r, () => r.rejected === 1, 20 * TICK + SETTLE, 'the copy is rejected');

    assert.equal(r.queued, 1);
    const row = r.store.findByPath('clip', second);
    assert.equal(row?.status, 'rejected');
    assert.equal(row?.reason, 'duplicate: same sha256 as first.safetensors (queued)');
    assert.equal(row?.sha256, r.store.findByPath('clip', join(r.drop, 'first.safetensors'))?.sha256);
    assert.deepEqual(
      readFileSync(join(r.drop, '.quarantine', 'second.safetensors')),
      readFileSync(r.models.tasks[0]),
      'the duplicate is kept in quarantine',
    );
  } finally {
    await r.close();
  }
});

test('an intake that fails for reasons not the file’s own is retried after the configured delay, doubling', async () => {
  const retry = { initialMs: 3_000, maxMs: 60_000 };
  const r = await rig('cmerge-intake-retry-', { retry });
  // another writer holds SQLite's write lock: the intake cannot queue
  const writer = new Database(r.dbPath);
  writer.exec('BEGIN IMMEDIATE');
  try {
    const path = dropFile(r.models.tasks[0], r.drop);
    const failures = () =>
      r.logs.filter((l) => l.level === 'error' && l.message.startsWith(`intake of ${path} failed`));
    const firstAt = await tickUntil(r, () => failures().length === 1, 20 * TICK + SETTLE, 'the first failure');
    assert.match(failures()[0].message, /retrying in 3 s: .*(locked|busy)/i);
    assert.equal(r.intake.pending, 0, 'not a candidate while it waits');

    // the lock is still held: the retry, due after 3 s, fails again and waits twice as long
    const secondAt = await tickUntil(r, () => failures().length === 2, 3_000 + SETTLE + 3 * TICK, 'the retry');
    assert.ok(secondAt - firstAt >= retry.initialMs, `retried ${secondAt - firstAt} ms after the failure`);
    assert.ok(secondAt - firstAt <= retry.initialMs + SETTLE + 2 * TICK);
    assert.match(failures()[1].message, /retrying in 6 s/);

    writer.exec('COMMIT');
    // listings every second name the file meanwhile; it still waits for its 6 s
    await r.elapse(2 * retry.initialMs - 2 * TICK);
    assert.equal(r.queued, 0, 'not retried before the delay');
    assert.equal(r.store.findByPath('clip', path), null);
    const queuedAt = await tickUntil(r, () => r.queued === 1, SETTLE + 5 * TICK, 'queued on the second retry');
    assert.ok(queuedAt - secondAt >= 2 * retry.initialMs);
    assert.equal(failures().length, 2);
    assert.equal(r.store.findByPath('clip', path)?.status, 'queued');
    assert.equal(r.rejected, 0, 'a failure that is not the file’s own never rejects it');
  } finally {
    if (writer.inTransaction) writer.exec('ROLLBACK');
    writer.close();
    await r.close();
  }
});

test('stop() ends the ticks: no timer is left behind and later arrivals are not taken', async () => {
  const r = await rig('cmerge-intake-stop-');
  await r.intake.stop();
  try {
    dropFile(r.models.tasks[0], r.drop);
    await sleep(200);
    await r.elapse(10_000);
    assert.equal(r.queued, 0);
    assert.equal(r.clock.fireNext(Number.MAX_SAFE_INTEGER), false, 'no timer is pending');
  } finally {
    r.base.close();
    r.store.close();
  }
});
