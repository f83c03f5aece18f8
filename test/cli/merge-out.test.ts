import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { writeDemoModels } from '../../src/demo/synth.js';
import { openModel } from '../../src/io/model.js';
import { readManifest, verifyVersion } from '../../src/publish/index.js';
import { cmerge } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

/**
 * `cmerge merge --out DIR` writes a folder a server can load, as a daemon version holds it: the
 * merged weights, the base folder's config, tokenizer and other non-weight files, README.md (the
 * model card) and manifest.json. `--out FILE.safetensors` writes the weights alone.
 */
const work = tempDir();
const sha256sum = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
/** the files a Hugging Face model folder carries besides its weights */
const BASE_FILES = {
  'config.json': JSON.stringify({ model_type: 'clip_vision_model', _name_or_path: 'demo-org/clip-demo-base' }),
  'generation_config.json': '{}',
  'tokenizer.json': '{"version": "1.0"}',
  'tokenizer_config.json': '{"model_max_length": 77}',
  'special_tokens_map.json': '{}',
  'preprocessor_config.json': '{"image_size": 4}',
};
let models: { base: string; tasks: string[] };
let baseFolder = '';
let ftFolder = '';

function listAll(dir: string, rel = ''): string[] {
  return readdirSync(join(dir, rel))
    .sort()
    .flatMap((e) => (statSync(join(dir, rel, e)).isDirectory() ? listAll(dir, join(rel, e)) : [join(rel, e)]));
}

function snapshot(dir: string): string {
  const h = createHash('sha256');
  for (const f of listAll(dir)) h.update(f).update(readFileSync(join(dir, f)));
  return h.digest('hex');
}

const merge = (state: string, out: string, ...rest: string[]) =>
  cmerge(['merge', '--base', baseFolder, '--state', state, '--method', 'opcm', '--out', out, '--json', ...rest]);

function frontMatter(dir: string): Record<string, unknown> {
  const fm = /^---\n([\s\S]*?)\n---\n/.exec(readFileSync(join(dir, 'README.md'), 'utf8'));
  assert.ok(fm, 'the model card has front matter');
  return parse(fm[1]) as Record<string, unknown>;
}

describe('cmerge merge --out', () => {
  const state = join(work, 'state');
  const out = join(work, 'merged');

  before(() => {
    models = writeDemoModels(join(work, 'models'), 3, { d: 16, layers: 1, seed: 7 });
    // a base folder as the Hub ships it: weights, config and tokenizer, and files not to copy
    baseFolder = join(work, 'base');
    mkdirSync(baseFolder);
    copyFileSync(models.base, join(baseFolder, 'model.safetensors'));
    for (const [name, text] of Object.entries(BASE_FILES)) writeFileSync(join(baseFolder, name), text);
    writeFileSync(join(baseFolder, 'README.md'), '# the base model card\n');
    writeFileSync(join(baseFolder, 'pytorch_model.bin'), 'stale pickled weights');
    writeFileSync(join(baseFolder, '.gitattributes'), '*.safetensors filter=lfs\n');
    // a fine-tuned checkpoint folder saved by transformers after loading it from the Hub
    ftFolder = join(work, 'ft-1');
    mkdirSync(ftFolder);
    copyFileSync(models.tasks[1], join(ftFolder, 'model.safetensors'));
    writeFileSync(join(ftFolder, 'config.json'), JSON.stringify({ _name_or_path: 'someone/clip-demo-ft' }));
  });

  test("--out DIR: weights, the base's config and tokenizer files, model card and manifest; the base's weights and card not copied", async () => {
    const r = merge(state, out, models.tasks[0]);
    assert.equal(r.status, 0, r.stderr);
    const files = listAll(out);
    assert.deepEqual(files, [...Object.keys(BASE_FILES), 'README.md', 'manifest.json', 'model.safetensors'].sort());
    for (const [name, text] of Object.entries(BASE_FILES)) assert.equal(readFileSync(join(out, name), 'utf8'), text);
    assert.notEqual(readFileSync(join(out, 'README.md'), 'utf8'), '# the base model card\n');
    // what from_pretrained reads: config.json naming the model type, one weights file with the base's tensors
    assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).model_type, 'clip_vision_model');
    const merged = openModel(join(out, 'model.safetensors'));
    const base = openModel(models.base);
    assert.deepEqual([...merged.tensors.keys()].sort(), [...base.tensors.keys()].sort());
    merged.close();
    base.close();
    assert.deepEqual(await verifyVersion(out), [], 'every file matches the manifest');
    const report = JSON.parse(r.stdout) as { out_files: string[]; out_sha256: Record<string, string> };
    assert.deepEqual(report.out_files, [join(out, 'model.safetensors')], 'the report names the files in DIR');
    assert.equal(report.out_sha256[join(out, 'model.safetensors')], sha256sum(join(out, 'model.safetensors')));
    assert.deepEqual(
      readdirSync(work).filter((e) => e.startsWith('.')),
      [],
      'no staging folder left',
    );
  });

  test("the manifest: version = the state's step, parent null from the base, pipeline = the state folder's name", async () => {
    const m = await readManifest(out);
    assert.equal(m.version, 1);
    assert.equal(m.parent, null);
    assert.equal(m.pipeline, 'state');
    assert.equal(m.method, 'opcm');
    assert.deepEqual(m.base, { path: baseFolder, sha256: m.base.sha256 });
    assert.match(m.base.sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(
      m.checkpoints.map((c) => [c.name, c.sha256, c.dtype]),
      [['task_0.safetensors', sha256sum(models.tasks[0]), 'F32']],
    );
    assert.match(m.checkpoints[0].merged_at, /^\d{4}-\d\d-\d\dT/);
    assert.equal(typeof m.metrics.lambda, 'number');
    // the base's Hub id from its config.json; task_0 is a local file
    const meta = frontMatter(out);
    assert.deepEqual(meta.base_model, ['demo-org/clip-demo-base']);
    assert.equal(meta.base_model_relation, 'merge');
    assert.equal(meta.library_name, 'transformers');
  });

  test('a second call replaces DIR: version 2, parent 1, both checkpoints, --base-model-id and the checkpoint folder’s Hub id in base_model', async () => {
    const r = merge(state, out, '--base-model-id', 'demo-org/clip-demo-base-v2', ftFolder);
    assert.equal(r.status, 0, r.stderr);
    const m = await readManifest(out);
    assert.deepEqual([m.version, m.parent], [2, 1]);
    assert.deepEqual(
      m.checkpoints.map((c) => c.name),
      ['task_0.safetensors', 'ft-1'],
    );
    assert.deepEqual(await verifyVersion(out), []);
    assert.deepEqual(frontMatter(out).base_model, ['demo-org/clip-demo-base-v2', 'someone/clip-demo-ft']);
    assert.deepEqual(
      readdirSync(work).filter((e) => e.startsWith('.')),
      [],
      'no staging or old folder left',
    );
  });

  test('a refused merge leaves DIR and the state as they were', () => {
    const before = [snapshot(out), snapshot(state)];
    const r = merge(state, out, models.tasks[0]); // already in the state
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /duplicate: same sha256/);
    assert.deepEqual([snapshot(out), snapshot(state)], before);
    assert.deepEqual(
      readdirSync(work).filter((e) => e.startsWith('.')),
      [],
    );
  });

  test('DIR holding something else is refused, not replaced: exit 1, one line naming it, nothing written', () => {
    const other = join(work, 'photos');
    mkdirSync(other);
    writeFileSync(join(other, 'cat.jpg'), 'meow');
    const before = snapshot(state);
    const r = merge(state, other, models.tasks[2]);
    assert.equal(r.status, 1, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0].includes(other), lines[0]);
    assert.match(lines[0], /not a cmerge output folder/);
    assert.deepEqual(listAll(other), ['cat.jpg']);
    assert.equal(snapshot(state), before);
  });

  test('--out DIR sharded: index and shards, verified by the manifest', async () => {
    const sharded = join(work, 'sharded');
    const r = merge(join(work, 'state-sharded'), sharded, '--max-shard-bytes', '4000', models.tasks[0]);
    assert.equal(r.status, 0, r.stderr);
    const files = listAll(sharded);
    assert.ok(files.includes('model.safetensors.index.json'), files.join(' '));
    assert.ok(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length >= 2, files.join(' '));
    assert.ok(!files.includes('model.safetensors'));
    assert.ok(files.includes('config.json') && files.includes('README.md') && files.includes('manifest.json'));
    assert.deepEqual(await verifyVersion(sharded), []);
  });

  test('--out FILE.safetensors writes the weights alone', () => {
    const dir = join(work, 'single');
    mkdirSync(dir);
    const file = join(dir, 'merged.safetensors');
    const r = merge(join(work, 'state-file'), file, models.tasks[0]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(dir), ['merged.safetensors']);
  });

  test('--base-model-id: a Hub id, and only with a folder output (exit 2)', () => {
    const bad = merge(join(work, 'state-x'), join(work, 'x'), '--base-model-id', '/models/base', models.tasks[0]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--base-model-id expects a Hub repo id/);
    const file = merge(join(work, 'state-x'), join(work, 'x.safetensors'), '--base-model-id', 'org/x', models.tasks[0]);
    assert.equal(file.status, 2);
    assert.match(file.stderr, /--base-model-id: only with a folder --out/);
    assert.ok(!existsSync(join(work, 'state-x')) && !existsSync(join(work, 'x')));
  });
});
