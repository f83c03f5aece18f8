import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { beginVersion, finishVersion, type FinishCheckpoint } from '../../src/publish/index.js';
import { tempDir } from '../helpers/paths.js';
import { hex, makeBaseFolder } from './support.js';

/**
 * The model card's `base_model` lists Hub repo ids only (the Hub reads it so with
 * `base_model_relation: merge`): the base's from `base_model_id` or its files, the checkpoints'
 * from their config.json; local paths are named in the text, never in `base_model`.
 */

/** A model folder whose config.json records `_name_or_path` as transformers' save_pretrained does. */
function modelFolder(dir: string, nameOrPath: string | null): string {
  mkdirSync(dir, { recursive: true });
  const config = { model_type: 'llama', ...(nameOrPath === null ? {} : { _name_or_path: nameOrPath }) };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeFileSync(join(dir, 'model.safetensors'), 'weights');
  return dir;
}

async function card(
  base: string,
  checkpoints: string[],
  baseModelId?: string,
): Promise<{ meta: Record<string, unknown>; text: string }> {
  const s = await beginVersion(join(tempDir(), 'repo'), 'llm', 1);
  writeFileSync(join(s.dir, 'model.safetensors'), 'merged');
  const lineage: FinishCheckpoint[] = checkpoints.map((path, i) => ({
    name: path.split('/').pop()!,
    sha256: hex(String(i + 1)),
    merged_at: '2025-01-01T00:00:00.000Z',
    path,
  }));
  const v = await finishVersion(s, {
    parent: null,
    method: 'opcm',
    params: { alpha: 0.5 },
    base: { path: base, sha256: hex('b') },
    baseModelId,
    checkpoints: lineage,
    engine: 'portable',
  });
  const text = readFileSync(join(v.dir, 'README.md'), 'utf8');
  const fm = /^---\n([\s\S]*?)\n---\n/.exec(text);
  assert.ok(fm, 'front matter present');
  const manifest = JSON.parse(readFileSync(join(v.dir, 'manifest.json'), 'utf8')) as { checkpoints: object[] };
  for (const c of manifest.checkpoints) assert.ok(!('path' in c), 'the manifest records no checkpoint path');
  return { meta: parse(fm[1]) as Record<string, unknown>, text };
}

test("Hub ids from config.json `_name_or_path`: the base's and the checkpoints' own, in merge order", async () => {
  const root = tempDir();
  const base = modelFolder(join(root, 'base'), 'meta-llama/Llama-3.2-1B');
  const ft1 = modelFolder(join(root, 'ft-1'), 'someone/llama-math');
  // saved after fine-tuning the base: `_name_or_path` names the base, not this checkpoint
  const ft2 = modelFolder(join(root, 'ft-2'), 'meta-llama/Llama-3.2-1B');
  const ft3 = modelFolder(join(root, 'ft-3'), 'other/llama-code');
  const { meta, text } = await card(base, [ft1, ft2, ft3]);
  assert.deepEqual(meta.base_model, ['meta-llama/Llama-3.2-1B', 'someone/llama-math', 'other/llama-code']);
  assert.equal(meta.base_model_relation, 'merge');
  assert.match(text, /\| 1 \| ft-1 \| `1{64}` \| [^|]+ \| `someone\/llama-math` \|/);
  assert.match(text, /\| 2 \| ft-2 \| `2{64}` \| [^|]+ \| - \|/);
  assert.match(text, /, Hub id `meta-llama\/Llama-3\.2-1B`/);
});

test('base_model_id wins over what the base folder says', async () => {
  const root = tempDir();
  const base = modelFolder(join(root, 'base'), 'meta-llama/Llama-3.2-1B');
  const ft = modelFolder(join(root, 'ft'), 'someone/llama-math');
  const { meta } = await card(base, [ft], 'meta-llama/Llama-3.2-1B-Instruct');
  assert.deepEqual(meta.base_model, ['meta-llama/Llama-3.2-1B-Instruct', 'someone/llama-math']);
});

test('a path in the Hugging Face cache names its repo', async () => {
  const root = tempDir();
  const base = modelFolder(join(root, 'hub', 'models--Qwen--Qwen2.5-0.5B', 'snapshots', 'a1b2c3'), null);
  const ft = join(root, 'hub', 'models--someone--qwen-ft', 'snapshots', 'd4e5f6', 'model.safetensors');
  mkdirSync(join(ft, '..'), { recursive: true });
  writeFileSync(ft, 'weights');
  const { meta } = await card(base, [ft]);
  assert.deepEqual(meta.base_model, ['Qwen/Qwen2.5-0.5B', 'someone/qwen-ft']);
});

test('local models only: no local path in base_model, every one named in the text', async () => {
  const root = tempDir();
  // what save_pretrained records for models loaded from local folders, and a base without config
  const base = makeBaseFolder(join(root, 'base'));
  const checkpoints = [
    modelFolder(join(root, 'ft-abs'), '/home/me/runs/ft-abs'),
    modelFolder(join(root, 'ft-rel'), './runs/ft-rel'),
    modelFolder(join(root, 'ft-word'), 'checkpoint-500'),
    modelFolder(join(root, 'ft-home'), '~/runs/x'),
    join(root, 'task.safetensors'),
  ];
  writeFileSync(checkpoints[4], 'weights');
  const { meta, text } = await card(base, checkpoints);
  assert.equal(meta.base_model, undefined, 'no Hub id known: no base_model');
  assert.equal(meta.base_model_relation, 'merge');
  const front = text.split('\n---\n')[0];
  assert.ok(!front.includes(root), `no local path in the front matter:\n${front}`);
  assert.match(text, new RegExp(`- \`${base}\` \\(sha256 \`b{64}\`\\), a local model`));
  for (const name of ['ft-abs', 'ft-rel', 'ft-word', 'ft-home', 'task.safetensors'])
    assert.match(text, new RegExp(`\\| ${name.replace('.', '\\.')} \\| \`[0-9a-f]{64}\` \\| [^|]+ \\| - \\|`));
  assert.match(text, /Models without a Hub id are local/);
});

test('a malformed config.json or `_name_or_path` that is no Hub id is taken as local', async () => {
  const root = tempDir();
  const base = modelFolder(join(root, 'base'), 'org/base');
  const bad = join(root, 'bad');
  mkdirSync(bad);
  writeFileSync(join(bad, 'config.json'), '{ not json');
  const dashes = modelFolder(join(root, 'dashes'), 'org/x--y');
  const long = modelFolder(join(root, 'long'), `org/${'a'.repeat(100)}`);
  const { meta } = await card(base, [bad, dashes, long]);
  assert.deepEqual(meta.base_model, ['org/base']);
});
