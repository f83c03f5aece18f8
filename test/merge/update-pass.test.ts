import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { join } from 'node:path';
import { loadLinalg } from '../../src/engine/native.js';
import { NativeEngine, OPCM_SOLO_MIN_ELEMENTS, SOLO_MIN_ELEMENTS } from '../../src/engine/native-engine.js';
import { PortableEngine } from '../../src/engine/portable.js';
import type { EngineWork } from '../../src/engine/types.js';
import { createModelWriter, openModel } from '../../src/io/model.js';
import { BufferPool } from '../../src/merge/buffers.js';
import { storedCheckpoint } from '../../src/merge/checkpoint.js';
import { addTauChunk, runUpdatePass, type UpdatePassInput } from '../../src/merge/update-pass.js';
import { elementwiseStep } from '../../src/methods/elementwise.js';
import type { MethodStep, TensorJob } from '../../src/methods/types.js';
import { randomF32 } from '../engine/reference.js';
import { writeTinyModel } from '../methods/tiny-model.js';
import { tempDir } from '../helpers/paths.js';

test('‖τ‖² is the float64 sum over the float32 τ, the same whole or in chunks', () => {
  const base = randomF32(1000, 1);
  const ckpt = randomF32(1000, 2).map((x, i) => base[i] + 1e-3 * x);
  let want = 0;
  for (let i = 0; i < base.length; i++) want += Math.fround(ckpt[i] - base[i]) ** 2;
  const whole = { tauSq: 0, baseSq: 0 };
  addTauChunk(ckpt, base, null, whole);
  assert.equal(whole.tauSq, want);
  const chunked = { tauSq: 0, baseSq: 0 };
  const tau = Float32Array.from(ckpt);
  for (let off = 0; off < base.length; off += 300) {
    const view = tau.subarray(off, off + 300);
    addTauChunk(view, base.subarray(off, off + 300), view, chunked);
  }
  assert.equal(chunked.tauSq, want);
  assert.ok(Math.abs(chunked.baseSq - whole.baseSq) <= 1e-12 * whole.baseSq);
  tau.forEach((x, i) => assert.equal(x, Math.fround(ckpt[i] - base[i])));
});

const engine = new PortableEngine();
after(() => engine.close());
const model = writeTinyModel(tempDir('cmerge-update-pass-'), 1);

/** The update pass of `step` over the tiny model's first checkpoint at t = 1; resolves to the recorded tensors. */
async function pass(step: MethodStep): Promise<string[]> {
  const base = openModel(model.base);
  const ckpt = openModel(model.checkpoints[0]);
  try {
    const jobs: TensorJob[] = [...base.tensors.values()]
      .filter((t) => t.dtype !== 'I64')
      .map((t) => ({ name: t.name, kind: 'other', shape: t.shape, size: t.size }));
    const recorded: string[] = [];
    const input: UpdatePassInput = {
      step,
      method: 'test',
      engine,
      base,
      prev: null,
      ckpt: storedCheckpoint(ckpt),
      jobs,
      pool: new BufferPool(Math.max(...jobs.map((j) => j.size))),
      sketch: null,
      record: (job, update, tauSq) => {
        assert.equal(update.state.length, job.size);
        assert.ok(tauSq > 0);
        recorded.push(job.name);
      },
    };
    const baseSq = await runUpdatePass(input);
    assert.ok(baseSq > 0);
    return recorded;
  } finally {
    base.close();
    ckpt.close();
  }
}

test('the element-wise adapter takes a method through the one update path, tensors recorded in order', async () => {
  const recorded = await pass(elementwiseStep((_base, _prev, ckpt) => ckpt));
  assert.equal(recorded.length, 5);
});

test('a method must read the checkpoint exactly once', async () => {
  const finish = () => ({ scalars: {}, summary: {} });
  await assert.rejects(
    pass({ analysisPasses: 0, updateTask: async (job) => ({ state: new Float32Array(job.size) }), finish }),
    /test: updateTask did not read the checkpoint for /,
  );
  await assert.rejects(
    pass({
      analysisPasses: 0,
      updateTask: async (_job, src) => {
        src.tau();
        return { state: src.tensors().ckpt };
      },
      finish,
    }),
    /test: checkpoint tensor .* read twice/,
  );
});

// Linear tensors between the two limits of the native engine: the runner keeps two in flight when
// the method declares OPCM's cleaning (so they go side by side), one otherwise.
const linalg = loadLinalg();
test(
  "the runner keeps two mid-sized linear tensors in flight for OPCM's cleaning, one for other work",
  { skip: linalg.addon ? false : `native addon absent: ${linalg.error?.message}` },
  async () => {
    const shape = [2048, 1600];
    const size = shape[0] * shape[1];
    assert.ok(size > SOLO_MIN_ELEMENTS && size <= OPCM_SOLO_MIN_ELEMENTS);
    const specs = ['a', 'b', 'c'].map((l) => ({ name: `${l}.weight`, dtype: 'F32' as const, shape }));
    const dir = tempDir('cmerge-update-pass-pairs-');
    for (const [file, value] of [
      ['base', 0],
      ['ckpt', 1],
    ] as const) {
      const writer = createModelWriter(join(dir, `${file}.safetensors`), specs);
      for (const name of writer.order) writer.write(name, new Float32Array(size).fill(value));
      writer.commit();
    }
    const native = new NativeEngine(linalg.addon!, { jobs: 2 });
    const base = openModel(join(dir, 'base.safetensors'));
    const ckpt = openModel(join(dir, 'ckpt.safetensors'));
    try {
      const most = async (engineWork: EngineWork | undefined): Promise<number> => {
        let running = 0;
        let peak = 0;
        const step: MethodStep = {
          analysisPasses: 0,
          engineWork,
          updateTask: async (_job, src) => {
            const { tau } = src.tau();
            peak = Math.max(peak, ++running);
            await new Promise((resolve) => setTimeout(resolve, 50));
            running--;
            return { state: tau };
          },
          finish: () => ({ scalars: {}, summary: {} }),
        };
        const jobs: TensorJob[] = specs.map((t) => ({ name: t.name, kind: 'linear', shape: t.shape, size }));
        const recorded: string[] = [];
        await runUpdatePass({
          step,
          method: 'test',
          engine: native,
          base,
          prev: null,
          ckpt: storedCheckpoint(ckpt),
          jobs,
          pool: new BufferPool(size),
          sketch: null,
          record: (job, update, tauSq) => {
            assert.equal(tauSq, size);
            assert.ok(update.state.every((x) => x === 1));
            recorded.push(job.name);
          },
        });
        assert.deepEqual(recorded, ['a.weight', 'b.weight', 'c.weight']);
        return peak;
      };
      assert.equal(await most('opcm-clean'), 2);
      assert.equal(await most(undefined), 1);
      assert.equal(await most('other'), 1);
    } finally {
      base.close();
      ckpt.close();
      native.close();
    }
  },
);
