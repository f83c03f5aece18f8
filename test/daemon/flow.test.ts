import assert from 'node:assert/strict';
import { cmerge } from '../helpers/cli.js';
import { existsSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { writeDemoModels } from '../../src/demo/synth.js';
import { tempDir } from '../helpers/paths.js';
import {
  assertSameAsOneShot,
  assertVerifyClean,
  currentVersion,
  DaemonProc,
  dropFile,
  manifest,
  sha256,
  status,
  waitForVersion,
  writeConfig,
} from './support.js';

/**
 * Normal flow with a real daemon: 20 checkpoints, 5 renamed into the drop folder at once, then 15
 * one by one. Every one becomes a version, each manifest lists exactly what was merged so far in
 * merge order with the right sha256, verify is clean, and the last model is byte-identical to a
 * one-shot `cmerge merge` of the same checkpoints in the same order.
 */
test('20 checkpoints (5 at once, 15 one by one) become versions 1..20 equal to cmerge merge', async (t) => {
  const work = tempDir('cmerge-daemon-flow-');
  const models = writeDemoModels(join(work, 'models'), 20, { d: 24, layers: 1, seed: 7 });
  const drop = join(work, 'drop');
  const repo = join(work, 'repo');
  mkdirSync(drop);
  const config = writeConfig(join(work, 'cmerge.yaml'), join(work, 'state'), [
    { base: models.base, drop, repository: repo, retention: { keep: 50 } },
  ]);
  const shaOf = new Map(models.tasks.map((p) => [basename(p), sha256(p)]));

  const d = new DaemonProc(config);
  try {
    await d.ready();
    const t0 = Date.now();
    const burst = models.tasks.slice(0, 5);
    for (const p of burst) dropFile(p, drop);
    await waitForVersion(repo, 'clip', 5, 60_000, d);
    const latencies: number[] = [];
    for (let i = 5; i < 20; i++) {
      const t1 = Date.now();
      dropFile(models.tasks[i], drop);
      await waitForVersion(repo, 'clip', i + 1, 30_000, d);
      latencies.push(Date.now() - t1);
    }
    t.diagnostic(
      `20 versions in ${((Date.now() - t0) / 1000).toFixed(1)} s; drop-to-current latency one by one: median ${latencies.sort((a, b) => a - b)[7]} ms, max ${latencies.at(-1)} ms`,
    );

    assert.equal(currentVersion(repo, 'clip'), 20);
    const last = manifest(repo, 'clip', 20);
    const order = last.checkpoints.map((c) => c.name);
    assert.equal(order.length, 20);
    assert.deepEqual(new Set(order.slice(0, 5)), new Set(burst.map((p) => basename(p))), 'the burst is merged first');
    assert.deepEqual(
      order.slice(5),
      models.tasks.slice(5).map((p) => basename(p)),
      'one-by-one drops are merged in drop order',
    );
    for (let n = 1; n <= 20; n++) {
      assert.ok(existsSync(join(repo, 'clip', String(n), 'model.safetensors')), `version ${n} has its model`);
      const m = manifest(repo, 'clip', n);
      assert.equal(m.version, n);
      assert.equal(m.parent, n === 1 ? null : n - 1);
      assert.equal(m.pipeline, 'clip');
      assert.equal(m.method, 'opcm');
      assert.deepEqual(
        m.checkpoints.map((c) => c.name),
        order.slice(0, n),
        `version ${n} lists the checkpoints merged so far, in order`,
      );
      for (const c of m.checkpoints) assert.equal(c.sha256, shaOf.get(c.name), `${c.name} sha256 in version ${n}`);
      assert.equal(m.files['model.safetensors'], sha256(join(repo, 'clip', String(n), 'model.safetensors')));
    }

    const s = status(config).pipelines[0];
    assert.equal(s.current_version, 20);
    assert.equal(s.queued, 0);
    assert.equal(s.current_merge, null);
    assert.deepEqual(s.rejected, []);
    assertVerifyClean(config); // while the daemon runs

    // lineage and metrics: the data-free retention row of the last version covers every task,
    // and the task merged last is retained more than the first (OPCM's forgetting)
    const shown = cmerge(['show', '--config', config, 'clip', '20', '--json']);
    assert.equal(shown.status, 0, shown.stderr);
    const detail = JSON.parse(shown.stdout);
    const rho = new Map<number, number>(detail.retention.map((e: { task: number; rho: number }) => [e.task, e.rho]));
    assert.equal(rho.size, 20, 'ρ[20][i] for i = 1..20');
    assert.ok(rho.get(20)! > rho.get(1)!, `ρ[20][20] ${rho.get(20)} > ρ[20][1] ${rho.get(1)}`);
    assert.ok(typeof detail.model_metrics.lambda === 'number' && detail.model_metrics.lambda > 1);
    // interference (docs/architecture.md#metrics) is recorded per model and for every linear tensor
    const interference = detail.model_metrics.interference;
    assert.ok(typeof interference === 'number' && interference > 0 && interference < 1, `interference ${interference}`);
    const ts = detail.tensor_summary;
    assert.equal(ts.stats.interference?.n, ts.kinds.linear, 'one interference per linear tensor');
    assert.equal(ts.most_interference.length, 5);

    const exit = await d.stop('SIGTERM');
    assert.equal(exit.code, 0, d.tail());
    assertVerifyClean(config);
    assertSameAsOneShot({
      base: models.base,
      checkpoints: order.map((n) => join(work, 'models', n)),
      published: join(repo, 'clip', '20', 'model.safetensors'),
      work,
    });
  } finally {
    await d.kill();
  }
});
