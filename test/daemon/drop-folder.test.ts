import assert from 'node:assert/strict';
import { mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeDemoModels } from '../../src/demo/synth.js';
import { tempDir } from '../helpers/paths.js';
import { DaemonProc, dropFile, manifest, waitForVersion, writeConfig } from './support.js';

/**
 * The drop folder goes away under a running daemon (moved, an NFS mount dropping out) and comes
 * back: the daemon says so, keeps running, and takes checkpoints from the new folder.
 */
test('the drop folder disappears and comes back: the daemon keeps running and takes checkpoints again', async () => {
  const work = tempDir('cmerge-drop-gone-');
  const models = writeDemoModels(join(work, 'models'), 2, { d: 16, layers: 1, seed: 4 });
  const drop = join(work, 'drop');
  const repo = join(work, 'repo');
  mkdirSync(drop);
  const config = writeConfig(join(work, 'cmerge.yaml'), join(work, 'state'), [
    { base: models.base, drop, repository: repo },
  ]);
  const d = new DaemonProc(config);
  try {
    await d.ready();
    dropFile(models.tasks[0], drop);
    await waitForVersion(repo, 'clip', 1, 30_000, d);

    const from = d.lines.length;
    renameSync(drop, join(work, 'drop-moved-away'));
    // the periodic scan (every 5 s) notices
    await d.waitFor(/^cannot list the drop folder/, 15_000, from);
    assert.ok(d.alive, 'the daemon is still running');

    mkdirSync(drop);
    dropFile(models.tasks[1], drop);
    await waitForVersion(repo, 'clip', 2, 30_000, d);
    assert.deepEqual(
      manifest(repo, 'clip', 2).checkpoints.map((c) => c.name),
      ['task_0.safetensors', 'task_1.safetensors'],
    );
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
  } finally {
    await d.kill();
  }
});
