import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { writeDemoModels } from '../../src/demo/synth.js';
import { cmerge } from '../helpers/cli.js';
import { fakeCudaEnv } from '../helpers/fake-cuda.js';
import { tempDir } from '../helpers/paths.js';

/**
 * `cmerge merge --engine ...` on this machine, which has no GPU: `cuda` exits 1 with one line
 * naming what is missing and writes nothing; `auto` falls back to a CPU engine and says which in
 * the --json report (engine_info, gpu null).
 */
const work = tempDir();
const state = join(work, 'state');
const out = join(work, 'merged.safetensors');
let models: { base: string; tasks: string[] };

function snapshot(): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else h.update(p).update(readFileSync(p));
    }
  };
  walk(state);
  return h.update(readFileSync(out)).digest('hex');
}

const merge = (extra: string[], ckpt: string, o = out, s = state, env: NodeJS.ProcessEnv = {}) =>
  cmerge(['merge', '--base', models.base, '--state', s, '--method', 'opcm', '--out', o, ...extra, ckpt], env);

/** One line on stderr that names cuda and gives a reason after it. */
function assertCudaLine(stderr: string): void {
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${stderr}`);
  const msg = lines[0]!.replace(/^cmerge: /, '');
  assert.match(msg, /cuda/i);
  assert.ok(msg.replace(/cuda/gi, '').trim().split(/\s+/).length >= 3, `a reason is given: ${msg}`);
}

describe('cmerge merge --engine', () => {
  before(() => {
    models = writeDemoModels(join(work, 'models'), 3, { d: 16, layers: 1, seed: 5 });
    const r = merge([], models.tasks[0]!);
    assert.equal(r.status, 0, r.stderr);
  });

  test('cuda without a GPU: exit 1, one line naming what is missing, state and output untouched', () => {
    const before = snapshot();
    for (const extra of [
      ['--engine', 'cuda'],
      ['--engine', 'cuda', '--device', '1', '--max-device-memory', '2GiB', '--tf32'],
    ]) {
      const r = merge(extra, models.tasks[1]!);
      assert.equal(r.status, 1, `${extra.join(' ')}: ${r.stderr}`);
      assertCudaLine(r.stderr);
      assert.equal(r.stdout, '');
      assert.equal(snapshot(), before, 'state and output untouched');
    }
  });

  test('cuda with CMERGE_CUDA_LIBS pointing at a missing file: the same, and nothing created', () => {
    const freshState = join(work, 'fresh-state');
    const freshOut = join(work, 'fresh.safetensors');
    const r = merge(['--engine', 'cuda', '--json'], models.tasks[1]!, freshOut, freshState, {
      CMERGE_CUDA_LIBS: join(work, 'no-such-libcuda.so'),
    });
    assert.equal(r.status, 1, r.stderr);
    assertCudaLine(r.stderr);
    assert.equal(r.stdout, '');
    assert.ok(!existsSync(freshState), 'no state directory');
    assert.ok(!existsSync(freshOut), 'no output');
  });

  test('bad engine flags are usage errors (exit 2)', () => {
    const cases: [string[], RegExp][] = [
      [['--engine', 'gpu'], /--engine must be auto, native, portable, cuda/],
      [['--engine', 'cuda', '--device', 'x'], /--device expects/],
      [['--engine', 'cuda', '--device', '-1'], /--device expects/],
      [['--engine', 'cuda', '--max-device-memory', '8XB'], /--max-device-memory expects/],
      [['--engine', 'native', '--tf32'], /--tf32: only with --engine cuda or auto/],
      [['--engine', 'portable', '--device', '0'], /--device: only with --engine cuda or auto/],
    ];
    const before = snapshot();
    for (const [extra, re] of cases) {
      const r = merge(extra, models.tasks[1]!);
      assert.equal(r.status, 2, `${extra.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
    assert.equal(snapshot(), before);
  });

  test('auto falls back to a CPU engine: --json reports engine_info and gpu null', () => {
    const r = merge(['--engine', 'auto', '--json'], models.tasks[1]!);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.step, 2);
    assert.ok(['native', 'portable'].includes(report.engine), report.engine);
    assert.equal(report.engine_info.name, report.engine);
    assert.equal(report.engine_info.device, undefined, 'no device for a CPU engine');
    if (report.engine === 'native') assert.match(report.engine_info.blas_core, /^\w+$/, 'the OpenBLAS kernel set');
    assert.equal(report.gpu, null);
  });

  test('portable, forced: engine_info says so', () => {
    const r = merge(['--engine', 'portable', '--json'], models.tasks[2]!);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.deepEqual([report.engine, report.engine_info.name, report.gpu], ['portable', 'portable', null]);
  });

  test('cuda on the CPU stand-in for the CUDA libraries: --json reports the device and the GPU figures; --device picks the device', () => {
    const env = fakeCudaEnv();
    const o = join(work, 'cuda.safetensors');
    const missing = merge(['--engine', 'cuda', '--device', '1'], models.tasks[1]!, o, join(work, 'cuda-state'), env);
    assert.equal(missing.status, 1, 'the stand-in has one device');
    assertCudaLine(missing.stderr);
    assert.ok(!existsSync(o));
    const r = merge(
      ['--engine', 'cuda', '--max-device-memory', '1GiB', '--json'],
      models.tasks[0]!,
      o,
      join(work, 'cuda-state'),
      env,
    );
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.engine, 'cuda');
    assert.equal(report.engine_info.name, 'cuda');
    assert.match(report.engine_info.device, /^0: /);
    assert.equal(report.engine_info.tf32, false);
    assert.deepEqual(Object.keys(report.gpu).sort(), ['cpu_fallbacks', 'gpu_seconds', 'peak_device_bytes']);
    // tasks[2]: the state holds tasks[1] now, and the same checkpoint twice is refused
    const tf32 = merge(['--engine', 'cuda', '--tf32', '--json'], models.tasks[2]!, o, join(work, 'cuda-state'), env);
    assert.equal(tf32.status, 0, tf32.stderr);
    assert.equal(JSON.parse(tf32.stdout).engine_info.tf32, true);
  });
});
