import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir } from '../util/fsync.js';
import {
  BROKEN_PREFIX,
  CURRENT,
  DELETING_PREFIX,
  LEGACY_UNCOMMITTED_PREFIX,
  LINK_TMP_PREFIX,
  STAGING_PREFIX,
  listVersions,
  pipelineDir,
  readCurrent,
  versionDir,
} from './layout.js';
import { isSymlink, swapCurrent } from './repository.js';
import { verifyVersion, type VersionProblem } from './verify.js';

export interface BrokenVersion {
  version: number;
  problems: VersionProblem[];
  /**
   * Without a usable manifest the folder was never a publication (the invariant says it cannot
   * exist): it is moved aside to `movedTo` (a dot name servers ignore; data kept for inspection).
   * A version with a valid manifest but bad files was published and may be served: it is only
   * reported; the operator decides.
   */
  movedTo: string | null;
}

export interface RecoveryReport {
  /** leftover dot entries removed: staging folders, half-deleted versions, temporary links */
  removed: string[];
  broken: BrokenVersion[];
  /** intact versions after recovery, ascending */
  versions: number[];
  currentBefore: number | null;
  currentAfter: number | null;
}

export interface RecoverOptions {
  /** check sizes only instead of sha256 (fast start on large models); default false */
  quick?: boolean;
}

/**
 * Bring `<repository>/<pipeline>/` back to a consistent state after a crash. Call at start-up,
 * before any publication. Never deletes a numbered folder.
 * - removes `.staging-*`, `.deleting-*` (retention or discarding interrupted; `.uncommitted-*` from
 *   older versions) and temporary `current` links;
 * - verifies every numbered folder (see BrokenVersion for what happens to bad ones);
 * - when `current` is missing or points to a missing folder, points it at the newest intact
 *   version (or removes the dangling link when there is none). A `current` pointing at an
 *   existing version is left alone, even if newer versions exist: the caller owns that choice.
 */
export async function recoverRepository(
  repoRoot: string,
  pipeline: string,
  opts: RecoverOptions = {},
): Promise<RecoveryReport> {
  const dir = pipelineDir(repoRoot, pipeline);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return { removed: [], broken: [], versions: [], currentBefore: null, currentAfter: null };
    }
    throw err;
  }
  const removed: string[] = [];
  for (const name of names) {
    if (
      [STAGING_PREFIX, DELETING_PREFIX, LINK_TMP_PREFIX, LEGACY_UNCOMMITTED_PREFIX].some((prefix) =>
        name.startsWith(prefix),
      )
    ) {
      await rm(join(dir, name), { recursive: true, force: true });
      removed.push(name);
    }
  }

  const broken: BrokenVersion[] = [];
  const intact: number[] = [];
  for (const version of await listVersions(repoRoot, pipeline)) {
    const problems = await verifyVersion(versionDir(repoRoot, pipeline, version), { quick: opts.quick });
    if (!problems.length) {
      intact.push(version);
      continue;
    }
    let movedTo: string | null = null;
    if (problems.some((problem) => problem.kind === 'manifest')) {
      movedTo = join(dir, `${BROKEN_PREFIX}${version}-${Date.now()}`);
      await rename(versionDir(repoRoot, pipeline, version), movedTo);
    }
    broken.push({ version, problems, movedTo });
  }
  if (removed.length || broken.some((b) => b.movedTo)) await fsyncDir(dir);

  const currentBefore = await readCurrent(repoRoot, pipeline);
  let currentAfter = currentBefore;
  const present = new Set(await listVersions(repoRoot, pipeline));
  const linkPath = join(dir, CURRENT);
  const isLink = await isSymlink(linkPath);
  // A real folder named `current` is not ours; leave it and let the caller report it.
  const haveCurrentName = isLink || names.includes(CURRENT);
  if ((currentBefore === null || !present.has(currentBefore)) && (isLink || !haveCurrentName)) {
    const newest = intact.length ? intact[intact.length - 1]! : null;
    if (newest !== null) {
      await swapCurrent(repoRoot, pipeline, newest);
    } else if (isLink) {
      await rm(linkPath, { force: true });
      await fsyncDir(dir);
    }
    currentAfter = newest;
  }
  return { removed, broken, versions: intact, currentBefore, currentAfter };
}
