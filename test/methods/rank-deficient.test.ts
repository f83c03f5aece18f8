import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Engine } from '../../src/engine/types.js';
import { opcmSplit } from '../../src/engine/ops/opcm-clean.js';
import { runMerge, type MergeReport } from '../../src/merge/runner.js';
import { engineCases } from '../engine/engines.js';
import { withModels } from '../helpers/models.js';
import { loraFixture, tempDir } from '../helpers/paths.js';

/**
 * Merges of checkpoints whose task vectors are zero or low-rank for many tensors (frozen layers,
 * modules a LoRA adapter does not target): PEFT's merges of the seq-1..3 adapters, made by
 * test/fixtures/lora/make_lora_fixtures.py. docs/methods.md states the rules checked here.
 */
const base = join(loraFixture('tiny-llama'), 'model.safetensors');
const checkpoints = [1, 2, 3].map((i) => join(loraFixture(`seq-${i}`), 'expected.safetensors'));
const manifest = JSON.parse(readFileSync(loraFixture('rank-aware/manifest.json'), 'utf8')) as {
  linear: string[];
  steps: { lambda: number; split_rank: Record<string, number> }[];
};

/** Merges the three checkpoints one step at a time; returns each step's output path and report. */
async function mergeSteps(engine: Engine, method: string): Promise<{ outs: string[]; reports: MergeReport[] }> {
  const dir = tempDir('cmerge-rank-');
  const stateDir = join(dir, 'state');
  const outs: string[] = [];
  const reports: MergeReport[] = [];
  for (const [i, ckpt] of checkpoints.entries()) {
    const out = join(dir, `step_${i + 1}.safetensors`);
    reports.push(await runMerge({ base, stateDir, method, params: {}, checkpoints: [ckpt], out, engine }));
    outs.push(out);
  }
  return { outs, reports };
}

function relDistance(a: Float32Array, b: Float32Array | Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] * b[i];
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((x, i) => Object.is(x, b[i]) || x === b[i]);
}

describe('rank-aware split (docs/methods.md#opcm)', () => {
  test('values at most σ_max · max(m, n) · 2⁻²³ count as zero; k is taken over the rest', () => {
    const s = Float64Array.from([4, 3, 1e-7, 0]);
    const split = opcmSplit(s, 0.5, 4, 4);
    assert.equal(split.rank, 2);
    assert.equal(split.k, 0); // cumsum/sum over [4, 3]: 4/7 > 0.5 at i = 0
    assert.deepEqual(opcmSplit(new Float64Array(3), 0.5, 3, 3), { k: 0, rank: 0, prevSq: 0, leadSq: 0 });
    // full rank: the reference's split
    const full = opcmSplit(Float64Array.from([1, 1, 1, 1]), 0.5, 4, 4);
    assert.deepEqual([full.rank, full.k], [4, 2]);
  });
});

for (const ec of engineCases) {
  describe(`frozen layers and adapters' merges on the ${ec.name} engine`, { skip: ec.skip }, () => {
    test('OPCM follows the rank-aware rule: within 1e-5 of the float64 reference (rank_aware=True)', async () => {
      const engine = ec.make();
      try {
        const { outs, reports } = await mergeSteps(engine, 'opcm');
        for (const [t, out] of outs.entries()) {
          const expected = loraFixture(`rank-aware/expected64/opcm/step_${t + 1}.safetensors`);
          withModels([out, expected], ([got, exp]) => {
            for (const name of exp.tensors.keys()) {
              const d = relDistance(got.readF32(name), exp.readF32(name));
              assert.ok(d <= 1e-5, `step ${t + 1} ${name}: relative distance ${d.toExponential(2)} > 1e-5`);
            }
          });
          const lambda = reports[t].steps[0].scalars.lambda as number;
          assert.ok(
            Math.abs(lambda - manifest.steps[t].lambda) <= 1e-6 * manifest.steps[t].lambda,
            `λ at step ${t + 1}`,
          );
        }
      } finally {
        engine.close();
      }
    });

    test('DOP keeps M_{t−1} where the new task vector is zero and takes θ_t where the merged one is', async () => {
      const engine = ec.make();
      try {
        const { outs } = await mergeSteps(engine, 'dop');
        withModels([base, ...checkpoints, ...outs], ([b, , c2, , m1, m2, m3]) => {
          // q_proj: touched by checkpoints 1 and 2, not by 3 → M_3 = M_2 exactly
          const q = 'model.layers.0.self_attn.q_proj.weight';
          assert.ok(sameValues(m3.readF32(q), m2.readF32(q)), 'q_proj moved at step 3');
          // k_proj: untouched by checkpoint 1 (M_1 − θ0 = 0), touched by 2 → M_2 = θ_2 exactly
          const k = 'model.layers.1.self_attn.k_proj.weight';
          assert.ok(sameValues(m1.readF32(k), b.readF32(k)));
          assert.ok(sameValues(m2.readF32(k), c2.readF32(k)), 'k_proj at step 2 is not θ_2');
          for (const m of [m1, m2, m3])
            for (const n of m.tensors.keys()) assert.ok(m.readF32(n).every(Number.isFinite));
        });
      } finally {
        engine.close();
      }
    });

    test('TIES, MagMax, task arithmetic and weight averaging: finite, and tensors no checkpoint touched stay θ0', async () => {
      const engine = ec.make();
      try {
        for (const method of ['ties', 'magmax', 'task_arithmetic', 'weight_average']) {
          const { outs } = await mergeSteps(engine, method);
          withModels([base, ...checkpoints, outs[2]], ([b, c1, c2, c3, merged]) => {
            for (const name of b.tensors.keys()) {
              const values = merged.readF32(name);
              assert.ok(values.every(Number.isFinite), `${method} ${name} not finite`);
              const theta0 = b.readF32(name);
              const untouched = [c1, c2, c3].every((c) => sameValues(c.readF32(name), theta0));
              if (untouched) assert.ok(sameValues(values, theta0), `${method}: ${name} (τ = 0 throughout) moved`);
            }
          });
        }
      } finally {
        engine.close();
      }
    });
  });
}
