import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createModelWriter, openModel } from '../../src/io/model.js';
import { cmerge } from '../helpers/cli.js';
import { loraFixture, tempDir } from '../helpers/paths.js';

/**
 * `cmerge merge` takes PEFT LoRA adapter folders as checkpoints (docs/lora.md). A refused adapter
 * exits 1 with one line on stderr naming the folder and the reason, and writes nothing: no output,
 * no state generation. Warnings go to stderr and do not stop the merge.
 */
const work = tempDir('cmerge-cli-lora-');
const llama = loraFixture('tiny-llama');

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** The state directory holds no generation and no CURRENT (it may not exist at all). */
function assertNoState(stateDir: string): void {
  if (!existsSync(stateDir)) return;
  const left = readdirSync(stateDir).filter((e) => e === 'CURRENT' || /gen-/.test(e));
  assert.deepEqual(left, [], `state left behind: ${left.join(', ')}`);
}

/** A copy of the plain adapter with its config changed, or its lora_B zeroed. */
function plainVariant(name: string, change: { config?: Record<string, unknown>; zeroB?: boolean }): string {
  const dir = join(work, 'variants', name);
  cpSync(loraFixture('plain'), dir, { recursive: true });
  if (change.config) {
    const path = join(dir, 'adapter_config.json');
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), ...change.config }));
  }
  if (change.zeroB) {
    const src = openModel(join(loraFixture('plain'), 'adapter_model.safetensors'));
    const specs = [...src.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape] }));
    const w = createModelWriter(join(dir, 'adapter_model.safetensors'), specs, { metadata: { ...src.metadata } });
    for (const n of w.order)
      w.write(n, n.includes('lora_B') ? new Float32Array(src.tensors.get(n)!.size) : src.readF32(n));
    w.commit();
    src.close();
  }
  return dir;
}

let runs = 0;
function merge(base: string, checkpoints: string[], extra: string[] = []) {
  const dir = join(work, `run-${++runs}`);
  const state = join(dir, 'state');
  const out = join(dir, 'merged.safetensors');
  const r = cmerge([
    'merge',
    '--base',
    base,
    '--state',
    state,
    '--method',
    'opcm',
    '--out',
    out,
    ...extra,
    ...checkpoints,
  ]);
  return { ...r, state, out };
}

describe('cmerge merge with LoRA adapter folders', () => {
  test('an adapter merges like a checkpoint; --json reports what it was', () => {
    const adapter = loraFixture('plain');
    const r = merge(llama, [adapter, loraFixture('seq-1')], ['--json']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', 'no warning for an adapter naming the base folder');
    const report = JSON.parse(r.stdout) as { step: number; steps: { adapter: Record<string, unknown> | null }[] };
    assert.equal(report.step, 2);
    const lineage = report.steps[0].adapter!;
    assert.equal(lineage.r, 4);
    assert.equal(lineage.alpha, 8);
    assert.equal(lineage.rslora, false);
    assert.deepEqual(lineage.modules_to_save, []);
    assert.ok((lineage.targets as string[]).includes('model.layers.0.self_attn.q_proj.weight'));
    assert.equal(lineage.config_sha256, sha256(join(adapter, 'adapter_config.json')));
    assert.equal(lineage.weights_sha256, sha256(join(adapter, 'adapter_model.safetensors')));
    assert.ok(existsSync(r.out));
    assert.ok(existsSync(join(r.state, 'gen-00000002')));
  });

  test('a base the adapter names but cmerge cannot look at: a warning on stderr, and the merge', () => {
    const adapter = plainVariant('hub-id', { config: { base_model_name_or_path: 'some-org/not-here' } });
    const r = merge(join(llama, 'model.safetensors'), [adapter]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^cmerge: warning: .*hub-id: the adapter names base some-org\/not-here.*shapes checked\n$/);
    assert.ok(existsSync(r.out));
  });

  const refusals: { name: string; base: string; adapter: () => string; reason: RegExp }[] = [
    { name: 'DoRA', base: llama, adapter: () => loraFixture('refuse/dora'), reason: /DoRA/ },
    { name: 'lora_bias', base: llama, adapter: () => loraFixture('refuse/lora-bias'), reason: /lora_bias/ },
    { name: 'another peft_type', base: llama, adapter: () => loraFixture('refuse/ia3'), reason: /peft_type IA3/ },
    {
      name: 'pickle weights',
      base: llama,
      adapter: () => loraFixture('refuse/bin'),
      reason: /adapter_model\.bin \(pickle\) is refused/,
    },
    {
      name: 'target modules matching no base tensor',
      base: llama,
      adapter: () => loraFixture('refuse/no-match'),
      reason: /matches no tensor of the base/,
    },
    {
      name: 'shape mismatch',
      base: llama,
      adapter: () => loraFixture('refuse/shape-mismatch'),
      reason: /shape mismatch/,
    },
    {
      name: 'an adapter naming another local base',
      base: loraFixture('tiny-gpt2'),
      adapter: () => loraFixture('plain'),
      reason: /trained on tiny-llama, a different model than the base/,
    },
    {
      name: 'a folder that is both an adapter and a model',
      base: llama,
      adapter: () => {
        const dir = plainVariant('both', { config: { base_model_name_or_path: llama } });
        cpSync(join(llama, 'model.safetensors'), join(dir, 'model.safetensors'));
        return dir;
      },
      reason: /ambiguous checkpoint: both adapter_config\.json and model\.safetensors/,
    },
    {
      name: 'an update of zero (lora_B = 0)',
      base: llama,
      adapter: () => plainVariant('zero-b', { zeroB: true, config: { base_model_name_or_path: llama } }),
      reason: /task vector is zero/,
    },
  ];
  for (const k of refusals) {
    test(`refused: ${k.name}; one line naming the folder, nothing written`, () => {
      const adapter = k.adapter();
      // alone, and after a good checkpoint of the same call
      const good = k.base === llama ? loraFixture('seq-1') : loraFixture('fan-in-fan-out');
      for (const checkpoints of [[adapter], [good, adapter]]) {
        const r = merge(k.base, checkpoints);
        assert.equal(r.status, 1, r.stderr);
        const lines = r.stderr.trimEnd().split('\n');
        assert.equal(lines.length, 1, `one line expected, got: ${r.stderr}`);
        assert.ok(lines[0].startsWith(`cmerge: ${adapter}`), `names the folder: ${lines[0]}`);
        assert.match(lines[0], k.reason);
        assert.equal(existsSync(r.out), false, 'no output');
        assertNoState(r.state);
      }
    });
  }
});
