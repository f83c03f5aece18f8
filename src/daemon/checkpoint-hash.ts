import { createHash } from 'node:crypto';
import { basename, relative } from 'node:path';
import { findCheckpointFiles } from '../io/model.js';
import { sha256File } from '../publish/index.js';

/**
 * Content hash of a checkpoint: a single file's sha256 (what `sha256sum` prints), or for a folder
 * the sha256 of its weight files' names and hashes, one line `<name>\0<sha256 hex>\n` per file in
 * findCheckpointFiles' order (index then shards; for a LoRA adapter folder adapter_config.json then
 * adapter_model.safetensors), so renaming the folder keeps its identity and any changed file
 * changes it. Files beside them (README.md, tokenizer) are not part of it.
 */
export async function checkpointSha256(
  path: string,
  files: readonly string[] | null = findCheckpointFiles(path),
): Promise<string> {
  return (await checkpointHashes(path, files)).sha256;
}

/** The checkpoint's sha256 (see checkpointSha256) and each file's own, by name relative to the folder. */
export interface CheckpointHashes {
  sha256: string;
  /** relative name → sha256 hex; for a single file, its base name */
  files: Record<string, string>;
}

/** Every file is read once: the folder's hash is made from the files' hashes. */
export async function checkpointHashes(
  path: string,
  files: readonly string[] | null = findCheckpointFiles(path),
): Promise<CheckpointHashes> {
  if (!files || (files.length === 1 && files[0] === path)) {
    const sha256 = await sha256File(path);
    return { sha256, files: { [basename(path)]: sha256 } };
  }
  const h = createHash('sha256');
  const hashes: Record<string, string> = {};
  for (const f of files) {
    const name = relative(path, f);
    hashes[name] = await sha256File(f);
    h.update(`${name}\0${hashes[name]}\n`);
  }
  return { sha256: h.digest('hex'), files: hashes };
}
