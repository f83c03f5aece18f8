import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeDemoModels } from '../../src/demo/synth.js';
import { cmerge } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { leaveFree, mountSmallDisk, repositoryOnSmallDisk, type DiskSetup } from './small-disk.js';
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
  writeConfig,
} from './support.js';

/**
 * A disk fills up (a real tmpfs of 24 MiB). The repository's: first the publication runs out of
 * space (copying the base folder's 6 MiB tokenizer.json), then the merge itself (writing the
 * weights). The state folder's, which holds SQLite. Each time the daemon stays up, the checkpoint
 * is kept, nothing half-published is visible, and the work is retried; once space is freed, the
 * checkpoint is published, identical to an uninterrupted merge.
 *
 * The daemon's room check (room.test.ts) would pause before such a merge starts; it is off here
 * (`room: {check: false}`, as on a file system whose free space says nothing) so that these tests
 * reach the failures it cannot prevent: an estimate that falls short, or another writer filling
 * the disk between the check and the write.
 */

/** the pipeline options that let a merge start however little room there is */
const NO_ROOM_CHECK = { room: { check: false } };

/** A daemon on the setup's config that has published task_0 as version 1. */
async function atVersion1(s: DiskSetup): Promise<DaemonProc> {
  const d = new DaemonProc(s.config);
  await d.ready();
  dropFile(s.tasks[0], s.drop);
  await waitForVersion(s.repo, 'clip', 1, 30_000, d);
  return d;
}

/** Once space is back: version 2 is task_0 then task_1, verifies, equals an uninterrupted merge; the daemon stops cleanly. */
async function publishesVersion2(d: DaemonProc, s: DiskSetup): Promise<void> {
  await waitForVersion(s.repo, 'clip', 2, 60_000, d);
  assert.deepEqual(
    manifest(s.repo, 'clip', 2).checkpoints.map((c) => c.name),
    ['task_0.safetensors', 'task_1.safetensors'],
  );
  assertVerifyClean(s.config);
  assertSameAsOneShot({
    base: s.base,
    checkpoints: s.tasks,
    published: join(s.repo, 'clip', '2', 'model.safetensors'),
    work: s.work,
  });
  const stopped = await d.stop('SIGTERM');
  assert.equal(stopped.code, 0, d.tail());
}

test('disk full in the publication, then in the merge: the daemon retries and publishes once space is back', async (t) => {
  const setup = repositoryOnSmallDisk('cmerge-disk-full-', 5, NO_ROOM_CHECK.room);
  if (typeof setup === 'string') return t.skip(setup);
  const { tasks, drop, repo, config, filler } = setup;

  const d = await atVersion1(setup);
  try {
    const weights = statSync(join(repo, 'clip', '1', 'model.safetensors')).size;

    // 1. room for the weights, not for the base folder's tokenizer.json
    leaveFree(filler, weights + (1 << 20));
    const dropped = dropFile(tasks[1], drop);
    const first = await d.waitFor(/^merge 2 .* failed, retrying in 5 s/, 30_000);
    t.diagnostic(first.message);
    assert.match(first.message, /ENOSPC.*tokenizer\.json/, 'the publication ran out of space');
    await d.waitFor(/^removed leftovers: .*\.staging-2/, 10_000, d.lines.indexOf(first));

    // 2. not even room for the weights: the merge itself fails on the retry
    leaveFree(filler, 16 << 10);
    const second = await d.waitFor(/^merge 2 .* failed, retrying in 10 s/, 30_000);
    t.diagnostic(second.message);
    assert.match(second.message, /staging-2\/model\.safetensors: ENOSPC/, 'this time the weights did not fit');

    assert.ok(d.alive, 'the daemon is still running');
    assert.equal(currentVersion(repo, 'clip'), 1);
    assert.deepEqual(
      readdirSync(join(repo, 'clip'))
        .filter((e) => e !== 'current')
        .sort(),
      ['1'],
      'no version 2 folder and no staging leftovers',
    );
    const st = status(config).pipelines[0];
    assert.equal(st.queued, 1, 'the checkpoint is still queued');
    assert.ok(existsSync(dropped), 'the checkpoint stays in the drop folder');
    // `cmerge status` (another process) says what is wrong
    assert.deepEqual(st.retrying && { ...st.retrying, last_at: typeof st.retrying.last_at }, {
      checkpoint: 'task_1.safetensors',
      step: 2,
      attempts: 2,
      last_error: second.message.replace(/^.*?retrying in 10 s: /, ''),
      last_at: 'string',
    });
    assert.match(
      cmerge(['status', '--config', config]).stdout,
      /clip: merge 2 \(task_1\.safetensors\) failed 2× \(retried with backoff\), last at .*: .*ENOSPC/,
    );
    // and so does Prometheus
    const url = /^metrics on (http:\S+)/.exec((await d.waitFor(/^metrics on http/)).message)![1];
    const metrics = await (await fetch(url)).text();
    for (const line of [
      'cmerge_merge_failures_total{pipeline="clip"} 2',
      'cmerge_queue_length{pipeline="clip"} 1',
      'cmerge_current_version{pipeline="clip"} 1',
    ]) {
      assert.ok(
        metrics.split('\n').includes(line),
        `${line} in /metrics:\n${metrics
          .split('\n')
          .filter((l) => l.startsWith('cmerge_'))
          .join('\n')}`,
      );
    }

    // 3. space is back: the retry publishes version 2
    rmSync(filler);
    await publishesVersion2(d, setup);
    assert.equal(status(config).pipelines[0].retrying, null, 'nothing to retry once published');
    const attempts = history(config)
      .filter((h) => h.step === 2)
      .map((h) => h.status);
    assert.deepEqual(attempts, ['interrupted', 'interrupted', 'committed'], JSON.stringify(history(config)));
  } finally {
    await d.kill();
  }
});

test('the disk of SQLite and the merge state fills up: nothing is lost, the checkpoint is merged once space is back', async (t) => {
  const work = tempDir('cmerge-disk-full-state-');
  const state = join(work, 'state');
  const skip = mountSmallDisk(state);
  if (skip) return t.skip(skip);
  const models = writeDemoModels(join(work, 'models'), 2, { d: 64, layers: 2, seed: 6 });
  const drop = join(work, 'drop');
  const repo = join(work, 'repo');
  mkdirSync(drop);
  const config = writeConfig(join(work, 'cmerge.yaml'), state, [
    { base: models.base, drop, repository: repo, ...NO_ROOM_CHECK },
  ]);
  const setup = { work, base: models.base, tasks: models.tasks, drop, repo, config };
  const filler = join(state, 'filler');

  const d = await atVersion1(setup);
  try {
    leaveFree(filler, 0);
    const from = d.lines.length;
    const dropped = dropFile(models.tasks[1], drop);
    // where it fails first depends on how much of SQLite's WAL is already allocated: the intake's
    // INSERT, or the merge writing its state generation
    const failure = await d.waitFor((l) => l.level === 'error', 30_000, from);
    t.diagnostic(failure.message);
    assert.match(failure.message, /ENOSPC|SQLITE_FULL|disk is full/);
    assert.ok(d.alive, 'the daemon is still running');
    assert.equal(currentVersion(repo, 'clip'), 1);
    assert.ok(existsSync(dropped), 'the checkpoint stays in the drop folder');

    rmSync(filler);
    await publishesVersion2(d, setup);
    assert.equal(history(config).filter((h) => h.step === 2 && h.status === 'committed').length, 1);
  } finally {
    await d.kill();
  }
});
