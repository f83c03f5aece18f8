import assert from 'node:assert/strict';
import { copyFileSync, existsSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { beginVersion, finishVersion } from '../../src/publish/index.js';
import { DaemonProc, dropFile, waitForVersion, workspace, writeConfig } from './support.js';

/**
 * A kill after version 1's folder was renamed into place but before its merge committed: at the
 * next start, recovery must not leave `current` pointing at the folder it removes (the repository
 * recovery points a missing `current` at the newest intact folder, which is that uncommitted one).
 */
test('an uncommitted version 1 at start: removed, and current does not dangle', async () => {
  const { work, models, drop, repo, state, pipeline } = workspace('cmerge-daemon-recover-current-');
  const staging = await beginVersion(repo, 'clip', 1);
  copyFileSync(models.tasks[0]!, join(staging.dir, 'model.safetensors'));
  await finishVersion(staging, {
    parent: null,
    method: 'opcm',
    params: { alpha: 0.5 },
    base: { path: models.base, sha256: '0'.repeat(64) },
    checkpoints: [],
    engine: 'native',
  });
  const config = writeConfig(join(work, 'cmerge.yaml'), state, [pipeline]);
  const d = new DaemonProc(config);
  try {
    await d.ready();
    assert.ok(!existsSync(join(repo, 'clip', '1')), 'the uncommitted version is removed');
    assert.throws(() => lstatSync(join(repo, 'clip', 'current')), /ENOENT/, 'no current before a version is committed');
    dropFile(models.tasks[1]!, drop);
    await waitForVersion(repo, 'clip', 1, 30_000, d);
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
  } finally {
    await d.kill();
  }
});
