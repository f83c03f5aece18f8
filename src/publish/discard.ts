import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir } from '../util/fsync.js';
import { DELETING_PREFIX, listVersions, pipelineDir, versionDir } from './layout.js';

/**
 * Removes version folders: each is first renamed to a `.deleting-` name (durable before the slow
 * delete), so a crash at any point leaves only entries recoverRepository finishes deleting.
 */
export async function removeVersions(repoRoot: string, pipeline: string, versions: number[]): Promise<void> {
  if (!versions.length) return;
  const parent = pipelineDir(repoRoot, pipeline);
  const doomed: string[] = [];
  for (const version of versions) {
    const deleting = join(parent, `${DELETING_PREFIX}${version}-${randomBytes(4).toString('hex')}`);
    await rename(versionDir(repoRoot, pipeline, version), deleting);
    doomed.push(deleting);
  }
  await fsyncDir(parent);
  for (const path of doomed) await rm(path, { recursive: true, force: true });
}

/** Removes the numbered folders above `latest` (published by merges that never committed). */
export async function discardVersionsAbove(repoRoot: string, pipeline: string, latest: number): Promise<number[]> {
  const above = (await listVersions(repoRoot, pipeline)).filter((version) => version > latest);
  await removeVersions(repoRoot, pipeline, above);
  return above;
}
