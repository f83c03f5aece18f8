import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { cmerge } from '../helpers/cli.js';
import { checkParity } from '../helpers/compare.js';
import { fakeCudaLibrary } from '../helpers/fake-cuda.js';
import { fixturesDir, tempDir } from '../helpers/paths.js';

/**
 * The cuda engine through `cmerge merge`, on the CPU stand-in of the CUDA libraries: what an
 * operator meets when the device lacks memory (the operation runs on the CPU engine) or is lost
 * (sticky error: exit non-zero, nothing written). The real GPU runs bench/gpu/run.sh.
 */
const dir = join(fixturesDir, 'parity', 'clip-f32');
const env = { CMERGE_CUDA_LIBS: fakeCudaLibrary() };
const opcm = (work: string, i: number, extra: string[] = [], more: NodeJS.ProcessEnv = {}) =>
  cmerge(
    [
      'merge',
      '--base',
      join(dir, 'base.safetensors'),
      '--state',
      join(work, 'state'),
      '--method',
      'opcm',
      '--engine',
      'cuda',
      '--out',
      join(work, `step_${i}.safetensors`),
      '--json',
      ...extra,
      join(dir, `task_${i}.safetensors`),
    ],
    { ...env, ...more },
  );

describe('cuda engine through the CLI (CPU stand-in)', () => {
  test('the report names the engine, its device and libraries, and the device time and memory', () => {
    const work = tempDir();
    for (const i of [0, 1]) {
      const r = opcm(work, i);
      assert.equal(r.status, 0, r.stderr);
      const report = JSON.parse(r.stdout);
      assert.equal(report.engine, 'cuda');
      assert.match(report.engine_info.device, /^0: cmerge fake CUDA/);
      assert.equal(report.engine_info.versions.runtime, '13.0');
      assert.ok(report.gpu.gpu_seconds > 0 || i === 0, 'device time counted');
      if (i === 1) assert.ok(report.gpu.peak_device_bytes > 0, 'peak device memory');
      assert.equal(report.gpu.cpu_fallbacks, 0);
    }
    const p = checkParity(
      join(work, 'step_1.safetensors'),
      join(dir, 'expected', 'opcm', 'step_1.safetensors'),
      join(dir, 'expected64', 'opcm', 'step_1.safetensors'),
    );
    assert.ok(p.ok, p.failures.join('; '));
  });

  test('an operation that does not fit max_memory runs on the CPU engine, same result', () => {
    const work = tempDir();
    assert.equal(opcm(work, 0).status, 0);
    const r = opcm(work, 1, ['--max-device-memory', '1MiB']);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.engine, 'cuda');
    assert.ok(report.gpu.cpu_fallbacks > 0, 'fallbacks counted');
    assert.match(r.stderr, /runs on the CPU engine/);
    const p = checkParity(
      join(work, 'step_1.safetensors'),
      join(dir, 'expected', 'opcm', 'step_1.safetensors'),
      join(dir, 'expected64', 'opcm', 'step_1.safetensors'),
    );
    assert.ok(p.ok, p.failures.join('; '));
  });

  test('a lost device (sticky error) fails the merge with the reason; state and output untouched', () => {
    const work = tempDir();
    assert.equal(opcm(work, 0).status, 0);
    const before = readdirSync(join(work, 'state')).sort();
    const r = opcm(work, 1, [], { FAKE_CUDA_STICKY_AFTER: '3' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /CUDA device lost: .*cudaErrorIllegalAddress|CUDA device lost/);
    assert.equal(existsSync(join(work, 'step_1.safetensors')), false);
    assert.deepEqual(readdirSync(join(work, 'state')).sort(), before);
  });

  test('device out of memory fails the merge like any engine error', () => {
    const work = tempDir();
    assert.equal(opcm(work, 0).status, 0);
    const r = opcm(work, 1, [], { FAKE_CUDA_FAIL_MALLOC_AFTER: '5' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cudaMalloc/);
    assert.equal(existsSync(join(work, 'step_1.safetensors')), false);
  });

  test('no device: --engine cuda exits 1 with one line naming what is missing', () => {
    const work = tempDir();
    const r = opcm(work, 0, [], { FAKE_CUDA_DEVICES: '0' });
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /cuda engine unavailable: no usable CUDA device/);
    assert.equal(existsSync(join(work, 'state')), false);
  });
});
