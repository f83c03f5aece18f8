/**
 * Pin against retention on a real daemon (docs/operations.md): with `retention: {keep: 1}` a
 * pinned version's folder outlives the versions after it until it is unpinned, and a version that
 * retention already removed cannot be pinned.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { callDaemon, DaemonError } from '../../src/cli/daemon-client.js';
import { cmerge } from '../helpers/cli.js';
import { DaemonProc, dropFile, manifest, waitForVersion, workspace, writeConfig } from './support.js';

function run(args: string[], config: string): Record<string, unknown> {
  const r = cmerge([...args, '--config', config, '--json']);
  assert.equal(r.status, 0, `cmerge ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe('pin and retention', () => {
  const ws = workspace('cmerge-pin-retention-', 4);
  const config = writeConfig(join(ws.work, 'cmerge.yaml'), ws.state, [{ ...ws.pipeline, retention: { keep: 1 } }]);
  const d = new DaemonProc(config);
  after(() => d.kill());
  const folders = () =>
    readdirSync(join(ws.repo, 'clip'))
      .filter((e) => /^\d+$/.test(e))
      .sort();

  /** Drops task i, waits for version v and for the retention run after it (logged when it removed some). */
  async function merge(i: number, v: number, removed?: string): Promise<void> {
    const from = d.lines.length;
    dropFile(ws.models.tasks[i]!, ws.drop);
    await waitForVersion(ws.repo, 'clip', v, 30_000, d);
    if (removed) await d.waitFor(new RegExp(`^retention removed versions ${removed}$`), 10_000, from);
  }

  test('a pinned version outlives retention until it is unpinned', async () => {
    await d.ready();
    await merge(0, 1);
    const v1Files = readdirSync(join(ws.repo, 'clip', '1')).sort();
    assert.ok(v1Files.includes('model.safetensors') && v1Files.includes('manifest.json'), v1Files.join(', '));
    assert.equal(run(['pin', 'clip', '1'], config).version, 1);

    await merge(1, 2);
    await merge(2, 3, '2');
    assert.deepEqual(folders(), ['1', '3'], 'version 2 removed by retention, pinned 1 kept');
    assert.deepEqual(readdirSync(join(ws.repo, 'clip', '1')).sort(), v1Files, 'version 1 keeps its files');
    assert.equal(manifest(ws.repo, 'clip', 1).version, 1);
    assert.equal(run(['show', 'clip', '1'], config).pinned, true);
    assert.ok(run(['show', 'clip', '2'], config).removed_at, 'version 2 recorded as removed');

    run(['unpin', 'clip', '1'], config);
    assert.equal(run(['show', 'clip', '1'], config).pinned, false);
    await merge(3, 4, '1, 3');
    assert.deepEqual(folders(), ['4'], 'unpinned, version 1 goes with the next retention');
    assert.ok(run(['show', 'clip', '1'], config).removed_at, 'version 1 recorded as removed');
  });

  test('pin of a version removed by retention is refused, nothing changed', async () => {
    const before = [run(['status'], config), run(['show', 'clip', '2'], config), folders()];
    const r = cmerge(['pin', 'clip', '2', '--config', config]);
    assert.equal(r.status, 1, r.stdout);
    assert.equal(r.stderr.trim(), 'cmerge: version 2 was removed by retention');
    await assert.rejects(
      callDaemon(ws.state, 'POST', '/v1/pipelines/clip/versions/2/pin'),
      (e: unknown) => e instanceof DaemonError && e.status === 409 && /was removed by retention/.test(e.message),
    );
    assert.deepEqual([run(['status'], config), run(['show', 'clip', '2'], config), folders()], before);
    assert.equal(existsSync(join(ws.repo, 'clip', '2')), false);
  });
});
