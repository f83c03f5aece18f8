import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PortableEngine } from '../../src/engine/portable.js';
import { CudaEngine, dopDeviceBytes, LIBRARY_SLACK, opcmDeviceBytes } from '../../src/engine/cuda-engine.js';
import type { DopOptions } from '../../src/engine/types.js';
import { cudaKind, cudaProbe } from './engines.js';
import { centred } from './reference.js';

/**
 * What only a real GPU can get wrong, checked on the stand-in in CI and on the GPU by
 * bench/gpu/run.sh (CMERGE_TEST_REAL_CUDA=1).
 *
 * Memory: the cuda engine admits an operation by its device-memory estimate (docs/cuda-engine.md#memory):
 * an estimate below what the operation allocates lets it start and fail half-way with an
 * out-of-memory error where it should have run on the CPU engine. So every operation's peak (the
 * device buffers the addon allocates, as the engine's stats count them) must stay under its
 * estimate less the slack kept for the libraries' own workspaces (LIBRARY_SLACK). Full-rank task vectors keep
 * every singular direction (the largest factors, DOP's dense sides); tall, wide and square.
 */
const shapes: [number, number][] = [
  [96, 96],
  [200, 64],
  [64, 200],
  [130, 70],
];

describe(`cuda engine on the device (${cudaKind})`, () => {
  const skip = cudaProbe.ok ? false : `cuda engine unavailable: ${cudaProbe.reason}`;
  const make = () => {
    if (!cudaProbe.ok) throw new Error(cudaProbe.reason);
    return new CudaEngine(cudaProbe.addon, cudaProbe, { jobs: 1 }, () => new PortableEngine());
  };
  const rnd = centred(23);
  const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const matrix = (m: number, n: number, scale = 1) => Float32Array.from({ length: m * n }, () => rnd() * scale);

  /** DOP's defaults but the steps (few: the tests look at memory and bits, not convergence) */
  const dopOptions = (steps: number, space: DopOptions['svd_proj_space']): DopOptions => ({
    lr: 1e-4,
    num_steps: steps,
    mgda: true,
    ema: true,
    ema_beta: 0.999,
    alpha: 0.8,
    svd_epsilon: 0.99999,
    svd_proj_space: space,
  });

  /** runs `op` alone on a fresh engine; its peak device bytes */
  async function peakOf(op: (e: CudaEngine) => Promise<unknown>): Promise<number> {
    const engine = make();
    try {
      engine.resetStats();
      await op(engine);
      return engine.stats()!.peakDeviceBytes;
    } finally {
      engine.close();
    }
  }

  test('peak device memory of the SVD and OPCM cleaning within their estimate', { skip }, async () => {
    for (const [m, n] of shapes) {
      const bound = opcmDeviceBytes(m, n) - LIBRARY_SLACK;
      const svd = await peakOf((e) => e.svd(matrix(m, n), m, n));
      assert.ok(svd > 0 && svd <= bound, `SVD ${m}×${n}: peak ${svd} B, estimate ${bound} B`);
      const clean = await peakOf((e) => e.opcmClean(matrix(m, n), () => matrix(m, n), m, n, 0.5));
      assert.ok(clean > 0 && clean <= bound, `cleaning ${m}×${n}: peak ${clean} B, estimate ${bound} B`);
    }
  });

  test('peak device memory of DOP, each projection space, within its estimate', { skip }, async () => {
    for (const [m, n] of shapes)
      for (const space of ['uv', 'u', 'v'] as const) {
        const base = matrix(m, n, 0.1);
        const wa = base.map((x) => x + 0.01 * rnd());
        const wb = base.map((x) => x + 0.01 * rnd());
        const bound = dopDeviceBytes(m, n) - LIBRARY_SLACK;
        const peak = await peakOf((e) => e.dopOptimize(base, wa, wb, m, n, dopOptions(3, space)));
        assert.ok(peak > 0 && peak <= bound, `DOP ${m}×${n} ${space}: peak ${peak} B, estimate ${bound} B`);
      }
  });
  // Crash recovery and replays check a redone merge against its recorded sha256, so the device
  // must give the same bits every run: no reduction whose order varies (atomicAdd) may feed DOP's
  // weights or OPCM's scalars.
  test('the same bits on every run: DOP (MGDA weights) and OPCM cleaning', { skip }, async () => {
    const [m, n] = [130, 70];
    const base = matrix(m, n, 0.1);
    const wa = base.map((x) => x + 0.01 * rnd());
    const wb = base.map((x) => x + 0.01 * rnd());
    const prev = matrix(m, n);
    const tau = matrix(m, n);
    const engine = make();
    try {
      const runs = [];
      for (let i = 0; i < 3; i++) {
        const dop = await engine.dopOptimize(base, wa, wb, m, n, dopOptions(20, 'uv'));
        const clean = await engine.opcmClean(prev, () => tau.slice(), m, n, 0.5);
        runs.push({ dop, clean });
      }
      for (const r of runs.slice(1)) {
        assert.deepEqual(bytes(r.dop.w), bytes(runs[0].dop.w), 'DOP output bits');
        assert.deepEqual(
          [r.dop.lossA, r.dop.lossB, ...r.dop.weights],
          [runs[0].dop.lossA, runs[0].dop.lossB, ...runs[0].dop.weights],
        );
        assert.deepEqual(r.clean, runs[0].clean, 'OPCM cleaning and its scalars');
      }
    } finally {
      engine.close();
    }
  });
});
