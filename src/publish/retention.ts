import { removeVersions } from './discard.js';
import { listVersions, readCurrent } from './layout.js';

export interface RetentionPolicy {
  /** how many of the newest versions to keep (at least 1) */
  keep: number;
  /** versions a client pinned: never removed */
  pinned?: readonly number[];
}

/**
 * Remove all versions except the newest `keep`, `current`'s target and the pinned ones. Each
 * victim is first renamed to a dot name (one atomic step: servers see the version or nothing,
 * never a half-deleted folder), then deleted. Returns the removed version numbers, ascending.
 */
export async function applyRetention(repoRoot: string, pipeline: string, policy: RetentionPolicy): Promise<number[]> {
  if (!Number.isSafeInteger(policy.keep) || policy.keep < 1)
    throw new RangeError(`keep must be an integer >= 1, got ${policy.keep}`);
  const versions = await listVersions(repoRoot, pipeline);
  const protect = new Set<number>(policy.pinned ?? []);
  // Read current at the last moment: it is the one version a server is most likely loading.
  const current = await readCurrent(repoRoot, pipeline);
  if (current !== null) protect.add(current);
  const newest = new Set(versions.slice(-policy.keep));
  const victims = versions.filter((v) => !newest.has(v) && !protect.has(v));
  if (!victims.length) return [];

  await removeVersions(repoRoot, pipeline, victims);
  return victims;
}
