import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadLinalg } from '../../src/engine/native.js';
import { cmerge } from '../helpers/cli.js';
import { checkParity } from '../helpers/compare.js';
import { fixturesDir, tempDir } from '../helpers/paths.js';

/**
 * Parity on every shared case, method and step: each step is its own `cmerge merge` process
 * continuing the same state directory, and its output is checked against the reference's
 * expected model with the fixtures' tolerance rule. Both engines.
 */
const parityRoot = join(fixturesDir, 'parity');
const cases = readdirSync(parityRoot).filter((d) => existsSync(join(parityRoot, d, 'manifest.json')));
const nativeAvailable = loadLinalg().addon !== null;

interface Manifest {
  dtype: string;
  base: string;
  tasks: string[];
  methods: Record<string, { params: Record<string, unknown>; steps: { file: string; file64: string; lambda?: number; split_rank?: Record<string, number> }[] }>;
}

for (const engine of ['native', 'portable'] as const) {
  describe(`parity (${engine} engine)`, { skip: engine === 'native' && !nativeAvailable ? 'native addon not built' : false }, () => {
    for (const c of cases) {
      const dir = join(parityRoot, c);
      const man = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
      for (const [method, spec] of Object.entries(man.methods)) {
        test(`${c} ${method}: every step in a separate process`, () => {
          const work = tempDir();
          const state = join(work, 'state');
          const params = Object.entries(spec.params).flatMap(([k, v]) => ['--param', `${k}=${v}`]);
          spec.steps.forEach((step, i) => {
            const out = join(work, `step_${i}.safetensors`);
            const r = cmerge(['merge', '--base', join(dir, man.base), '--state', state, '--method', method, ...params, '--engine', engine, '--out', out, '--json', join(dir, man.tasks[i])]);
            assert.equal(r.status, 0, `step ${i}: ${r.stderr}`);
            const report = JSON.parse(r.stdout);
            assert.equal(report.step, i + 1);
            assert.equal(report.engine, engine);
            const p = checkParity(out, join(dir, step.file), join(dir, step.file64));
            assert.ok(p.ok, `step ${i}: ${p.failures.slice(0, 5).join('; ')}`);
            if (method === 'opcm') {
              const s = report.steps[0];
              assert.ok(Math.abs(s.scalars.lambda - step.lambda!) <= 1e-5 * step.lambda!, `step ${i}: λ ${s.scalars.lambda} vs ${step.lambda}`);
              if (i > 0) assert.deepEqual(s.summary.split_rank, step.split_rank, `step ${i}: split ranks`);
            }
          });
        });
      }
    }
  });
}
