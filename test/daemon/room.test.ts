import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { diskBytes, estimateFromBase, shortfalls } from '../../src/daemon/room.js';
import { writeDemoModels } from '../../src/demo/synth.js';
import { copyBaseFiles } from '../../src/publish/index.js';
import { cmerge } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { leaveFree, mountSmallDisk, repositoryOnSmallDisk } from './small-disk.js';
import {
  assertSameAsOneShot,
  assertVerifyClean,
  currentVersion,
  DaemonProc,
  dropFile,
  history,
  manifest,
  status,
  waitForVersion,
} from './support.js';

/**
 * Room on disk before a merge (docs/operations.md): a merge that would not fit is not started.
 * The pipeline pauses with the figures in the log and the status, survives a restart paused, and
 * resumes by itself once room appears; the checkpoint is merged once, never failed.
 */

test('needs on one file system are summed; a reserve counts; separate file systems are separate', (t) => {
  const work = tempDir('cmerge-room-unit-');
  const small = join(work, 'small');
  const skip = mountSmallDisk(small);
  if (skip) return t.skip(skip);
  const MiB = 2 ** 20;
  // 24 MiB disk: 10 + 10 fit, 10 + 16 do not, 10 + 10 with an 8 MiB reserve do not
  const two = (a: number, b: number) => [
    { what: 'the state generation', dir: join(small, 'state'), bytes: a * MiB },
    { what: 'the version', dir: join(small, 'repo', 'clip'), bytes: b * MiB },
  ];
  assert.deepEqual(shortfalls(two(10, 10), 0), []);
  const short = shortfalls(two(10, 16), 0);
  assert.equal(short.length, 1);
  assert.equal(short[0].at, small, 'measured at the nearest existing folder');
  assert.equal(short[0].need, 26 * MiB);
  assert.ok(short[0].free <= 24 * MiB && short[0].free > 23 * MiB, String(short[0].free));
  assert.equal(short[0].what, 'the state generation (10.0 MiB) and the version (16.0 MiB)');
  assert.equal(shortfalls(two(10, 10), 8 * MiB).length, 1, 'the reserve is part of the need');
  // the version on the small disk, the state on the big one: only the version can be short
  const split = shortfalls(
    [
      { what: 'the state generation', dir: join(work, 'state'), bytes: 20 * MiB },
      { what: 'the version', dir: join(small, 'repo'), bytes: 30 * MiB },
    ],
    0,
  );
  assert.deepEqual(
    split.map((s) => s.what),
    ['the version (30.0 MiB)'],
  );
});

test("a version's estimate is the base's weights plus exactly the files a publication copies from its folder", async () => {
  const work = tempDir('cmerge-room-base-');
  const models = writeDemoModels(join(work, 'models'), 1, { d: 16, layers: 1, seed: 3 });
  const base = join(work, 'base');
  mkdirSync(join(base, 'sub'), { recursive: true });
  mkdirSync(join(base, '.cache'));
  copyFileSync(models.base, join(base, 'model.safetensors'));
  writeFileSync(join(base, 'tokenizer.json'), Buffer.alloc(1000));
  writeFileSync(join(base, 'sub', 'config.json'), Buffer.alloc(100));
  // not copied: the base's own card, dot entries, weights in a subfolder
  writeFileSync(join(base, 'README.md'), Buffer.alloc(500));
  writeFileSync(join(base, '.cache', 'blob'), Buffer.alloc(700));
  copyFileSync(models.base, join(base, 'sub', 'model.safetensors'));

  const dest = join(work, 'version');
  mkdirSync(dest);
  assert.deepEqual(await copyBaseFiles(base, dest), ['sub/config.json', 'tokenizer.json']);
  const weights = estimateFromBase(join(base, 'model.safetensors'), undefined).versionBytes;
  assert.equal(diskBytes(dest), 1100);
  assert.equal(estimateFromBase(base, undefined).versionBytes, weights + diskBytes(dest));
});

test('no room for the next version: paused before the merge, still paused after a restart, resumed when room appears', async (t) => {
  const s = repositoryOnSmallDisk('cmerge-room-', 7, { reserve: 0, recheck_s: 1 });
  if (typeof s === 'string') return t.skip(s);
  const { work, base, tasks, drop, repo, config, filler } = s;

  let d = new DaemonProc(config);
  try {
    await d.ready();
    dropFile(tasks[0], drop);
    await waitForVersion(repo, 'clip', 1, 30_000, d);
    const weights = statSync(join(repo, 'clip', '1', 'model.safetensors')).size;

    // room for the weights, not for the tokenizer.json the version copies from the base
    leaveFree(filler, weights + (1 << 20));
    const dropped = dropFile(tasks[1], drop);
    const paused = await d.waitFor(/^merging paused: not enough room on disk/, 30_000);
    t.diagnostic(paused.message);
    assert.match(
      paused.message,
      /the version \(6\.\d MiB\): 6\.\d MiB needed on the file system of .*repo\/clip, 1\.\d MiB free/,
    );
    assert.match(paused.message, /resumes by itself once there is room/);
    await d.waitFor(/^queued task_1/, 10_000);
    assert.deepEqual(d.messages(/^merge 2 started/), [], 'the merge was not started');
    const st = status(config).pipelines[0];
    assert.equal(st.queued, 1);
    assert.equal(st.paused?.kind, 'no_room');
    assert.match(st.paused?.reason ?? '', /^not enough room on disk: the version/);
    assert.match(
      cmerge(['status', '--config', config]).stdout,
      /clip: merging PAUSED since .*: not enough room on disk: the version/,
    );
    assert.deepEqual(
      history(config).filter((h) => h.step === 2),
      [],
      'no attempt at step 2 was made, so none failed',
    );
    assert.deepEqual(readdirSync(join(repo, 'clip')).sort(), ['1', 'current']);
    assert.ok(existsSync(dropped), 'the checkpoint stays where it was dropped');

    // a restart keeps the pause (it is in SQLite) and keeps watching
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
    d = new DaemonProc(config);
    await d.ready();
    await new Promise((r) => setTimeout(r, 2_500));
    assert.equal(status(config).pipelines[0].paused?.kind, 'no_room', 'still paused after the restart');
    assert.deepEqual(d.messages(/^merge 2 started/), []);

    // room again: resumes by itself, one attempt, published as if nothing happened
    rmSync(filler);
    await d.waitFor(/^there is room on disk again: merging resumes/, 10_000);
    await waitForVersion(repo, 'clip', 2, 30_000, d);
    assert.deepEqual(
      manifest(repo, 'clip', 2).checkpoints.map((c) => c.name),
      ['task_0.safetensors', 'task_1.safetensors'],
    );
    assert.equal(currentVersion(repo, 'clip'), 2);
    assert.equal(status(config).pipelines[0].paused, null);
    assert.deepEqual(
      history(config)
        .filter((h) => h.step === 2)
        .map((h) => h.status),
      ['committed'],
    );
    assertVerifyClean(config);
    assertSameAsOneShot({
      base,
      checkpoints: tasks,
      published: join(repo, 'clip', '2', 'model.safetensors'),
      work,
    });
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
  } finally {
    await d.kill();
  }
});
