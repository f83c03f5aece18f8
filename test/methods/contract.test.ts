import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createEngine } from '../../src/engine/index.js';
import type { DType, ModelReader } from '../../src/io/types.js';
import { runMerge, type MergeReport } from '../../src/merge/runner.js';
import { METHOD_NAMES, methods, type MethodName } from '../../src/methods/registry.js';
import { withModels } from '../helpers/models.js';
import { tempDir } from '../helpers/paths.js';
import { TINY_LINEAR, TINY_SPECS, writeTinyModel } from './tiny-model.js';

/**
 * The method contract (docs/adding-a-method.md), for every method in the registry: a tiny model of
 * real safetensors files, the portable engine, three checkpoints through the real runner. A new
 * method gets these tests by its registry line; an identity it documents goes in the table below.
 */
const engine = createEngine('portable');
after(() => engine.close());
const model = writeTinyModel(tempDir('cmerge-contract-model-'));

interface Merged {
  report: MergeReport;
  out: string;
  stateDir: string;
}

/** One runMerge of `checkpoints` into a fresh state (or `stateDir`, continuing it). */
async function merge(
  method: string,
  checkpoints: string[],
  params: Record<string, unknown> = {},
  stateDir = join(tempDir('cmerge-contract-'), 'state'),
): Promise<Merged> {
  const out = join(tempDir('cmerge-contract-out-'), 'merged.safetensors');
  const report = await runMerge({ base: model.base, stateDir, method, params, checkpoints, out, engine });
  return { report, out, stateDir };
}

/** the spacing of the output dtype's values near 1, for tolerances of outputs rounded to it */
const EPS: Partial<Record<DType, number>> = { F32: 2 ** -23, BF16: 2 ** -7, F16: 2 ** -10 };

/** Each merged tensor of `out` within a few roundings of the dtype of `expected(values)`, or bit-equal when `exact`. */
function assertMerged(
  out: string,
  expected: (name: string, models: ModelReader[]) => Float64Array,
  inputs: string[],
  exact: boolean,
): void {
  withModels([out, ...inputs], ([merged, ...models]) => {
    for (const spec of TINY_SPECS.filter((s) => EPS[s.dtype] !== undefined)) {
      const got = merged.readF32(spec.name);
      const want = expected(spec.name, models);
      for (let i = 0; i < got.length; i++) {
        const scale = Math.max(Math.abs(want[i]), ...models.map((m) => Math.abs(m.readF32(spec.name)[i])));
        const tol = exact ? 0 : 4 * EPS[spec.dtype]! * scale;
        assert.ok(Math.abs(got[i] - want[i]) <= tol, `${spec.name}[${i}]: ${got[i]} vs ${want[i]} (tolerance ${tol})`);
      }
    }
  });
}

const values = (m: ModelReader, name: string) => Float64Array.from(m.readF32(name));

/**
 * Identities a method documents (docs/methods.md). `first`: the params under which merging one
 * checkpoint gives that checkpoint, and whether bit for bit (else within float32 rounding of τ).
 * `closedForm`: M_3 from θ0 and θ1..θ3 (models[0] is the base), with the method's default params.
 */
const identities: Partial<
  Record<
    MethodName,
    {
      first: { params: Record<string, unknown>; exact: boolean };
      closedForm?: (name: string, models: ModelReader[], params: Record<string, unknown>) => Float64Array;
    }
  >
> = {
  // M_1 = θ1; M_t = ((t−1) M_{t−1} + θ_t) / t, i.e. the mean
  weight_average: {
    first: { params: {}, exact: true },
    closedForm: (name, [, ...tuned]) => {
      const sum = new Float64Array(tuned[0].tensors.get(name)!.size);
      for (const m of tuned) values(m, name).forEach((x, i) => (sum[i] += x / tuned.length));
      return sum;
    },
  },
  // M_t = θ0 + s Σ τ_i; s = 1 and one checkpoint: θ1
  task_arithmetic: {
    first: { params: { scaling_factor: 1 }, exact: true },
    closedForm: (name, [base, ...tuned], params) => {
      const b = values(base, name);
      const out = Float64Array.from(b);
      for (const m of tuned)
        values(m, name).forEach((x, i) => (out[i] += (params.scaling_factor as number) * (x - b[i])));
      return out;
    },
  },
  // M_t = θ0 + s τmax, τmax the entry of largest magnitude (ties to the newer)
  magmax: {
    first: { params: { scaling_factor: 1 }, exact: false },
    closedForm: (name, [base, ...tuned], params) => {
      const b = values(base, name);
      const best = new Float64Array(b.length);
      for (const m of tuned)
        values(m, name).forEach((x, i) => {
          const tau = Math.fround(x - b[i]);
          if (Math.abs(tau) >= Math.abs(best[i])) best[i] = tau;
        });
      return b.map((x, i) => x + (params.scaling_factor as number) * best[i]);
    },
  },
  // M_1 = θ0 + s τ1
  ties: { first: { params: { scaling_factor: 1 }, exact: false } },
  // S = τ1, λ = 1: M_1 = θ0 + τ1
  opcm: { first: { params: {}, exact: false } },
  // M_1 = θ1
  dop: { first: { params: {}, exact: true } },
};

test('the registry: each key is its method’s name, and the names are the listed ones', () => {
  for (const [key, method] of Object.entries(methods)) assert.equal(method.name, key);
  assert.deepEqual(METHOD_NAMES, Object.keys(methods));
});

for (const name of METHOD_NAMES) {
  const method = methods[name];
  describe(`method contract: ${name}`, () => {
    const defaults = method.params.parse({}) as Record<string, unknown>;
    let first: Merged | null = null;
    const mergeThree = async () => (first ??= await merge(name, model.checkpoints));

    test('every parameter has a default: the schema parses {} and the runner uses exactly that', async () => {
      const { report } = await mergeThree();
      assert.deepEqual(report.params, defaults);
      assert.deepEqual(JSON.parse(JSON.stringify(defaults)), defaults, 'params must be JSON-serialisable');
    });

    test('three checkpoints: the output has the base’s names, shapes and dtypes, finite values', async () => {
      const { report, out } = await mergeThree();
      assert.equal(report.step, 3);
      assert.equal(report.steps.length, 3);
      withModels([out, model.base], ([merged, base]) => {
        assert.deepEqual([...merged.tensors.keys()], [...base.tensors.keys()]);
        for (const [tensor, info] of base.tensors) {
          const got = merged.tensors.get(tensor)!;
          assert.equal(got.dtype, info.dtype, tensor);
          assert.deepEqual(got.shape, info.shape, tensor);
          if (EPS[info.dtype] === undefined) assert.ok(merged.readRaw(tensor).equals(base.readRaw(tensor)), tensor);
          else for (const x of merged.readF32(tensor)) assert.ok(Number.isFinite(x), `${tensor}: ${x}`);
        }
      });
      for (const s of report.steps) {
        const merged = TINY_SPECS.filter((t) => EPS[t.dtype] !== undefined).map((t) => t.name);
        assert.deepEqual(Object.keys(s.kinds).sort(), [...merged].sort());
        for (const [tensor, kind] of Object.entries(s.kinds))
          assert.equal(kind, TINY_LINEAR.includes(tensor) ? 'linear' : 'other', tensor);
        assert.deepEqual(Object.keys(s.tensors).sort(), [...merged].sort());
        for (const m of Object.values(s.tensors)) for (const x of Object.values(m)) assert.ok(Number.isFinite(x));
        assert.ok(s.task_vector_norm > 0);
      }
    });

    test('deterministic: a second merge, and the same checkpoints one call at a time, give the same bytes', async () => {
      const { report } = await mergeThree();
      const again = await merge(name, model.checkpoints);
      assert.deepEqual(Object.values(again.report.out_sha256), Object.values(report.out_sha256));
      assert.deepEqual(
        again.report.steps.map((s) => s.state_sha256),
        report.steps.map((s) => s.state_sha256),
      );
      const stateDir = join(tempDir('cmerge-contract-'), 'state');
      let last: Merged | null = null;
      for (const ckpt of model.checkpoints) last = await merge(name, [ckpt], {}, stateDir);
      assert.deepEqual(Object.values(last!.report.out_sha256), Object.values(report.out_sha256));
      assert.deepEqual(last!.report.steps[0].scalars, report.steps[2].scalars);
    });

    test('an unknown parameter is rejected with its name, before anything is written', async () => {
      const stateDir = join(tempDir('cmerge-contract-'), 'state');
      await assert.rejects(
        merge(name, model.checkpoints, { ...defaults, no_such_param: 1 }, stateDir),
        (e: Error) => e.message.includes('no_such_param') && e.message.startsWith(`${name}: parameter`),
      );
      assert.equal(existsSync(stateDir), false);
    });

    const identity = identities[name];
    test(
      'one checkpoint merged gives that checkpoint (where the method documents it)',
      { skip: identity ? false : 'no identity documented for this method' },
      async () => {
        const { first: one } = identity!;
        const { out } = await merge(name, model.checkpoints.slice(0, 1), one.params);
        assertMerged(out, (tensor, [tuned]) => values(tuned, tensor), [model.checkpoints[0]], one.exact);
        if (one.exact) {
          withModels([out, model.checkpoints[0]], ([merged, tuned]) => {
            for (const tensor of tuned.tensors.keys()) assert.ok(merged.readRaw(tensor).equals(tuned.readRaw(tensor)));
          });
        }
      },
    );

    test(
      'three checkpoints merged give the documented closed form',
      { skip: identity?.closedForm ? false : 'no closed form documented for this method' },
      async () => {
        const { out } = await mergeThree();
        const inputs = [model.base, ...model.checkpoints];
        assertMerged(out, (tensor, models) => identity!.closedForm!(tensor, models, defaults), inputs, false);
      },
    );
  });
}
