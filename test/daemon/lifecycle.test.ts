import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { before, describe, test } from 'node:test';
import { writeDemoModels } from '../../src/demo/synth.js';
import { tempDir } from '../helpers/paths.js';
import { cmerge } from '../helpers/cli.js';
import {
  assertVerifyClean,
  currentVersion,
  DaemonProc,
  dropFile,
  history,
  manifest,
  sleep,
  status,
  waitForVersion,
  waitUntil,
  writeConfig,
  type PipelineOpts,
  type StatusJson,
} from './support.js';

/**
 * Signals on a real daemon: SIGTERM during a merge (abandoned past a short budget, finished within
 * a long one), SIGTERM with a queue and a restart, SIGHUP with a changed and with an invalid config.
 */

/** DOP with d=128, 2 layers, 50 steps: a merge (step ≥ 2) takes ~2.5 s here; step 1 is instant */
let slow: { base: string; tasks: string[] };
before(() => {
  slow = writeDemoModels(join(tempDir('cmerge-daemon-life-models-'), 'slow'), 6, { d: 128, layers: 2, seed: 3 });
});

function setup(prefix: string, pipeline: Partial<PipelineOpts>, extra: Record<string, unknown> = {}) {
  const work = tempDir(prefix);
  const drop = join(work, 'drop');
  const repo = join(work, 'repo');
  mkdirSync(drop);
  const p = {
    base: slow.base,
    drop,
    repository: repo,
    method: 'dop',
    params: { num_steps: 50 },
    ...pipeline,
  } as PipelineOpts;
  const config = writeConfig(join(work, 'cmerge.yaml'), join(work, 'state'), [p], extra);
  return { work, drop, repo, config, p };
}

describe('daemon lifecycle', () => {
  test('SIGTERM during a merge: abandoned past the budget then redone once; finished within the budget', async (t) => {
    // DOP's Adam loop dominates: 1000 native steps of these tensors take about 6 s here, so a
    // machine twice as fast still runs past the 1 s budget
    const { drop, repo, config, p, work } = setup(
      'cmerge-daemon-term-',
      { params: { num_steps: 1000 } },
      { shutdown_budget_s: 1 },
    );
    let d = new DaemonProc(config);
    try {
      await d.ready();
      dropFile(slow.tasks[0], drop);
      await waitForVersion(repo, 'clip', 1, 30_000, d);

      // 1. budget 1 s, merge ~6 s: the merge is abandoned, the process exits 0
      dropFile(slow.tasks[1], drop);
      await d.waitFor(/^merge 2 started/);
      await sleep(300);
      const abandoned = await d.stop('SIGTERM', 10_000);
      t.diagnostic(`budget 1 s: exit ${abandoned.code} ${abandoned.ms} ms after SIGTERM`);
      assert.equal(abandoned.code, 0, d.tail());
      assert.ok(abandoned.ms < 1000 + 2000, `exited ${abandoned.ms} ms after SIGTERM (budget 1 s)`);
      assert.ok(d.messages(/^published version 2/).length === 0, 'merge 2 was not published');
      assert.ok(d.messages(/abandon/).length > 0, `the abandon is logged:\n${d.tail()}`);
      assert.equal(currentVersion(repo, 'clip'), 1);
      assert.deepEqual(
        readdirSync(join(repo, 'clip')).filter((e) => /^\d+$/.test(e)),
        ['1'],
        'no version 2 folder',
      );
      assert.equal(status(config).pipelines[0].queued, 1, 'the checkpoint is queued again');

      d = new DaemonProc(config);
      await d.ready();
      await waitForVersion(repo, 'clip', 2, 30_000, d);

      // 2. budget 60 s: the running merge finishes and is published before the exit
      writeConfig(config, join(work, 'state'), [p], { shutdown_budget_s: 60 });
      await d.stop('SIGTERM');
      d = new DaemonProc(config);
      await d.ready();
      dropFile(slow.tasks[2], drop);
      await d.waitFor(/^merge 3 started/);
      // `cmerge status` (another process, reading SQLite) shows where the running merge is
      let progress = null as NonNullable<StatusJson['pipelines'][0]['current_merge']>['progress'];
      await waitUntil(
        () => (progress = status(config).pipelines[0].current_merge?.progress ?? null) !== null,
        10_000,
        'progress of merge 3 in status',
      );
      assert.ok(progress !== null);
      assert.ok(
        ['analysis', 'update', 'output'].includes(progress.phase) &&
          progress.done >= 1 &&
          progress.done <= progress.total,
        JSON.stringify(progress),
      );
      assert.match(cmerge(['status', '--config', config]).stdout, /step 3, (analysis|update|output) \d+ %/);
      const finished = await d.stop('SIGTERM', 60_000);
      const published = d.lines.find((l) => /^published version 3/.test(l.message));
      t.diagnostic(
        `budget 60 s: exit ${finished.code} ${finished.ms} ms after SIGTERM (merge 3 took ${published?.total_s} s)`,
      );
      assert.equal(finished.code, 0, d.tail());
      assert.equal(d.messages(/^published version 3/).length, 1, `merge 3 finished before the exit:\n${d.tail()}`);
      assert.equal(currentVersion(repo, 'clip'), 3);

      d = new DaemonProc(config);
      await d.ready();
      await sleep(1000); // time to (wrongly) merge something again
      assert.equal(d.messages(/^merge \d+ started/).length, 0, 'nothing is merged again after the restart');
      assert.equal((await d.stop('SIGTERM')).code, 0);
    } finally {
      await d.kill();
    }
    const h = history(config);
    const committed = h.filter((e) => e.status === 'committed');
    assert.deepEqual(
      committed.map((e) => e.checkpoint),
      ['task_0.safetensors', 'task_1.safetensors', 'task_2.safetensors'],
      'each merged exactly once, in order',
    );
    const attempts = h.filter((e) => e.checkpoint === 'task_1.safetensors');
    assert.equal(attempts.length, 2, 'task_1: the abandoned attempt and the redo');
    assert.notEqual(attempts[0].status, 'committed');
    assert.deepEqual(
      manifest(repo, 'clip', 3).checkpoints.map((c) => c.name),
      committed.map((e) => e.checkpoint),
    );
    assertVerifyClean(config);
  });

  test('SIGTERM with 3 queued, restart: all merged once, in queue order', async (t) => {
    // merge 2 must still run while the status is read: 500 native DOP steps take about 3 s here
    const { drop, repo, config } = setup('cmerge-daemon-queue-', { params: { num_steps: 500 } });
    let d = new DaemonProc(config);
    try {
      await d.ready();
      dropFile(slow.tasks[0], drop);
      await waitForVersion(repo, 'clip', 1, 30_000, d);
      for (const p of slow.tasks.slice(1, 5)) dropFile(p, drop);
      await d.waitFor(/^merge 2 started/);
      await waitUntil(() => d.messages(/^queued /).length >= 5, 10_000, 'all five queued');
      const queueOrder = d.messages(/^queued /).map((m) => m.slice('queued '.length));
      const before = status(config).pipelines[0];
      assert.equal(before.queued, 3, 'one merging, three queued');
      const exit = await d.stop('SIGTERM');
      t.diagnostic(`SIGTERM with 3 queued and merge 2 running: exit ${exit.code} after ${exit.ms} ms`);
      assert.equal(exit.code, 0, d.tail());
      const mid = status(config).pipelines[0];
      assert.equal(mid.current_version, 2, 'merge 2 finished within the budget');
      assert.equal(mid.queued, 3, 'the queue survives the stop');

      d = new DaemonProc(config);
      await d.ready();
      await waitForVersion(repo, 'clip', 5, 60_000, d);
      assert.equal((await d.stop('SIGTERM')).code, 0);
      const order = manifest(repo, 'clip', 5).checkpoints.map((c) => c.name);
      assert.deepEqual(order, queueOrder, 'merged in queue (arrival) order across the restart');
      assert.deepEqual(new Set(order.slice(1)), new Set(slow.tasks.slice(1, 5).map((p) => basename(p))));
    } finally {
      await d.kill();
    }
    const h = history(config);
    assert.equal(h.length, 5, 'five merge attempts, none redone');
    assert.ok(h.every((e) => e.status === 'committed'));
    assertVerifyClean(config);
  });

  test('SIGHUP: a changed config takes effect without a restart; an invalid one (schema, or a base that does not open) is refused and the old one kept', async (t) => {
    const work = tempDir('cmerge-daemon-hup-');
    const fast = writeDemoModels(join(work, 'models'), 8, { d: 16, layers: 1, seed: 9 });
    const dropA = join(work, 'drop-a');
    const dropB = join(work, 'drop-b');
    const repo = join(work, 'repo');
    mkdirSync(dropA);
    mkdirSync(dropB);
    const state = join(work, 'state');
    const a = { name: 'clip', base: fast.base, drop: dropA, repository: repo };
    const b = {
      name: 'second',
      base: fast.base,
      drop: dropB,
      repository: repo,
      method: 'task_arithmetic',
      params: { scaling_factor: 0.3 },
    };
    const config = writeConfig(join(work, 'cmerge.yaml'), state, [a]);
    const d = new DaemonProc(config);
    try {
      await d.ready();
      for (const p of fast.tasks.slice(0, 3)) dropFile(p, dropA);
      await waitForVersion(repo, 'clip', 3, 30_000, d);
      assert.deepEqual(numbered(repo, 'clip'), [1, 2, 3]);

      // retention 10 → 2 and a second pipeline
      writeConfig(config, state, [{ ...a, retention: { keep: 2 } }, b]);
      const from = d.lines.length;
      d.child.kill('SIGHUP');
      await d.waitFor(/^configuration reloaded/, 30_000, from);
      dropFile(fast.tasks[3], dropB);
      await waitForVersion(repo, 'second', 1, 30_000, d);
      assert.equal(manifest(repo, 'second', 1).method, 'task_arithmetic');
      dropFile(fast.tasks[4], dropA);
      await waitForVersion(repo, 'clip', 4, 30_000, d);
      await d.waitFor(/^retention removed versions/, 10_000, from);
      assert.deepEqual(numbered(repo, 'clip'), [3, 4], 'retention keep: 2 applies after the reload');
      assert.equal(d.messages(/^merge \d+ started/).length, 5, 'the reload merged nothing again');

      // an invalid config: refused, the daemon keeps running on the previous one
      writeFileSync(
        config,
        `state_dir: ${state}\npipelines:\n  - name: clip\n    base: ${fast.base}\n    drop: ${dropA}\n    repository: ${repo}\n    method: opcm\n    retention: { keep: 0 }\n`,
      );
      const from2 = d.lines.length;
      d.child.kill('SIGHUP');
      const refused = await d.waitFor(/^reload refused/, 10_000, from2);
      t.diagnostic(refused.message);
      assert.match(refused.message, /keep/);

      // valid YAML and schema, but the base model cannot be opened: refused before anything stops
      writeConfig(config, state, [
        { ...a, retention: { keep: 2 } },
        { ...b, base: join(work, 'models', 'no-such-base.safetensors') },
      ]);
      const from3 = d.lines.length;
      d.child.kill('SIGHUP');
      const missing = await d.waitFor(/^reload refused/, 10_000, from3);
      t.diagnostic(missing.message);
      assert.match(missing.message, /pipeline second: base .*no-such-base\.safetensors/);
      assert.equal(d.lines.slice(from3).filter((l) => /^configuration reloaded/.test(l.message)).length, 0);
      await sleep(300);
      assert.ok(d.alive);
      dropFile(fast.tasks[5], dropB);
      await waitForVersion(repo, 'second', 2, 30_000, d);
      dropFile(fast.tasks[6], dropA);
      await waitForVersion(repo, 'clip', 5, 30_000, d);
      await d.waitFor(/^retention removed versions 3/, 10_000, from2);
      assert.deepEqual(numbered(repo, 'clip'), [4, 5], 'still the reloaded config (keep 2, two pipelines)');
      assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
    } finally {
      await d.kill();
    }
    writeConfig(config, state, [{ ...a, retention: { keep: 2 } }, b]);
    assertVerifyClean(config);
  });
});

function numbered(repo: string, pipeline: string): number[] {
  return readdirSync(join(repo, pipeline))
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .sort((x, y) => x - y);
}
