/**
 * A revert killed with SIGKILL at several points leaves either the old result or the new one after
 * a restart, never a mix; and one writer of the state at a time (the state lock).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { acquireStateLock, StateLocked } from '../../src/daemon/state-lock.js';
import { call } from './api-support.js';
import {
  assertSameAsOneShot,
  assertVerifyClean,
  currentVersion,
  DaemonProc,
  dropFile,
  manifest,
  sleep,
  status,
  waitForVersion,
  workspace,
  writeConfig,
} from './support.js';

const numbered = (repo: string) =>
  readdirSync(join(repo, 'clip'))
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .sort((a, b) => a - b);

describe('kill -9 during a revert', () => {
  const ws = workspace('cmerge-ops-kill-', 3);
  const config = writeConfig(join(ws.work, 'cmerge.yaml'), ws.state, [{ ...ws.pipeline, retention: { keep: 50 } }], {
    api: { port: 0 },
  });
  let d = new DaemonProc(config);
  after(() => d.kill());

  test('the old result or the new one, whole, after each kill', async () => {
    await d.ready();
    for (let i = 0; i < 3; i++) {
      dropFile(ws.models.tasks[i]!, ws.drop);
      await waitForVersion(ws.repo, 'clip', i + 1, 30_000, d);
    }
    const token = readFileSync(join(ws.state, 'api-token'), 'utf8').trim();
    const outcomes: string[] = [];
    for (const delayMs of [0, 5, 20, 50, 100, 200, 400]) {
      const line = await d.waitFor(/^api on http:\/\/127\.0\.0\.1:\d+ /);
      const base = `http://127.0.0.1:${/:(\d+) /.exec(line.message)![1]}`;
      const from = d.lines.length;
      const request = call(base, 'POST', '/v1/pipelines/clip/revert', { token, body: { checkpoint: 'task_1' } }).catch(
        () => null,
      );
      await d.waitFor(/^revert started/, 10_000, from);
      await sleep(delayMs);
      await d.kill();
      await request;
      d = new DaemonProc(config);
      await d.ready();
      const current = currentVersion(ws.repo, 'clip');
      const row = status(config).pipelines[0]! as { current_version: number | null };
      assert.equal(row.current_version, current, 'SQLite and `current` agree');
      if (current === 3) {
        outcomes.push(`${delayMs} ms: old`);
        assert.deepEqual(numbered(ws.repo), [1, 2, 3], 'no trace of the unfinished version');
      } else {
        outcomes.push(`${delayMs} ms: new`);
        assert.equal(current, 4);
        assert.deepEqual(
          manifest(ws.repo, 'clip', 4).checkpoints.map((c) => c.name),
          ['task_0.safetensors', 'task_2.safetensors'],
        );
        assertSameAsOneShot({
          base: ws.models.base,
          checkpoints: [ws.models.tasks[0]!, ws.models.tasks[2]!],
          published: join(ws.repo, 'clip', '4', 'model.safetensors'),
          work: join(ws.work, `fresh-${delayMs}`),
        });
        break;
      }
      assertVerifyClean(config);
      const leftovers = readdirSync(join(ws.state, 'pipelines', 'clip', 'state')).filter((e) => e.startsWith('.'));
      assert.deepEqual(leftovers, []);
    }
    process.stderr.write(`revert kills: ${outcomes.join(', ')}\n`);
    assert.ok(existsSync(join(ws.repo, 'clip', String(currentVersion(ws.repo, 'clip')), 'manifest.json')));
  });
});

describe('the state lock', () => {
  test('a second daemon on the same state is refused; the lock ends with its holder', async () => {
    const ws = workspace('cmerge-lock-', 1);
    const config = writeConfig(join(ws.work, 'cmerge.yaml'), ws.state, [ws.pipeline]);
    const first = new DaemonProc(config);
    try {
      await first.ready();
      assert.throws(() => acquireStateLock(ws.state), StateLocked);
      const second = new DaemonProc(config);
      const exit = await second.exited;
      assert.notEqual(exit.code, 0);
      assert.match(second.stderr + second.tail(), /in use by another cmerge process/);
      await first.kill();
      // kill -9 leaves no stale lock
      acquireStateLock(ws.state).release();
    } finally {
      await first.kill();
    }
  });
});
