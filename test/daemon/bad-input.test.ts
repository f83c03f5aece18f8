import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeDemoModels } from '../../src/demo/synth.js';
import { badCheckpointKinds } from '../helpers/bad-checkpoints.js';
import { tempDir } from '../helpers/paths.js';
import {
  assertVerifyClean,
  currentVersion,
  DaemonProc,
  dropFile,
  manifest,
  sleep,
  status,
  waitForVersion,
  writeConfig,
  type StatusJson,
} from './support.js';

/**
 * Every bad-input kind of docs/architecture.md#bad-input, plus a duplicate of a merged checkpoint and a symlink out
 * of the drop folder, renamed into the drop folder of a running daemon between good checkpoints.
 * Each ends in <drop>/.quarantine/ with its .reason.txt and in `status --json` with a fitting
 * reason; the good ones become versions; the daemon keeps running.
 */
test('every bad input is quarantined with its reason while good checkpoints keep merging', async (t) => {
  const work = tempDir('cmerge-daemon-bad-');
  const models = writeDemoModels(join(work, 'models'), 4, { d: 16, layers: 1, seed: 5 });
  const drop = join(work, 'drop');
  const repo = join(work, 'repo');
  const staging = join(work, 'bad');
  mkdirSync(drop);
  mkdirSync(staging);
  const config = writeConfig(join(work, 'cmerge.yaml'), join(work, 'state'), [
    { base: models.base, drop, repository: repo, settle_ms: 200 },
  ]);
  const kinds = badCheckpointKinds(models.base, models.tasks[0]);
  for (const k of kinds) k.make(staging);
  const expected = new Map<string, RegExp>(kinds.map((k) => [k.name, k.reason]));
  expected.set('dup-of-task0.safetensors', /duplicate/i);
  expected.set('escape.safetensors', /symlink|drop folder/i);

  const d = new DaemonProc(config);
  try {
    await d.ready();
    dropFile(models.tasks[0], drop);
    await waitForVersion(repo, 'clip', 1, 30_000, d);

    // the bad ones in two waves with good checkpoints in between (rename = atomic arrival)
    const half = Math.ceil(kinds.length / 2);
    for (const k of kinds.slice(0, half)) renameSync(join(staging, k.name), join(drop, k.name));
    dropFile(models.tasks[1], drop);
    for (const k of kinds.slice(half)) renameSync(join(staging, k.name), join(drop, k.name));
    dropFile(models.tasks[2], drop);
    await waitForVersion(repo, 'clip', 3, 30_000, d);
    dropFile(models.tasks[0], drop, 'dup-of-task0.safetensors');
    symlinkSync(models.tasks[3], join(drop, 'escape.safetensors')); // the file is good: only the link is wrong
    dropFile(models.tasks[3], drop);

    const deadline = Date.now() + 30_000;
    let s: StatusJson['pipelines'][0];
    for (;;) {
      s = status(config).pipelines[0];
      if (s.rejected.length >= expected.size && s.current_version === 4) break;
      if (!d.alive) throw new Error(`daemon died; log:\n${d.tail()}`);
      if (Date.now() > deadline)
        throw new Error(
          `after 30 s: version ${s.current_version}, rejected ${s.rejected.map((r) => r.name).join(', ')}; log:\n${d.tail()}`,
        );
      await sleep(300);
    }
    for (const r of s.rejected) t.diagnostic(`${r.name}: ${r.reason}`);

    assert.ok(d.alive, 'the daemon is still running');
    assert.deepEqual(
      s.rejected.map((r) => r.name).sort(),
      [...expected.keys()].sort(),
      'exactly the bad ones are rejected, each once',
    );
    for (const r of s.rejected) assert.match(r.reason, expected.get(r.name)!, `reason for ${r.name}`);
    for (const name of expected.keys()) {
      const q = join(drop, '.quarantine', name);
      assert.ok(lstatSync(q, { throwIfNoEntry: false }), `${name} is kept in quarantine`);
      assert.ok(!lstatSync(join(drop, name), { throwIfNoEntry: false }), `${name} left the drop folder`);
      assert.match(readFileSync(`${q}.reason.txt`, 'utf8'), expected.get(name)!, `${name}.reason.txt`);
    }
    assert.ok(
      lstatSync(join(drop, '.quarantine', 'escape.safetensors')).isSymbolicLink(),
      'the symlink itself is quarantined, not its target',
    );
    assert.ok(existsSync(models.tasks[3]), 'the symlink target is untouched');

    // the good ones became versions 1..4, in drop order, and nothing else was merged
    assert.equal(currentVersion(repo, 'clip'), 4);
    assert.deepEqual(
      manifest(repo, 'clip', 4).checkpoints.map((c) => c.name),
      ['task_0.safetensors', 'task_1.safetensors', 'task_2.safetensors', 'task_3.safetensors'],
    );
    assert.equal(s.queued, 0);
    // the status (SQLite) can be ahead of the daemon's stdout as this process has read it
    const logDeadline = Date.now() + 10_000;
    while (d.messages(/^rejected /).length < expected.size && Date.now() < logDeadline) await sleep(100);
    const rejectedLines = d.messages(/^rejected /);
    t.diagnostic(
      `${rejectedLines.length} rejections logged, ${kinds.filter((k) => k.incomplete).length} of them after the 2 s incomplete timeout`,
    );
    assert.equal(rejectedLines.length, expected.size);
    assertVerifyClean(config);
    const exit = await d.stop('SIGTERM');
    assert.equal(exit.code, 0, d.tail());
  } finally {
    await d.kill();
  }
});
