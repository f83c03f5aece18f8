import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { openModel } from '../../src/io/model.js';
import { InputError } from '../../src/io/types.js';
import { isAdapterFolder, openAdapter } from '../../src/io/lora/adapter.js';
import { matchPattern } from '../../src/io/lora/config.js';
import { loraFixture, tempDir } from '../helpers/paths.js';

const llama = loraFixture('tiny-llama');
const base = openModel(llama);
after(() => base.close());

function open(name: string, baseDir = llama) {
  return openAdapter(loraFixture(name), base, baseDir);
}

function refusal(dir: string): string {
  try {
    open(dir).close();
  } catch (e) {
    assert.ok(e instanceof InputError, `expected InputError, got ${e}`);
    return e.message;
  }
  assert.fail(`${dir} was accepted`);
}

describe('PEFT LoRA adapter folders', () => {
  test('a plain adapter targets q_proj and v_proj of both layers, scaling alpha / r', () => {
    assert.ok(isAdapterFolder(loraFixture('plain')));
    assert.ok(!isAdapterFolder(llama));
    const a = open('plain');
    try {
      assert.deepEqual(
        [...a.targets.keys()].sort(),
        [0, 1]
          .flatMap((l) => [`model.layers.${l}.self_attn.q_proj.weight`, `model.layers.${l}.self_attn.v_proj.weight`])
          .sort(),
      );
      const q = a.targets.get('model.layers.0.self_attn.q_proj.weight')!.lora!;
      assert.equal(q.rank, 4);
      assert.equal(q.scaling, 2);
      assert.equal(q.layout, 'linear');
      assert.deepEqual(a.warnings, []);
    } finally {
      a.close();
    }
  });

  test('rsLoRA scales by alpha / sqrt(r)', () => {
    const a = open('rslora');
    try {
      assert.equal(a.targets.get('model.layers.1.mlp.down_proj.weight')!.lora!.scaling, 16 / Math.sqrt(8));
    } finally {
      a.close();
    }
  });

  test('rank_pattern and alpha_pattern override per module, first matching key wins (PEFT order)', () => {
    const a = open('patterns');
    try {
      const at = (m: string) => a.targets.get(`model.layers.${m}.weight`)!.lora!;
      assert.deepEqual([at('0.self_attn.q_proj').rank, at('0.self_attn.q_proj').scaling], [2, 4]);
      assert.deepEqual([at('1.self_attn.q_proj').rank, at('1.self_attn.q_proj').scaling], [4, 2]);
      assert.deepEqual([at('0.self_attn.v_proj').rank, at('0.self_attn.v_proj').scaling], [6, 8 / 6]);
      assert.equal(at('1.self_attn.o_proj').scaling, 3 / 4);
      assert.equal(at('1.self_attn.k_proj').scaling, 20 / 4);
      assert.equal(at('0.self_attn.k_proj').scaling, 2);
    } finally {
      a.close();
    }
    assert.equal(matchPattern([['v_proj', 6]], 'model.layers.0.self_attn.v_proj'), 6);
    assert.equal(matchPattern([['v_proj', 6]], 'model.layers.0.self_attn.xv_proj'), undefined);
  });

  test('modules_to_save and saved embedding layers are full replacements; embeddings use the transposed layout', () => {
    const m = open('modules-to-save');
    try {
      assert.equal(m.targets.get('lm_head.weight')!.replacement, 'base_model.model.lm_head.weight');
      assert.equal(m.targets.get('lm_head.weight')!.lora, undefined);
    } finally {
      m.close();
    }
    const e = open('embedding');
    try {
      const emb = e.targets.get('model.embed_tokens.weight')!;
      assert.equal(emb.lora!.layout, 'embedding');
      assert.equal(emb.replacement, 'base_model.model.model.embed_tokens.base_layer.weight');
    } finally {
      e.close();
    }
  });

  test('fan_in_fan_out (GPT-2 Conv1D) uses the transposed layout', () => {
    const gpt2 = openModel(loraFixture('tiny-gpt2'));
    try {
      const a = openAdapter(loraFixture('fan-in-fan-out'), gpt2, loraFixture('tiny-gpt2'));
      assert.equal(a.targets.get('transformer.h.0.attn.c_attn.weight')!.lora!.layout, 'transposed');
      a.close();
    } finally {
      gpt2.close();
    }
  });

  test('every refusal names the folder or file and says why', () => {
    assert.match(refusal('refuse/dora'), /refuse\/dora.*DoRA/);
    assert.match(refusal('refuse/lora-bias'), /lora_bias/);
    assert.match(refusal('refuse/ia3'), /peft_type IA3 is not supported/);
    assert.match(refusal('refuse/bin'), /adapter_model\.bin \(pickle\) is refused/);
    assert.match(refusal('refuse/shape-mismatch'), /shape mismatch: .*q_proj/);
    assert.match(refusal('refuse/no-match'), /c_attn.* matches no tensor of the base/);
  });

  test('an adapter naming another local model is refused; an unknown hub id only warns', () => {
    const dir = tempDir('cmerge-lora-');
    const adapter = join(dir, 'adapter');
    cpSync(loraFixture('plain'), adapter, { recursive: true });
    cpSync(loraFixture('tiny-gpt2'), join(dir, 'other'), { recursive: true });
    const cfgPath = join(adapter, 'adapter_config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, base_model_name_or_path: 'other' }));
    assert.throws(() => openAdapter(adapter, base, llama), /trained on other, a different model than the base/);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, base_model_name_or_path: 'someone/unknown-model' }));
    const a = openAdapter(adapter, base, llama);
    assert.match(a.warnings.join('\n'), /names base someone\/unknown-model, which cmerge cannot compare/);
    a.close();
  });
});
