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
  for (const v of versions) {
    const tmp = join(parent, `${DELETING_PREFIX}${v}-${randomBytes(4).toString('hex')}`);
    await rename(versionDir(repoRoot, pipeline, v), tmp);
    doomed.push(tmp);
  }
  await fsyncDir(parent);
  for (const d of doomed) await rm(d, { recursive: true, force: true });
}

/** Removes the numbered folders above `latest` (published by merges that never committed). */
export async function discardVersionsAbove(repoRoot: string, pipeline: string, latest: number): Promise<number[]> {
  const above = (await listVersions(repoRoot, pipeline)).filter((v) => v > latest);
  await removeVersions(repoRoot, pipeline, above);
  return above;
}
