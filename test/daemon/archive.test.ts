/**
 * Merged checkpoints leave the drop folder for the archive (docs/operations.md): recorded in the
 * lineage, a name can be reused for the next fine-tune, the same content again is a duplicate,
 * revert replays from the archive, and a crash between the commit and the move is finished at start.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, renameSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { cmerge } from '../helpers/cli.js';
import {
  assertSameAsOneShot,
  assertVerifyClean,
  DaemonProc,
  dropFile,
  history,
  manifest,
  sha256,
  status,
  waitForVersion,
  waitUntil,
  workspace,
  writeConfig,
} from './support.js';

test('merged checkpoints are archived beside the drop folder; names reused; revert and restart use the archive', async () => {
  const ws = workspace('cmerge-archive-', 3);
  const config = writeConfig(join(ws.work, 'cmerge.yaml'), ws.state, [ws.pipeline]);
  const archive = `${ws.drop}.merged`;
  const [t0, t1, t2] = ws.models.tasks as [string, string, string];
  let d = new DaemonProc(config);
  try {
    await d.ready();
    dropFile(t0, ws.drop);
    await waitForVersion(ws.repo, 'clip', 1, 30_000, d);
    dropFile(t1, ws.drop);
    await waitForVersion(ws.repo, 'clip', 2, 30_000, d);
    await d.waitFor(/^archived task_1\.safetensors: /, 10_000);

    // the drop folder holds only what is still to merge; the archive holds the merged files, unchanged
    assert.deepEqual(readdirSync(ws.drop), []);
    assert.deepEqual(readdirSync(archive).sort(), ['task_0.safetensors', 'task_1.safetensors']);
    assert.equal(sha256(join(archive, 'task_1.safetensors')), sha256(t1));
    // recorded in the lineage: history and show name where each is kept
    assert.deepEqual(
      history(config).map((h) => [h.checkpoint, (h as unknown as { archived: string | null }).archived]),
      [
        ['task_0.safetensors', join(archive, 'task_0.safetensors')],
        ['task_1.safetensors', join(archive, 'task_1.safetensors')],
      ],
    );
    const show = JSON.parse(cmerge(['show', '--config', config, 'clip', '2', '--json']).stdout) as {
      checkpoints: { name: string; path: string; archived: string | null }[];
    };
    assert.deepEqual(
      show.checkpoints.map((c) => [c.path, c.archived]),
      [
        [join(ws.drop, 'task_0.safetensors'), join(archive, 'task_0.safetensors')],
        [join(ws.drop, 'task_1.safetensors'), join(archive, 'task_1.safetensors')],
      ],
    );

    // a new fine-tune under a merged name is a new checkpoint (archived under another name)
    dropFile(t2, ws.drop, 'task_0.safetensors');
    await waitForVersion(ws.repo, 'clip', 3, 30_000, d);
    await d.waitFor(/^archived task_0\.safetensors: .*task_0-\d+\.safetensors/, 10_000);
    // the same content as a merged one, under its old name: a duplicate, said so
    dropFile(t1, ws.drop);
    await waitUntil(() => status(config).pipelines[0].rejected.length === 1, 30_000, 'the duplicate rejected');
    assert.match(
      status(config).pipelines[0].rejected[0].reason,
      /duplicate: same sha256 as task_1\.safetensors \(merged\)/,
    );

    // revert task_1: the later checkpoint is replayed from the archive
    const r = cmerge(['revert', '--config', config, 'clip', 'task_1.safetensors', '--json']);
    assert.equal(r.status, 0, r.stderr);
    await waitForVersion(ws.repo, 'clip', 4, 30_000, d);
    assert.deepEqual(
      manifest(ws.repo, 'clip', 4).checkpoints.map((c) => c.name),
      ['task_0.safetensors', 'task_0.safetensors'],
    );
    assertSameAsOneShot({
      base: ws.models.base,
      checkpoints: [t0, t2],
      published: join(ws.repo, 'clip', '4', 'model.safetensors'),
      work: join(ws.work, 'fresh'),
    });
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());

    // a crash after the move was recorded, before it was made: the file is back in the drop folder
    // and SQLite says "to be archived"; the start finishes the move before the intake looks
    const moved = join(archive, 'task_0.safetensors');
    renameSync(moved, join(ws.drop, 'task_0.safetensors'));
    const db = new Database(join(ws.state, 'cmerge.sqlite'));
    db.prepare('UPDATE checkpoints SET archived_at = NULL WHERE archive_path = ?').run(moved);
    db.close();
    d = new DaemonProc(config);
    await d.ready();
    await d.waitFor(/^archived task_0\.safetensors: /, 10_000);
    assert.ok(existsSync(moved));
    assert.deepEqual(
      readdirSync(ws.drop).filter((n) => n.endsWith('.safetensors')),
      [],
    );
    await new Promise((res) => setTimeout(res, 1_500));
    assert.equal(status(config).pipelines[0].rejected.length, 1, 'not taken for a new arrival, nor a duplicate');
    assert.equal(basename(status(config).pipelines[0].rejected[0].name), 'task_1.safetensors');
    assertVerifyClean(config);
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
  } finally {
    await d.kill();
  }
});
