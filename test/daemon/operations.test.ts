/**
 * Rollback, revert, pin and pause through the real CLI, with the daemon running (the command goes
 * through its socket) and stopped (the command takes the state lock itself): lineage, `current`,
 * the merge state and the weights checked against fresh uninterrupted merges.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cmerge } from '../helpers/cli.js';
import {
  assertSameAsOneShot,
  assertVerifyClean,
  currentVersion,
  DaemonProc,
  dropFile,
  manifest,
  sleep,
  waitForVersion,
  workspace,
  writeConfig,
} from './support.js';

type Ws = ReturnType<typeof workspace>;

function setup(prefix: string, tasks: number) {
  const ws = workspace(prefix, tasks);
  // keep_every 2: rollback and revert must replay from a kept state, not only reuse the current one
  const config = writeConfig(join(ws.work, 'cmerge.yaml'), ws.state, [
    { ...ws.pipeline, retention: { keep: 50 }, state: { keep_every: 2 } },
  ]);
  return { ...ws, config };
}

function run(args: string[], config: string): Record<string, unknown> {
  const r = cmerge([...args, '--config', config, '--json']);
  assert.equal(r.status, 0, `cmerge ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

interface StatusRow {
  current_version: number | null;
  latest_version: number | null;
  paused: { since: string; reason: string } | null;
  queued: number;
}
const statusOf = (config: string) => (run(['status'], config).pipelines as StatusRow[])[0]!;

const names = (ws: Ws, idx: number[]) => idx.map((i) => basename(ws.models.tasks[i]!));
const lineageOf = (ws: Ws, v: number) => manifest(ws.repo, 'clip', v).checkpoints.map((c) => c.name);

/** The published model of version v is byte-identical to a fresh `cmerge merge` of those tasks in order. */
function assertFresh(ws: Ws, v: number, idx: number[], tag: string): void {
  assertSameAsOneShot({
    base: ws.models.base,
    checkpoints: idx.map((i) => ws.models.tasks[i]!),
    published: join(ws.repo, 'clip', String(v), 'model.safetensors'),
    work: join(ws.work, `fresh-${tag}`),
  });
}

/** The state's CURRENT names the generation of version v. */
function stateCurrent(ws: Ws): number {
  return Number(/gen-(\d+)/.exec(readFileSync(join(ws.state, 'pipelines', 'clip', 'state', 'CURRENT'), 'utf8'))![1]);
}

async function mergeAll(ws: Ws, d: DaemonProc, idx: number[], from = 1): Promise<void> {
  for (const [k, i] of idx.entries()) {
    dropFile(ws.models.tasks[i]!, ws.drop);
    await waitForVersion(ws.repo, 'clip', from + k, 30_000, d);
  }
}

describe('operations with the daemon running', () => {
  const ws = setup('cmerge-ops-live-', 6);
  let d = new DaemonProc(ws.config);
  after(() => d.kill());

  test('revert, rollback, pin, pause and resume through the daemon', async () => {
    await d.ready();
    await mergeAll(ws, d, [0, 1, 2, 3]);

    const reverted = run(['revert', 'clip', basename(ws.models.tasks[1]!)], ws.config);
    assert.deepEqual([reverted.version, reverted.current_version], [5, 5]);
    assert.deepEqual(lineageOf(ws, 5), names(ws, [0, 2, 3]));
    assert.equal(manifest(ws.repo, 'clip', 5).parent, 4);
    assert.equal(currentVersion(ws.repo, 'clip'), 5);
    assertFresh(ws, 5, [0, 2, 3], 'revert');
    await d.waitFor(/^revert: version 5: 3 checkpoints without task_1/, 5_000);

    const rolled = run(['rollback', 'clip', '2'], ws.config);
    assert.equal(rolled.current_version, 2);
    assert.equal(currentVersion(ws.repo, 'clip'), 2);
    assert.equal(stateCurrent(ws), 2);
    assert.deepEqual(
      [statusOf(ws.config).current_version, statusOf(ws.config).latest_version],
      [2, 5],
      'versions are immutable: 3..5 stay',
    );
    const history = run(['history'], ws.config).history as { checkpoint: string; retired: string | null }[];
    const retired = history.filter((h) => h.retired).map((h) => [h.checkpoint, h.retired]);
    assert.ok(
      retired.some(([c, r]) => c === names(ws, [3])[0] && r === 'rolled_back'),
      JSON.stringify(history),
    );

    // the next merge continues from version 2's state and is published as max+1 with parent 2
    dropFile(ws.models.tasks[4]!, ws.drop);
    await waitForVersion(ws.repo, 'clip', 6, 30_000, d);
    assert.equal(manifest(ws.repo, 'clip', 6).parent, 2);
    assert.deepEqual(lineageOf(ws, 6), names(ws, [0, 1, 4]));
    assertFresh(ws, 6, [0, 1, 4], 'after-rollback');

    run(['pin', 'clip', '3'], ws.config);
    assert.equal(run(['show', 'clip', '3'], ws.config).pinned, true);
    run(['unpin', 'clip', '3'], ws.config);
    assert.equal(run(['show', 'clip', '3'], ws.config).pinned, false);

    run(['pause', 'clip', '--reason', 'holiday'], ws.config);
    assert.equal(statusOf(ws.config).paused?.reason, 'holiday');
    dropFile(ws.models.tasks[5]!, ws.drop);
    await sleep(2_500);
    assert.equal(statusOf(ws.config).queued, 1, 'intake keeps queueing while paused');
    assert.equal(currentVersion(ws.repo, 'clip'), 6, 'nothing merged while paused');
    run(['resume', 'clip'], ws.config);
    await waitForVersion(ws.repo, 'clip', 7, 30_000, d);
    assert.equal(statusOf(ws.config).paused, null);
    assertFresh(ws, 7, [0, 1, 4, 5], 'after-resume');
    assertVerifyClean(ws.config);

    // a restart keeps it all: current, the state's generation
    await d.stop();
    d = new DaemonProc(ws.config);
    await d.ready();
    assert.equal(currentVersion(ws.repo, 'clip'), 7);
    assert.equal(stateCurrent(ws), 7);
  });

  test('refusals: unknown version or checkpoint, nothing changed', () => {
    const before = statusOf(ws.config);
    for (const args of [
      ['rollback', 'clip', '99'],
      ['revert', 'clip', 'no-such-task'],
      ['pin', 'clip', '99'],
    ]) {
      const r = cmerge([...args, '--config', ws.config]);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, /^cmerge: no (version|checkpoint)/);
    }
    assert.deepEqual(statusOf(ws.config), before);
  });
});

describe('operations with the daemon stopped', () => {
  const ws = setup('cmerge-ops-offline-', 4);
  let d = new DaemonProc(ws.config);
  after(() => d.kill());

  test('revert and rollback under the state lock; the daemon continues from them', async () => {
    await d.ready();
    await mergeAll(ws, d, [0, 1, 2]);
    await d.stop();

    const reverted = run(['revert', 'clip', 'task_1'], ws.config);
    assert.equal(reverted.version, 4);
    assert.deepEqual(lineageOf(ws, 4), names(ws, [0, 2]));
    assertFresh(ws, 4, [0, 2], 'offline-revert');

    // a sha256 prefix names a checkpoint too; version 4 reverted task_1, so roll back to 2
    assert.equal(run(['rollback', 'clip', '2'], ws.config).current_version, 2);
    assert.equal(currentVersion(ws.repo, 'clip'), 2);
    assert.equal(stateCurrent(ws), 2);
    run(['pin', 'clip', '1'], ws.config);
    assert.equal(run(['show', 'clip', '1'], ws.config).pinned, true);
    run(['pause', 'clip'], ws.config);
    assert.equal(statusOf(ws.config).paused?.reason, 'paused by the operator');
    run(['resume', 'clip'], ws.config);
    assert.equal(statusOf(ws.config).paused, null);

    d = new DaemonProc(ws.config);
    await d.ready();
    dropFile(ws.models.tasks[3]!, ws.drop);
    await waitForVersion(ws.repo, 'clip', 5, 30_000, d);
    assert.equal(manifest(ws.repo, 'clip', 5).parent, 2);
    assertFresh(ws, 5, [0, 1, 3], 'offline-continue');
    const ops = readdirSync(join(ws.state, 'pipelines', 'clip', 'state')).filter((e) => e.startsWith('.'));
    assert.deepEqual(ops, [], 'no leftovers in the state directory');
  });

  test('revert refuses when a later checkpoint is no longer in place, naming it', async () => {
    const ws2 = setup('cmerge-ops-missing-', 3);
    const d2 = new DaemonProc(ws2.config);
    try {
      await d2.ready();
      await mergeAll(ws2, d2, [0, 1, 2]);
      await d2.stop();
      // the archived file (merged checkpoints leave the drop folder) is the one the lineage recorded
      rmSync(join(`${ws2.drop}.merged`, basename(ws2.models.tasks[2]!)));
      const r = cmerge(['revert', 'clip', basename(ws2.models.tasks[1]!), '--config', ws2.config]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, new RegExp(`not in place: ${basename(ws2.models.tasks[2]!)} \\(missing`));
      assert.equal(currentVersion(ws2.repo, 'clip'), 3);
      assert.deepEqual(
        readdirSync(join(ws2.repo, 'clip')).filter((e) => /^\d+$/.test(e)),
        ['1', '2', '3'],
      );
    } finally {
      await d2.kill();
    }
  });
});
