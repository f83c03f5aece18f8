/**
 * dequeue and requeue through the real CLI on a running daemon, and a rejected name coming back:
 * with other content it is a new attempt; the same file put back by hand is quarantined again
 * with a log line naming `cmerge requeue`.
 */
import assert from 'node:assert/strict';
import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cmerge } from '../helpers/cli.js';
import {
  assertSameAsOneShot,
  DaemonProc,
  dropBytes,
  dropFile,
  manifest,
  waitForVersion,
  waitUntil,
  workspace,
  writeConfig,
} from './support.js';

interface Rejection {
  name: string;
  reason: string;
  quarantine: string | null;
  rejected_at: string;
}
interface Row {
  queued: number;
  rejected: Rejection[];
}

describe('dequeue, requeue, and rejected names coming back', () => {
  const ws = workspace('cmerge-queue-ops-', 3);
  const config = writeConfig(join(ws.work, 'cmerge.yaml'), ws.state, [ws.pipeline]);
  const d = new DaemonProc(config);
  after(() => d.kill());
  const run = (...args: string[]) => {
    const r = cmerge([...args, '--config', config]);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const row = (): Row => {
    const r = cmerge(['status', '--config', config, '--json']);
    return (JSON.parse(r.stdout) as { pipelines: Row[] }).pipelines[0]!;
  };

  test('a dequeued checkpoint is quarantined with its time and path, and requeue brings it back', async () => {
    await d.ready();
    run('pause', 'clip');
    dropFile(ws.models.tasks[0]!, ws.drop);
    dropFile(ws.models.tasks[1]!, ws.drop);
    await waitUntil(() => row().queued === 2, 10_000, 'both queued');
    assert.match(run('dequeue', 'clip', 'task_0'), /task_0\.safetensors taken out of the queue/);
    const [r] = row().rejected;
    assert.equal(r!.name, 'task_0.safetensors');
    assert.equal(r!.reason, 'dequeued by the operator');
    assert.equal(r!.quarantine, join(ws.drop, '.quarantine', 'task_0.safetensors'));
    assert.ok(existsSync(r!.quarantine!));
    assert.ok(Date.now() - Date.parse(r!.rejected_at) < 60_000);

    run('resume', 'clip');
    await waitForVersion(ws.repo, 'clip', 1, 30_000, d);
    run('requeue', 'clip', 'task_0.safetensors');
    assert.ok(existsSync(join(ws.drop, 'task_0.safetensors')));
    assert.ok(!existsSync(`${r!.quarantine!}.reason.txt`));
    await waitForVersion(ws.repo, 'clip', 2, 30_000, d);
    assert.deepEqual(row().rejected, []);
    assert.deepEqual(
      manifest(ws.repo, 'clip', 2).checkpoints.map((c) => c.name),
      ['task_1.safetensors', 'task_0.safetensors'],
    );
    assertSameAsOneShot({
      base: ws.models.base,
      checkpoints: [ws.models.tasks[1]!, ws.models.tasks[0]!],
      published: join(ws.repo, 'clip', '2', 'model.safetensors'),
      work: join(ws.work, 'fresh'),
    });
  });

  test('a rejected name with new content is a new attempt; the same file put back is quarantined again', async () => {
    dropBytes(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), ws.drop, 'x.safetensors');
    await d.waitFor(/^rejected x\.safetensors/, 20_000);
    const quarantined = join(ws.drop, '.quarantine', 'x.safetensors');
    // by hand, the same bytes back under the same name: quarantined again, with the remedy logged
    renameSync(quarantined, join(ws.drop, 'x.safetensors'));
    await d.waitFor(/^x\.safetensors was rejected before .*cmerge requeue clip x\.safetensors/, 20_000);
    await waitUntil(() => existsSync(quarantined), 10_000, 'quarantined again');
    // a good checkpoint under that name: taken
    dropFile(ws.models.tasks[2]!, ws.drop, 'x.safetensors');
    await waitForVersion(ws.repo, 'clip', 3, 30_000, d);
    assert.equal(manifest(ws.repo, 'clip', 3).checkpoints.at(-1)!.name, 'x.safetensors');
  });

  test('refusals name what is wrong and change nothing', () => {
    for (const [args, message] of [
      [['dequeue', 'clip', 'nothing'], /no queued checkpoint "nothing"/],
      [['requeue', 'clip', 'nothing'], /no rejected checkpoint "nothing"/],
    ] as const) {
      const r = cmerge([...args, '--config', config]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, message);
    }
  });
});
