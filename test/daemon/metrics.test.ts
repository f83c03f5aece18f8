import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { mergeMetrics } from '../../src/daemon/metrics.js';
import { PortableEngine } from '../../src/engine/portable.js';
import { runMerge } from '../../src/merge/runner.js';
import { fixturesDir, tempDir } from '../helpers/paths.js';

/**
 * Every tensor_metrics row carries the kind the runner gave the tensor (issue 8, bug 1: it was
 * guessed from OPCM's split rank or DOP's losses, so null for every baseline and every step 1).
 * Real merges of the clip-f32 parity case, whose manifest lists the linear tensors.
 */
const dir = join(fixturesDir, 'parity', 'clip-f32');
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { linear: string[] };

for (const method of ['opcm', 'dop', 'task_arithmetic', 'ties', 'magmax', 'weight_average']) {
  test(`${method}: every tensor has kind linear or other, at steps 1 and 2`, async () => {
    const work = tempDir();
    const engine = new PortableEngine();
    try {
      for (const i of [0, 1]) {
        const report = await runMerge({
          base: join(dir, 'base.safetensors'),
          stateDir: join(work, 'state'),
          method,
          params: method === 'dop' ? { num_steps: 2 } : {},
          checkpoints: [join(dir, `task_${i}.safetensors`)],
          out: join(work, `out_${i}.safetensors`),
          engine,
        });
        const { tensors } = mergeMetrics(report, report.steps[0]);
        assert.ok(tensors.length > 0);
        for (const row of tensors)
          assert.equal(
            row.kind,
            manifest.linear.includes(row.tensor) ? 'linear' : 'other',
            `${row.tensor} at step ${i + 1}`,
          );
        assert.ok(tensors.some((r) => r.kind === 'other') && tensors.some((r) => r.kind === 'linear'));
      }
    } finally {
      engine.close();
    }
  });
}
