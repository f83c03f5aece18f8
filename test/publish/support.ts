/** Shared builders for the publication tests (not a test file itself). */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beginVersion, finishVersion, swapCurrent, type PublishedVersion } from '../../src/publish/index.js';

export const BASE_CONFIG_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'preprocessor_config.json',
  'chat_template.jinja',
  'LICENSE',
];

/** A Hugging Face style model folder with weights, config/tokenizer files and things not to copy. */
export function makeBaseFolder(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const f of BASE_CONFIG_FILES) writeFileSync(join(dir, f), `{"file": "${f}"}\n`);
  writeFileSync(join(dir, 'model.safetensors'), randomBytes(256));
  writeFileSync(join(dir, 'pytorch_model.bin'), randomBytes(64));
  writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": {}}');
  writeFileSync(join(dir, 'README.md'), '# the base model card\n');
  writeFileSync(join(dir, '.gitattributes'), '*.safetensors filter=lfs\n');
  mkdirSync(join(dir, '2_Dense'));
  writeFileSync(join(dir, '2_Dense', 'config.json'), '{"in": 4}');
  writeFileSync(join(dir, '2_Dense', 'model.safetensors'), randomBytes(32));
  return dir;
}

export const hex = (c: string) => c.repeat(64);

/** Publish version n the way the daemon will: stage, write weights, finish, swap. */
export async function publish(
  repo: string,
  pipeline: string,
  n: number,
  opts: { baseFolder?: string | null; sharded?: boolean; weightBytes?: number } = {},
): Promise<PublishedVersion> {
  const s = await beginVersion(repo, pipeline, n);
  const bytes = opts.weightBytes ?? 1024;
  if (opts.sharded) {
    writeFileSync(join(s.dir, 'model-00001-of-00002.safetensors'), randomBytes(bytes));
    writeFileSync(join(s.dir, 'model-00002-of-00002.safetensors'), randomBytes(bytes));
    writeFileSync(
      join(s.dir, 'model.safetensors.index.json'),
      JSON.stringify({
        metadata: { total_size: 2 * bytes },
        weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' },
      }),
    );
  } else {
    writeFileSync(join(s.dir, 'model.safetensors'), randomBytes(bytes));
  }
  const checkpoints = Array.from({ length: n }, (_, i) => ({
    name: `ckpt-${i + 1}.safetensors`,
    sha256: hex(((i % 9) + 1).toString()),
    merged_at: new Date(Date.UTC(2025, 0, i + 1)).toISOString(),
  }));
  const v = await finishVersion(s, {
    parent: n > 1 ? n - 1 : null,
    method: 'opcm',
    params: { alpha: 0.5 },
    base: { path: opts.baseFolder ?? '/models/base.safetensors', sha256: hex('b') },
    baseFolder: opts.baseFolder,
    checkpoints,
    engine: 'portable',
    metrics: { lambda: 1.25, removed_share: 0.1 },
  });
  await swapCurrent(repo, pipeline, n);
  return v;
}
