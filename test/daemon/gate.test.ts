/**
 * The quality gate on a real daemon: a real evaluator process scores each candidate; one that
 * fails is never visible as a numbered folder, its checkpoint is quarantined with the reason
 * (status and the API show it), and the next checkpoint merges onto the last good state.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { call, EventReader } from './api-support.js';
import {
  assertSameAsOneShot,
  assertVerifyClean,
  currentVersion,
  DaemonProc,
  dropFile,
  sleep,
  status,
  waitForVersion,
  workspace,
  writeConfig,
} from './support.js';

/** An evaluator that prints the scores written in `scoresFile` (the test sets them per candidate). */
function evaluator(work: string): { argv: string[]; setScore: (score: number | Record<string, number>) => void } {
  const scoresFile = join(work, 'scores.json');
  const script = join(work, 'evaluate.mjs');
  writeFileSync(
    script,
    `import { readFileSync } from 'node:fs';\nprocess.stdout.write(readFileSync(${JSON.stringify(scoresFile)}, 'utf8'));\n`,
  );
  return {
    argv: [process.execPath, script],
    setScore: (score) =>
      writeFileSync(
        scoresFile,
        JSON.stringify(typeof score === 'number' ? { task_0: score, task_1: score, task_2: score } : score),
      ),
  };
}

/** Numbered folders seen in the repository, polled every few ms until `until` resolves. */
async function watchVersions(repo: string, until: Promise<unknown>): Promise<Set<string>> {
  const seen = new Set<string>();
  let done = false;
  void until.finally(() => (done = true));
  while (!done) {
    if (existsSync(join(repo, 'clip')))
      for (const e of readdirSync(join(repo, 'clip'))) if (/^\d+$/.test(e)) seen.add(e);
    await sleep(2);
  }
  return seen;
}

describe('quality gate', () => {
  const ws = workspace('cmerge-gate-', 3);
  const ev = evaluator(ws.work);
  const config = writeConfig(
    join(ws.work, 'cmerge.yaml'),
    ws.state,
    [
      {
        ...ws.pipeline,
        evaluator: { argv: ev.argv },
        gate: { min_average_accuracy: 0.8, min_task_accuracy: 0.6, max_forgetting: 0.2 },
      },
    ],
    { api: { port: 0 } },
  );
  const d = new DaemonProc(config);
  after(() => d.kill());

  test('a failing candidate is not published; the next merges onto the last good state', async () => {
    await d.ready();
    const line = await d.waitFor(/^api on http:\/\/127\.0\.0\.1:\d+ /);
    const base = `http://127.0.0.1:${/:(\d+) /.exec(line.message)![1]}`;
    ev.setScore(0.9);
    dropFile(ws.models.tasks[0]!, ws.drop);
    await waitForVersion(ws.repo, 'clip', 1, 30_000, d);

    const events = await EventReader.open(`${base}/v1/events?pipeline=clip`);
    ev.setScore(0.71);
    const rejected = d.waitFor(/^rejected task_1\.safetensors during merge 2/, 30_000);
    const seen = watchVersions(ws.repo, rejected);
    dropFile(ws.models.tasks[1]!, ws.drop);
    await rejected;
    assert.deepEqual([...(await seen)], ['1'], 'the failed candidate never appeared as a numbered folder');
    assert.equal(currentVersion(ws.repo, 'clip'), 1);
    assert.ok(existsSync(join(ws.drop, '.quarantine', 'task_1.safetensors')), 'checkpoint quarantined');
    assert.match(readFileSync(join(ws.drop, '.quarantine', 'task_1.safetensors.reason.txt'), 'utf8'), /quality gate/);

    const reason = 'quality gate: average accuracy 0.71 < 0.8';
    const announced = await events.next('gate_failed', 5_000);
    events.close();
    assert.deepEqual([announced.data.checkpoint, announced.data.reason], ['task_1.safetensors', reason]);
    const row = status(config).pipelines[0]!;
    assert.deepEqual(
      row.rejected.map((r) => [r.name, r.reason]),
      [['task_1.safetensors', reason]],
    );
    const api = await call(base, 'GET', '/v1/pipelines');
    assert.deepEqual((api.json as { pipelines: { rejected: unknown }[] }).pipelines[0]!.rejected, row.rejected);

    ev.setScore(0.85);
    dropFile(ws.models.tasks[2]!, ws.drop);
    await waitForVersion(ws.repo, 'clip', 2, 30_000, d);
    assertSameAsOneShot({
      base: ws.models.base,
      checkpoints: [ws.models.tasks[0]!, ws.models.tasks[2]!],
      published: join(ws.repo, 'clip', '2', 'model.safetensors'),
      work: join(ws.work, 'fresh'),
    });
    assertVerifyClean(config);
  });

  test('forgetting: a task falling more than max_forgetting below its best in the lineage is refused', async () => {
    // the lineage is task_0, task_2; task_0 scored 0.9 at version 1: 0.65 is a drop of 0.25 > 0.2
    // while the average of the lineage's tasks, (0.65 + 1) / 2, passes
    ev.setScore({ task_0: 0.65, task_1: 0, task_2: 1 });
    const rejected = d.waitFor(/^rejected again\.safetensors/, 30_000);
    dropFile(join(ws.drop, '.quarantine', 'task_1.safetensors'), ws.drop, 'again.safetensors');
    await rejected;
    const reason = status(config).pipelines[0]!.rejected.find((r) => r.name === 'again.safetensors')!.reason;
    assert.equal(reason, 'quality gate: forgetting of task_0 0.25 > 0.2');
    assert.equal(currentVersion(ws.repo, 'clip'), 2);
  });

  test('task accuracy: one lineage task below min_task_accuracy is refused while the average passes', async () => {
    // the lineage is task_0, task_2, third: (0.95 + 0.95 + 0.55) / 3 ≈ 0.817 ≥ 0.8, no task falls
    // below its best, but third scores 0.55 < 0.6 (task_1 is not in the lineage: its 0 is not counted)
    ev.setScore({ task_0: 0.95, task_1: 0, task_2: 0.95, third: 0.55 });
    const rejected = d.waitFor(/^rejected third\.safetensors/, 30_000);
    const seen = watchVersions(ws.repo, rejected);
    dropFile(join(ws.drop, '.quarantine', 'task_1.safetensors'), ws.drop, 'third.safetensors');
    await rejected;
    assert.deepEqual([...(await seen)].sort(), ['1', '2'], 'the refused candidate never appeared as a numbered folder');
    assert.ok(existsSync(join(ws.drop, '.quarantine', 'third.safetensors')), 'checkpoint quarantined');
    const reason = 'quality gate: accuracy of third 0.55 < 0.6';
    const written = readFileSync(join(ws.drop, '.quarantine', 'third.safetensors.reason.txt'), 'utf8');
    assert.ok(written.endsWith(` third.safetensors: ${reason}\n`), written);
    const row = status(config).pipelines[0]!;
    assert.equal(row.rejected.find((r) => r.name === 'third.safetensors')?.reason, reason);
    assert.equal(currentVersion(ws.repo, 'clip'), 2);
  });
});

describe('data-free gate (min_retention)', () => {
  test('a retention below the bound is refused without an evaluator', async () => {
    const ws = workspace('cmerge-gate-rho-', 2);
    const config = writeConfig(join(ws.work, 'cmerge.yaml'), ws.state, [
      { ...ws.pipeline, gate: { min_retention: 1e9 } },
    ]);
    const d = new DaemonProc(config);
    try {
      await d.ready();
      const rejected = d.waitFor(/^rejected task_0\.safetensors during merge 1/, 30_000);
      dropFile(ws.models.tasks[0]!, ws.drop);
      await rejected;
      const reason = status(config).pipelines[0]!.rejected[0]!.reason;
      assert.match(reason, /^quality gate: retention of task 1 -?[\d.e-]+ < 1000000000$/);
      assert.equal(currentVersion(ws.repo, 'clip'), null);
    } finally {
      await d.kill();
    }
  });
});
