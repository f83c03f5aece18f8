/**
 * A `current` moved by hand (an operator serving an older version) is never undone silently: the
 * daemon starts paused and says what to run; resume continues from the merge state, rollback from
 * the version `current` points at. (A crash between the commit and the swap still rolls forward:
 * test/daemon/recover-current.test.ts and the crash tests.)
 */
import assert from 'node:assert/strict';
import { renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cmerge } from '../helpers/cli.js';
import {
  currentVersion,
  DaemonProc,
  dropFile,
  manifest,
  sleep,
  waitForVersion,
  workspace,
  writeConfig,
} from './support.js';

/** What an operator does: a new symlink renamed over `current`. */
function pointByHand(repo: string, version: number): void {
  const tmp = join(repo, 'clip', '.by-hand');
  symlinkSync(String(version), tmp);
  renameSync(tmp, join(repo, 'clip', 'current'));
}

interface Row {
  current_version: number;
  queued: number;
  paused: { reason: string; kind: string } | null;
}

describe('a hand-moved current', () => {
  const ws = workspace('cmerge-current-moved-', 5);
  const config = writeConfig(join(ws.work, 'cmerge.yaml'), ws.state, [ws.pipeline]);
  let d = new DaemonProc(config);
  after(() => d.kill());
  const row = (): Row => {
    const r = cmerge(['status', '--config', config, '--json']);
    return (JSON.parse(r.stdout) as { pipelines: Row[] }).pipelines[0]!;
  };
  const restart = async () => {
    await d.stop();
    d = new DaemonProc(config);
    await d.ready();
  };

  test('pauses with what to run; resume continues from the merge state', async () => {
    await d.ready();
    for (let i = 0; i < 3; i++) {
      dropFile(ws.models.tasks[i]!, ws.drop);
      await waitForVersion(ws.repo, 'clip', i + 1, 30_000, d);
    }
    await d.stop();
    pointByHand(ws.repo, 1);
    d = new DaemonProc(config);
    await d.ready();
    assert.equal(currentVersion(ws.repo, 'clip'), 1, 'not undone');
    const paused = row().paused!;
    assert.equal(paused.kind, 'current_moved');
    assert.equal(
      paused.reason,
      'current points at version 1 while the merge state is at version 3: run "cmerge rollback clip 1" to continue from 1, or "cmerge resume clip" to continue from 3',
    );
    dropFile(ws.models.tasks[3]!, ws.drop);
    await sleep(2_000);
    assert.equal(row().queued, 1, 'nothing merges while paused');
    assert.equal(currentVersion(ws.repo, 'clip'), 1);

    assert.equal(cmerge(['resume', 'clip', '--config', config]).status, 0);
    await waitForVersion(ws.repo, 'clip', 4, 30_000, d);
    assert.equal(manifest(ws.repo, 'clip', 4).parent, 3);
    await restart();
    assert.equal(row().paused, null, 'the restart after resume is not paused');
  });

  test('rollback to the version current points at continues from it', async () => {
    pointByHand(ws.repo, 2);
    await restart();
    assert.equal(row().paused?.kind, 'current_moved');
    assert.equal(cmerge(['rollback', 'clip', '2', '--config', config]).status, 0);
    assert.equal(row().paused, null);
    dropFile(ws.models.tasks[4]!, ws.drop);
    await waitForVersion(ws.repo, 'clip', 5, 30_000, d);
    assert.equal(manifest(ws.repo, 'clip', 5).parent, 2);
    assert.equal(currentVersion(ws.repo, 'clip'), 5);
  });
});
