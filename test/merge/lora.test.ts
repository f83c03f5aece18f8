import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Engine } from '../../src/engine/types.js';
import { openAdapter } from '../../src/io/lora/adapter.js';
import { createModelWriter, openModel } from '../../src/io/model.js';
import type { ModelReader } from '../../src/io/types.js';
import { adapterTau } from '../../src/merge/adapter-tau.js';
import { addGivenTauChunk } from '../../src/merge/update-pass.js';
import { runMerge, type MergeReport } from '../../src/merge/runner.js';
import { engineCases } from '../engine/engines.js';
import { loraFixture, tempDir } from '../helpers/paths.js';

/**
 * PEFT LoRA adapter folders as checkpoints of the merge runner (docs/lora.md). Each adapter merged
 * alone at t = 1 (task arithmetic with scaling 1, weight average) must give θ0 + ΔW: (a) as
 * computed here, independently, in float64 from the decoded factors with PEFT's formulas, and (b)
 * as PEFT's merge_and_unload() saved it (expected.safetensors, test/fixtures/lora/make_lora_fixtures.py).
 * Tolerances, and what the portable, native and cuda (stand-in) engines measured
 * (CMERGE_TEST_VERBOSE=1 prints them):
 * - float32 bases: ≤ 1e-6 relative Frobenius distance per tensor, on θ_t and on τ = θ_t − θ0
 *   (measured: ≤ 8.8e-8 against either reference);
 * - the bf16 base: ≥ 99.5 % of elements within 1 bf16 ulp, none beyond 2 (measured: 100 %, at most
 *   0.5 ulp from the float64 merge, identical to PEFT's).
 * Tensors the adapter does not change are bit-identical to the base. OPCM and DOP over the seq
 * adapters and over PEFT's merged seq checkpoints: ≤ 1e-6 relative on M_t − θ0 (measured ≤ 8e-8).
 */

interface Case {
  adapter: string;
  base: string;
}

const CASES: Case[] = [
  { adapter: 'plain', base: 'tiny-llama' },
  { adapter: 'rslora', base: 'tiny-llama' },
  { adapter: 'patterns', base: 'tiny-llama' },
  { adapter: 'modules-to-save', base: 'tiny-llama' },
  { adapter: 'embedding', base: 'tiny-llama' },
  { adapter: 'bf16', base: 'tiny-llama-bf16' },
  { adapter: 'fan-in-fan-out', base: 'tiny-gpt2' },
  { adapter: 'seq-1', base: 'tiny-llama' },
  { adapter: 'seq-2', base: 'tiny-llama' },
  { adapter: 'seq-3', base: 'tiny-llama' },
];

const PREFIX = 'base_model.model.';

interface AdapterConfigJson {
  r: number;
  lora_alpha: number;
  use_rslora?: boolean;
  fan_in_fan_out?: boolean;
  rank_pattern?: Record<string, number> | null;
  alpha_pattern?: Record<string, number> | null;
}

/** PEFT's get_pattern_key: the first key k for which `(.*\.)?(k)$` matches the module name from its start. */
function patternValue(patterns: Record<string, number> | null | undefined, module: string): number | undefined {
  for (const [key, value] of Object.entries(patterns ?? {})) {
    if (new RegExp(`^(.*\\.)?(${key})$`).test(module)) return value;
  }
  return undefined;
}

/**
 * θ0 + ΔW per changed base tensor, in float64, from the adapter's tensors: lora_A/lora_B give
 * scaling · B A (transposed with fan_in_fan_out, and for lora_embedding_A/B), a tensor named like
 * a base tensor (or `<m>.base_layer.weight`) replaces it.
 */
function independentMerge(adapterDir: string, base: ModelReader): Map<string, Float64Array> {
  const cfg = JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8')) as AdapterConfigJson;
  const weights = openModel(join(adapterDir, 'adapter_model.safetensors'));
  const out = new Map<string, Float64Array>();
  const theta = (name: string) => {
    if (!out.has(name)) out.set(name, Float64Array.from(base.readF32(name)));
    return out.get(name)!;
  };
  try {
    // replacements first: a LoRA term on a saved layer adds to the saved values
    for (const key of weights.tensors.keys()) {
      const name = key.slice(PREFIX.length);
      if (/lora_(A|B|embedding_A|embedding_B)(\.weight)?$/.test(name)) continue;
      const target = name.replace(/\.base_layer\.weight$/, '.weight');
      theta(target).set(weights.readF32(key));
    }
    for (const key of weights.tensors.keys()) {
      const m = /^(.+)\.(lora_A\.weight|lora_embedding_A)$/.exec(key.slice(PREFIX.length));
      if (!m) continue;
      const module = m[1];
      const embedding = m[2] === 'lora_embedding_A';
      const a = weights.readF32(key);
      const b = weights.readF32(key.replace(/_A(\.weight)?$/, '_B$1'));
      const [r, aCols] = weights.tensors.get(key)!.shape;
      const bRows = weights.tensors.get(key.replace(/_A(\.weight)?$/, '_B$1'))!.shape[0];
      const rank = patternValue(cfg.rank_pattern, module) ?? cfg.r;
      const alpha = patternValue(cfg.alpha_pattern, module) ?? cfg.lora_alpha;
      assert.equal(r, rank);
      const scaling = cfg.use_rslora ? alpha / Math.sqrt(rank) : alpha / rank;
      const w = theta(`${module}.weight`);
      const transposed = embedding || cfg.fan_in_fan_out === true;
      // (B A)[i][j] = Σ_k B[i][k] A[k][j], i < bRows, j < aCols; stored as is or transposed
      for (let i = 0; i < bRows; i++) {
        for (let j = 0; j < aCols; j++) {
          let s = 0;
          for (let k = 0; k < r; k++) s += b[i * r + k] * a[k * aCols + j];
          w[transposed ? j * bRows + i : i * aCols + j] += scaling * s;
        }
      }
    }
  } finally {
    weights.close();
  }
  return out;
}

function relDistance(a: ArrayLike<number>, b: ArrayLike<number>, minus?: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const x = minus ? a[i] - minus[i] : a[i];
    const y = minus ? b[i] - minus[i] : b[i];
    num += (x - y) ** 2;
    den += y * y;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** bf16 spacing at |x| (x a bf16 value or a value near one): 2^(exponent − 7). */
function bf16Ulp(x: number): number {
  const ax = Math.max(Math.abs(x), 2 ** -126);
  return 2 ** (Math.floor(Math.log2(ax)) - 7);
}

/** The share of elements within 1 bf16 ulp of `want`, and the largest distance in ulps. */
function bf16Agreement(got: Float32Array, want: ArrayLike<number>): { within1: number; worst: number } {
  let ok = 0;
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const ulps = Math.abs(got[i] - want[i]) / bf16Ulp(want[i]);
    if (ulps <= 1) ok++;
    worst = Math.max(worst, ulps);
  }
  return { within1: ok / got.length, worst };
}

function baseFile(name: string): string {
  return join(loraFixture(name), 'model.safetensors');
}

/** Merges `checkpoints` one per call (step by step) into a fresh state; each step's output path and report. */
async function mergeSteps(
  engine: Engine,
  base: string,
  method: string,
  params: Record<string, unknown>,
  checkpoints: string[],
  sketch = false,
  warnings: string[] = [],
): Promise<{ outs: string[]; reports: MergeReport[] }> {
  const dir = tempDir('cmerge-lora-');
  const stateDir = join(dir, 'state');
  const outs: string[] = [];
  const reports: MergeReport[] = [];
  for (const [i, ckpt] of checkpoints.entries()) {
    const out = join(dir, `step_${i + 1}.safetensors`);
    const onWarning = (w: string) => warnings.push(w);
    reports.push(
      await runMerge({ base, stateDir, method, params, checkpoints: [ckpt], out, engine, sketch, onWarning }),
    );
    outs.push(out);
  }
  return { outs, reports };
}

function withModels<T>(paths: string[], fn: (models: ModelReader[]) => T): T {
  const models = paths.map((p) => openModel(p));
  try {
    return fn(models);
  } finally {
    for (const m of models) m.close();
  }
}

/** Checks one merged adapter against the float64 merge and PEFT's; returns the worst figures seen. */
function checkAgainstReferences(c: Case, out: string): { f32: number; bf16Within1: number; bf16Worst: number } {
  const figures = { f32: 0, bf16Within1: 1, bf16Worst: 0 };
  const expectedPeft = join(loraFixture(c.adapter), 'expected.safetensors');
  withModels([out, baseFile(c.base), expectedPeft], ([got, base, peft]) => {
    const ours = independentMerge(loraFixture(c.adapter), base);
    assert.ok(ours.size > 0);
    for (const [name, info] of base.tensors) {
      const changed = ours.get(name);
      if (!changed) {
        assert.ok(got.readRaw(name).equals(base.readRaw(name)), `${c.adapter}: ${name} untouched, bit-identical`);
        assert.ok(peft.readRaw(name).equals(base.readRaw(name)), `${c.adapter}: PEFT left ${name} untouched too`);
        continue;
      }
      const values = got.readF32(name);
      const theta0 = base.readF32(name);
      for (const [what, want] of [
        ['float64 merge', changed],
        ['PEFT', peft.readF32(name)],
      ] as const) {
        if (info.dtype === 'BF16') {
          const a = bf16Agreement(values, want);
          figures.bf16Within1 = Math.min(figures.bf16Within1, a.within1);
          figures.bf16Worst = Math.max(figures.bf16Worst, a.worst);
          assert.ok(
            a.within1 >= 0.995,
            `${c.adapter} ${name} vs ${what}: ${(a.within1 * 100).toFixed(2)} % within 1 ulp`,
          );
          assert.ok(a.worst <= 2, `${c.adapter} ${name} vs ${what}: ${a.worst} ulps`);
        } else {
          const dTheta = relDistance(values, want);
          const dTau = relDistance(values, want, theta0);
          figures.f32 = Math.max(figures.f32, dTheta, dTau);
          assert.ok(dTheta <= 1e-6, `${c.adapter} ${name} vs ${what}: θ relative distance ${dTheta.toExponential(2)}`);
          assert.ok(dTau <= 1e-6, `${c.adapter} ${name} vs ${what}: τ relative distance ${dTau.toExponential(2)}`);
        }
      }
    }
  });
  return figures;
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

for (const ec of engineCases) {
  describe(`LoRA adapters as checkpoints on the ${ec.name} engine`, { skip: ec.skip }, () => {
    for (const c of CASES) {
      test(`${c.adapter}: task_arithmetic (scaling 1) and weight_average at t = 1 give θ0 + ΔW`, async () => {
        const engine = ec.make();
        try {
          for (const [method, params] of [
            ['task_arithmetic', { scaling_factor: 1 }],
            ['weight_average', {}],
          ] as const) {
            const { outs, reports } = await mergeSteps(engine, baseFile(c.base), method, params, [
              loraFixture(c.adapter),
            ]);
            const figures = checkAgainstReferences(c, outs[0]);
            if (process.env.CMERGE_TEST_VERBOSE) console.log(ec.name, c.adapter, method, figures);
            const step = reports[0].steps[0];
            assert.equal(step.checkpoint, loraFixture(c.adapter));
            assert.ok(step.adapter, 'the report says it was an adapter');
            assert.equal(step.adapter.config_sha256, sha256(join(loraFixture(c.adapter), 'adapter_config.json')));
            assert.equal(
              step.adapter.weights_sha256,
              sha256(join(loraFixture(c.adapter), 'adapter_model.safetensors')),
            );
          }
        } finally {
          engine.close();
        }
      });
    }

    for (const method of ['opcm', 'dop'] as const) {
      test(`${method} over the seq-1..3 adapters equals ${method} over PEFT's merged checkpoints`, async () => {
        const engine = ec.make();
        try {
          const base = baseFile('tiny-llama');
          const seq = [1, 2, 3].map((i) => loraFixture(`seq-${i}`));
          const adapters = await mergeSteps(engine, base, method, {}, seq, true);
          const full = await mergeSteps(
            engine,
            base,
            method,
            {},
            seq.map((d) => join(d, 'expected.safetensors')),
            true,
          );
          let worst = 0;
          for (let t = 0; t < 3; t++) {
            withModels([adapters.outs[t], full.outs[t], base], ([a, f, b]) => {
              for (const name of b.tensors.keys()) {
                const d = relDistance(a.readF32(name), f.readF32(name), b.readF32(name));
                worst = Math.max(worst, d);
                assert.ok(d <= 1e-6, `step ${t + 1} ${name}: relative distance of M_t − θ0 ${d.toExponential(2)}`);
              }
            });
            const [ra, rf] = [adapters.reports[t].steps[0], full.reports[t].steps[0]];
            assert.ok(Math.abs(ra.task_vector_norm - rf.task_vector_norm) <= 1e-5 * rf.task_vector_norm);
            const rhoA = adapters.reports[t].retention.map((x) => x.rho);
            const rhoF = full.reports[t].retention.map((x) => x.rho);
            assert.equal(rhoA.length, t + 1);
            rhoA.forEach((x, i) =>
              assert.ok(Math.abs(x - rhoF[i]) <= 1e-4, `ρ[${t + 1}][${i + 1}]: ${x} vs ${rhoF[i]}`),
            );
          }
          if (process.env.CMERGE_TEST_VERBOSE) console.log(ec.name, method, 'worst', worst);
        } finally {
          engine.close();
        }
      });
    }
  });
}

describe('an adapter through the other paths of the runner', () => {
  const portable = engineCases.find((e) => e.name === 'portable')!;

  test('an adapter’s ‖τ‖² is the float64 sum over its float32 τ, the same whole or in chunks', () => {
    const tau = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e-3);
    const base = Float32Array.from({ length: 1000 }, (_, i) => Math.cos(i));
    let want = 0;
    for (const x of tau) want += x * x;
    const whole = { tauSq: 0, baseSq: 0 };
    addGivenTauChunk(tau, base, whole);
    const chunked = { tauSq: 0, baseSq: 0 };
    for (let off = 0; off < 1000; off += 300)
      addGivenTauChunk(tau.subarray(off, off + 300), base.subarray(off, off + 300), chunked);
    assert.equal(whole.tauSq, want);
    assert.equal(chunked.tauSq, want);
    const zero = { tauSq: 0, baseSq: 0 };
    addGivenTauChunk(null, base, zero);
    assert.equal(zero.tauSq, 0);
    assert.ok(Math.abs(zero.baseSq - whole.baseSq) <= 1e-12 * whole.baseSq);
  });

  test('TIES (analysis passes read θ0 + τ per tensor) equals TIES over PEFT’s merged checkpoint', async () => {
    const engine = portable.make();
    try {
      const base = baseFile('tiny-llama');
      const a = await mergeSteps(engine, base, 'ties', {}, [loraFixture('plain')]);
      const f = await mergeSteps(engine, base, 'ties', {}, [join(loraFixture('plain'), 'expected.safetensors')]);
      withModels([a.outs[0], f.outs[0], base], ([x, y, b]) => {
        for (const name of b.tensors.keys()) {
          const d = relDistance(x.readF32(name), y.readF32(name), b.readF32(name));
          assert.ok(d <= 1e-6, `${name}: ${d}`);
        }
      });
    } finally {
      engine.close();
    }
  });

  test('a tensor the adapter does not change has τ = 0 without a read of the adapter', async () => {
    const engine = portable.make();
    const base = openModel(baseFile('tiny-llama'));
    const adapter = openAdapter(loraFixture('seq-1'), base, loraFixture('tiny-llama'));
    let reads = 0;
    const weights = adapter.weights;
    const counting = new Proxy(weights, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (String(prop).startsWith('read')) reads++;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    try {
      const spied = { ...adapter, weights: counting };
      assert.equal(await adapterTau(spied, base, engine, 'model.layers.0.mlp.down_proj.weight'), null);
      assert.equal(await adapterTau(spied, base, engine, 'model.norm.weight'), null);
      assert.equal(reads, 0);
      const tau = await adapterTau(spied, base, engine, 'model.layers.0.self_attn.q_proj.weight');
      assert.ok(tau && tau.length === base.tensors.get('model.layers.0.self_attn.q_proj.weight')!.size);
      assert.equal(reads, 2, 'lora_A and lora_B of q_proj only');
    } finally {
      adapter.close();
      base.close();
      engine.close();
    }
  });

  test('an adapter whose lora_B is all zero has τ = 0 and is refused like a checkpoint equal to the base', async () => {
    const dir = join(tempDir('cmerge-lora-zero-'), 'zero-b');
    cpSync(loraFixture('plain'), dir, { recursive: true });
    const src = openModel(join(loraFixture('plain'), 'adapter_model.safetensors'));
    const specs = [...src.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape] }));
    const w = createModelWriter(join(dir, 'adapter_model.safetensors'), specs, { metadata: { ...src.metadata } });
    for (const name of w.order) {
      const values = src.readF32(name);
      w.write(name, name.includes('lora_B') ? new Float32Array(values.length) : values);
    }
    w.commit();
    src.close();
    const engine = portable.make();
    const warnings: string[] = [];
    try {
      await assert.rejects(
        mergeSteps(engine, baseFile('tiny-llama'), 'opcm', {}, [dir], false, warnings),
        (e: Error) => {
          assert.match(e.message, /zero-b: task vector is zero/);
          return true;
        },
      );
      // copied away from the fixtures, its base_model_name_or_path (tiny-llama) cannot be looked at
      assert.match(warnings.join('\n'), /zero-b: the adapter names base tiny-llama, which cmerge cannot compare/);
    } finally {
      engine.close();
    }
  });
});
