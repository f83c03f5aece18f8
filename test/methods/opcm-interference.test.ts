import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PortableEngine } from '../../src/engine/portable.js';
import { openModel } from '../../src/io/model.js';
import type { MergeReport } from '../../src/merge/runner.js';
import { cmerge } from '../helpers/cli.js';
import { fixturesDir, tempDir } from '../helpers/paths.js';

/**
 * The interference OPCM reports (docs/methods.md: ‖U_kᵀ Δ V_k‖ / ‖Δ‖, Δ = M_t − M_{t−1}, U_k V_k the
 * leading k pairs of M_{t−1} − θ0) against that definition evaluated literally on the published
 * models: each step a separate `cmerge merge`, the SVD of M_{t−1} − θ0 from the portable engine,
 * the projection in float64.
 */
test('OPCM interference per tensor and per model equals ‖U_kᵀ Δ V_k‖ / ‖Δ‖ of the published models', async () => {
  const dir = tempDir();
  const engine = new PortableEngine();
  try {
    const c = join(fixturesDir, 'parity', 'clip-f32');
    const base = openModel(join(c, 'base.safetensors'));
    const outs: string[] = [];
    for (let t = 0; t < 3; t++) {
      outs.push(join(dir, `m${t + 1}.safetensors`));
      const r = cmerge([
        'merge',
        '--base',
        join(c, 'base.safetensors'),
        '--state',
        join(dir, 'state'),
        '--method',
        'opcm',
        '--out',
        outs[t],
        '--json',
        join(c, `task_${t}.safetensors`),
      ]);
      assert.equal(r.status, 0, r.stderr);
      const report = JSON.parse(r.stdout) as MergeReport;
      const step = report.steps[0];
      if (t === 0) {
        assert.equal(step.summary.interference, undefined, 'no previous merged model at t = 1');
        continue;
      }
      const before = openModel(outs[t - 1]);
      const after = openModel(outs[t]);
      let lead = 0;
      let delta = 0;
      for (const [name, k] of Object.entries(step.summary.split_rank as Record<string, number>)) {
        const [m, n] = base.tensors.get(name)!.shape;
        const r0 = Math.min(m, n);
        const b = base.readF32(name);
        const p = before.readF32(name);
        const d = after.readF32(name).map((x, i) => x - p[i]);
        const { u, v } = await engine.svd(
          p.map((x, i) => x - b[i]),
          m,
          n,
        );
        let l = 0;
        for (let i = 0; i < k; i++)
          for (let j = 0; j < k; j++) {
            let s = 0; // u_iᵀ Δ v_j
            for (let row = 0; row < m; row++) {
              let dv = 0;
              for (let col = 0; col < n; col++) dv += d[row * n + col] * v[col * r0 + j];
              s += u[row * r0 + i] * dv;
            }
            l += s * s;
          }
        let dd = 0;
        for (const x of d) dd += x * x;
        const got = step.tensors[name].interference as number;
        assert.ok(
          Math.abs(got - Math.sqrt(l / dd)) < 1e-3 * Math.sqrt(l / dd) + 1e-6,
          `${name} at t = ${t + 1}: reported ${got}, literal ${Math.sqrt(l / dd)}`,
        );
        lead += l;
        delta += dd;
      }
      const model = step.summary.interference as number;
      assert.ok(
        model > 0 && Math.abs(model - Math.sqrt(lead / delta)) < 1e-3 * model,
        `model: reported ${model}, literal ${Math.sqrt(lead / delta)}`,
      );
      before.close();
      after.close();
    }
    base.close();
  } finally {
    engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
