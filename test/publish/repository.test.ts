import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import {
  VersionExistsError,
  beginVersion,
  finishVersion,
  readManifest,
  swapCurrent,
  verifyVersion,
} from '../../src/publish/index.js';
import { repoRoot, tempDir } from '../helpers/paths.js';
import { BASE_CONFIG_FILES, hex, makeBaseFolder, publish } from './support.js';

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

test('publishes a version: weights, base config files, card, manifest with verified hashes, current', async () => {
  const root = tempDir();
  const repo = join(root, 'repo');
  const base = makeBaseFolder(join(root, 'base'));
  const v1 = await publish(repo, 'clip', 1, { baseFolder: base });
  const v2 = await publish(repo, 'clip', 2, { baseFolder: base });

  const dir = join(repo, 'clip', '2');
  assert.equal(v2.dir, dir);
  assert.equal(v2.modelFile, join(dir, 'model.safetensors'));
  assert.equal(readlinkSync(join(repo, 'clip', 'current')), '2', 'current is a relative link to the number');
  assert.deepEqual(readdirSync(join(repo, 'clip')).sort(), ['1', '2', 'current'], 'no staging or temp leftovers');

  const files = readdirSync(dir).sort();
  for (const f of BASE_CONFIG_FILES) assert.ok(files.includes(f), `${f} copied`);
  assert.ok(existsSync(join(dir, '2_Dense', 'config.json')), 'subfolder config copied');
  assert.ok(!existsSync(join(dir, '2_Dense', 'model.safetensors')), 'subfolder weights not copied');
  for (const f of ['pytorch_model.bin', 'model.safetensors.index.json', '.gitattributes'])
    assert.ok(!files.includes(f), `${f} not copied`);
  assert.notEqual(
    readFileSync(join(dir, 'README.md'), 'utf8'),
    '# the base model card\n',
    'our card, not the base card',
  );

  const m = await readManifest(dir);
  assert.equal(m.version, 2);
  assert.equal(m.parent, 1);
  assert.equal(m.pipeline, 'clip');
  assert.equal(m.method, 'opcm');
  assert.deepEqual(m.params, { alpha: 0.5 });
  assert.deepEqual(m.base, { path: base, sha256: hex('b') });
  assert.deepEqual(
    m.checkpoints.map((c) => c.name),
    ['ckpt-1.safetensors', 'ckpt-2.safetensors'],
  );
  assert.equal(m.engine, 'portable');
  assert.equal(m.cmerge_version, JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version);
  assert.ok(!Number.isNaN(Date.parse(m.created_at)));
  assert.deepEqual(m.metrics, { lambda: 1.25, removed_share: 0.1 });
  assert.ok(!('manifest.json' in m.files));
  assert.ok('README.md' in m.files && 'model.safetensors' in m.files && '2_Dense/config.json' in m.files);
  for (const [f, h] of Object.entries(m.files)) assert.equal(h, sha(join(dir, f)), `hash of ${f}`);
  assert.deepEqual(
    Object.keys(m.files).sort(),
    listAll(dir)
      .filter((f) => f !== 'manifest.json')
      .sort(),
  );
  assert.deepEqual(await verifyVersion(dir), []);
  assert.deepEqual(v2.manifest, m);
  assert.equal(v1.manifest.parent, null);
});

test('model card: YAML front matter with merge relation, body with checkpoints and metrics', async () => {
  const root = tempDir();
  const base = makeBaseFolder(join(root, 'base'));
  const v = await publish(join(root, 'repo'), 'llm', 3, { baseFolder: base });
  const card = readFileSync(join(v.dir, 'README.md'), 'utf8');
  const fm = card.match(/^---\n([\s\S]*?)\n---\n/);
  assert.ok(fm, 'front matter present');
  const meta = parse(fm[1]!) as Record<string, unknown>;
  // local models only: base_model names Hub repositories (test/publish/model-card.test.ts)
  assert.equal(meta.base_model, undefined);
  assert.equal(meta.base_model_relation, 'merge');
  assert.equal(meta.library_name, 'transformers');
  assert.ok((meta.tags as string[]).includes('merge') && (meta.tags as string[]).includes('opcm'));
  assert.match(card, /`opcm`/);
  assert.match(card, /"alpha": 0.5/);
  assert.match(card, new RegExp(hex('3')));
  assert.match(card, /"lambda": 1.25/);
});

test('sharded output and a single-file base: shards + index kept, nothing copied from the base', async () => {
  const root = tempDir();
  const v = await publish(join(root, 'repo'), 'p', 1, { sharded: true });
  assert.equal(v.modelFile, join(v.dir, 'model.safetensors.index.json'));
  assert.deepEqual(Object.keys(v.manifest.files).sort(), [
    'README.md',
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'model.safetensors.index.json',
  ]);
  const card = readFileSync(join(v.dir, 'README.md'), 'utf8');
  assert.doesNotMatch(card, /library_name/, 'no config.json, no library guess');
});

test('refuses: existing version, missing weights, missing shard, bad names', async () => {
  const root = tempDir();
  const repo = join(root, 'repo');
  await publish(repo, 'p', 1);
  await assert.rejects(beginVersion(repo, 'p', 1), (e: unknown) => e instanceof VersionExistsError && e.complete);
  mkdirSync(join(repo, 'p', '7'));
  await assert.rejects(beginVersion(repo, 'p', 7), (e: unknown) => e instanceof VersionExistsError && !e.complete);
  await assert.rejects(beginVersion(repo, 'p', 0), RangeError);
  await assert.rejects(beginVersion(repo, 'p', 1.5), RangeError);
  await assert.rejects(beginVersion(repo, '.hidden', 2), /invalid pipeline/);
  await assert.rejects(beginVersion(repo, 'a/b', 2), /invalid pipeline/);

  const s = await beginVersion(repo, 'p', 2);
  const input = {
    parent: 1,
    method: 'opcm',
    params: {},
    base: { path: '/b', sha256: hex('b') },
    checkpoints: [],
    engine: 'portable',
  };
  await assert.rejects(finishVersion(s, input), /no weights were written/);
  writeFileSync(
    join(s.dir, 'model.safetensors.index.json'),
    JSON.stringify({ weight_map: { a: 'model-1.safetensors' } }),
  );
  await assert.rejects(finishVersion(s, input), /missing shards model-1.safetensors/);
  assert.ok(!existsSync(join(repo, 'p', '2')), 'nothing published on failure');
  await assert.rejects(finishVersion(s, { ...input, parent: 2 }), /parent/);
  await assert.rejects(swapCurrent(repo, 'p', 2), /no manifest/);
  assert.equal(readlinkSync(join(repo, 'p', 'current')), '1', 'current untouched');
});

test('beginVersion replaces a stale staging folder', async () => {
  const repo = join(tempDir(), 'repo');
  mkdirSync(join(repo, 'p', '.staging-1'), { recursive: true });
  writeFileSync(join(repo, 'p', '.staging-1', 'junk.safetensors'), 'half written');
  const s = await beginVersion(repo, 'p', 1);
  assert.deepEqual(readdirSync(s.dir), []);
  assert.ok(lstatSync(s.dir).isDirectory());
});

test('verifyVersion reports modified, missing, extra files and a missing manifest', async () => {
  const repo = join(tempDir(), 'repo');
  const v = await publish(repo, 'p', 1, { baseFolder: makeBaseFolder(join(repo, '..', 'base')) });
  writeFileSync(join(v.dir, 'config.json'), '{"file": "config.jsoN"}\n'); // same size, other bytes
  writeFileSync(join(v.dir, 'tokenizer.json'), 'x'); // other size
  writeFileSync(join(v.dir, 'extra.txt'), 'x');
  await import('node:fs/promises').then((fs) => fs.rm(join(v.dir, 'vocab.json')));
  const problems = await verifyVersion(v.dir);
  const kinds = problems.map((p) => `${p.kind}:${p.file}`).sort();
  assert.deepEqual(kinds, ['extra:extra.txt', 'hash:config.json', 'missing:vocab.json', 'size:tokenizer.json']);
  const quick = await verifyVersion(v.dir, { quick: true });
  assert.ok(!quick.some((p) => p.kind === 'hash'), 'quick mode does not hash');
  await import('node:fs/promises').then((fs) => fs.rm(join(v.dir, 'manifest.json')));
  assert.deepEqual(
    (await verifyVersion(v.dir)).map((p) => p.kind),
    ['manifest'],
  );
});

function listAll(dir: string, rel = ''): string[] {
  return readdirSync(join(dir, rel), { withFileTypes: true }).flatMap((e) => {
    const r = rel ? `${rel}/${e.name}` : e.name;
    return e.isDirectory() ? listAll(dir, r) : [r];
  });
}
