import { createHash } from 'node:crypto';
import { relative } from 'node:path';
import { findCheckpointFiles } from '../io/model.js';
import { sha256File } from '../publish/index.js';

/**
 * Content hash of a checkpoint: a single file's sha256 (what `sha256sum` prints), or for a folder
 * the sha256 of its weight files' names and hashes (index + shards), so renaming the folder
 * keeps its identity and any changed shard changes it.
 */
export async function checkpointSha256(
  path: string,
  files: readonly string[] | null = findCheckpointFiles(path),
): Promise<string> {
  if (!files || (files.length === 1 && files[0] === path)) return sha256File(path);
  const h = createHash('sha256');
  for (const f of files) h.update(`${relative(path, f)}\0${await sha256File(f)}\n`);
  return h.digest('hex');
}
