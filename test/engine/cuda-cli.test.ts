import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { cmerge } from '../helpers/cli.js';
import { checkParity } from '../helpers/compare.js';
import { fakeCudaEnv } from '../helpers/fake-cuda.js';
import { fixturesDir, tempDir } from '../helpers/paths.js';

/**
 * The cuda engine through `cmerge merge`, on the CPU stand-in of the CUDA libraries: what an
 * operator meets when the device lacks memory (the operation runs on the CPU engine) or is lost
 * (sticky error: exit non-zero, nothing written). The real GPU runs bench/gpu/run.sh.
 */
const dir = join(fixturesDir, 'parity', 'clip-f32');
const env = fakeCudaEnv();
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

  test('two tensors in flight: the same bytes as one at a time, and the device holds both; max_memory for one serialises them', () => {
    const runs: Record<
      string,
      { out: Buffer; state: Buffer; gpu: { peak_device_bytes: number; cpu_fallbacks: number } }
    > = {};
    for (const [name, extra, jobs] of [
      ['one at a time', [], '1'],
      ['two in flight', [], '2'],
      // one operation's estimate is 64 MiB + its tensors: 100 MiB holds one, not two
      ['two, room for one', ['--max-device-memory', '100MiB'], '2'],
    ] as const) {
      const work = tempDir();
      assert.equal(opcm(work, 0).status, 0);
      const r = opcm(work, 1, [...extra], { CMERGE_ENGINE_JOBS: jobs });
      assert.equal(r.status, 0, r.stderr);
      const gen = readdirSync(join(work, 'state'))
        .filter((f) => f.startsWith('gen-'))
        .sort()
        .pop()!;
      runs[name] = {
        out: readFileSync(join(work, 'step_1.safetensors')),
        state: readFileSync(join(work, 'state', gen, 'state.safetensors')),
        gpu: JSON.parse(r.stdout).gpu,
      };
    }
    const one = runs['one at a time'];
    for (const name of ['two in flight', 'two, room for one']) {
      assert.ok(runs[name].out.equals(one.out), `${name}: output byte-identical`);
      assert.ok(runs[name].state.equals(one.state), `${name}: state byte-identical`);
      assert.equal(runs[name].gpu.cpu_fallbacks, 0, name);
    }
    // the next tensor's SVD ran while the previous one's factors were still on the device
    assert.ok(
      runs['two in flight'].gpu.peak_device_bytes > one.gpu.peak_device_bytes,
      `peak ${runs['two in flight'].gpu.peak_device_bytes} > ${one.gpu.peak_device_bytes}`,
    );
    assert.equal(runs['two, room for one'].gpu.peak_device_bytes, one.gpu.peak_device_bytes, 'serialised');
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
