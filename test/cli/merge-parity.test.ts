import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadLinalg } from '../../src/engine/native.js';
import type { CliResult } from '../helpers/cli.js';
import { checkParity } from '../helpers/compare.js';
import { useTestCuda } from '../helpers/fake-cuda.js';
import { cliPath, fixturesDir, tempDir } from '../helpers/paths.js';

/**
 * Parity on every shared case, method and step: each step is its own `cmerge merge` process
 * continuing the same state directory, and its output is checked against the reference's
 * expected model with the fixtures' tolerance rule.
 *
 * CMERGE_PARITY_ENGINES: the engines to check, a comma list (default `native,portable,cuda`; the
 * native engine is then skipped when its addon is absent, and cuda runs on the CPU stand-in of
 * the CUDA libraries, test/native/fake-cuda, unless CMERGE_TEST_REAL_CUDA=1). An engine named there explicitly must
 * run: if it is unavailable its tests fail (bench/gpu/run.sh: `CMERGE_PARITY_ENGINES=cuda`).
 * CMERGE_PARITY_CONCURRENCY: case×method tests run at once per engine (default 1).
 */
const parityRoot = join(fixturesDir, 'parity');
const cases = readdirSync(parityRoot).filter((d) => existsSync(join(parityRoot, d, 'manifest.json')));
const KNOWN = ['native', 'portable', 'cuda'] as const;
type ParityEngine = (typeof KNOWN)[number];
const explicit = (process.env.CMERGE_PARITY_ENGINES ?? '').trim() !== '';
const engines = (explicit ? process.env.CMERGE_PARITY_ENGINES! : 'native,portable,cuda')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '');
// the child processes inherit it: `--engine cuda` then runs the addon's host code on the CPU
if (engines.includes('cuda')) useTestCuda();
const concurrency = Math.max(1, Math.floor(Number(process.env.CMERGE_PARITY_CONCURRENCY ?? 1)) || 1);

interface Manifest {
  dtype: string;
  base: string;
  tasks: string[];
  methods: Record<
    string,
    {
      params: Record<string, unknown>;
      steps: { file: string; file64: string; lambda?: number; split_rank?: Record<string, number> }[];
    }
  >;
}

/** `cmerge` as its own process without blocking the event loop, so that tests can run at once. */
function cmergeAsync(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '',
      stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Why the default run skips an engine; an engine named in CMERGE_PARITY_ENGINES is never skipped. */
function skipReason(engine: ParityEngine): string | false {
  if (explicit || engine !== 'native') return false;
  const load = loadLinalg();
  return load.addon === null ? 'native addon not built' : false;
}

for (const name of engines) {
  if (!(KNOWN as readonly string[]).includes(name)) {
    test(`parity (${name} engine)`, () =>
      assert.fail(`CMERGE_PARITY_ENGINES names an unknown engine "${name}" (known: ${KNOWN.join(', ')})`));
    continue;
  }
  const engine = name as ParityEngine;
  describe(`parity (${engine} engine)`, { skip: skipReason(engine), concurrency }, () => {
    for (const c of cases) {
      const dir = join(parityRoot, c);
      const man = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
      for (const [method, spec] of Object.entries(man.methods)) {
        test(`${c} ${method}: every step in a separate process`, async () => {
          const work = tempDir();
          const state = join(work, 'state');
          const params = Object.entries(spec.params).flatMap(([k, v]) => ['--param', `${k}=${v}`]);
          for (const [i, step] of spec.steps.entries()) {
            const out = join(work, `step_${i}.safetensors`);
            const r = await cmergeAsync([
              'merge',
              '--base',
              join(dir, man.base),
              '--state',
              state,
              '--method',
              method,
              ...params,
              '--engine',
              engine,
              '--out',
              out,
              '--json',
              join(dir, man.tasks[i]),
            ]);
            assert.equal(r.status, 0, `step ${i}: ${r.stderr}`);
            const report = JSON.parse(r.stdout);
            assert.equal(report.step, i + 1);
            assert.equal(report.engine, engine);
            const p = checkParity(out, join(dir, step.file), join(dir, step.file64));
            assert.ok(p.ok, `step ${i}: ${p.failures.slice(0, 5).join('; ')}`);
            if (method === 'opcm') {
              const s = report.steps[0];
              assert.ok(
                Math.abs(s.scalars.lambda - step.lambda!) <= 1e-5 * step.lambda!,
                `step ${i}: λ ${s.scalars.lambda} vs ${step.lambda}`,
              );
              if (i > 0) assert.deepEqual(s.summary.split_rank, step.split_rank, `step ${i}: split ranks`);
            }
          }
        });
      }
    }
  });
}
