import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Names inside `<repository>/<pipeline>/`. Servers (TF Serving, Triton) treat every plain
 * integer folder as a version, so everything that is not a finished version has a dot name.
 */
export const CURRENT = 'current';
export const MANIFEST = 'manifest.json';
export const MODEL_CARD = 'README.md';
export const STAGING_PREFIX = '.staging-';
export const DELETING_PREFIX = '.deleting-';
export const BROKEN_PREFIX = '.broken-';
export const LINK_TMP_PREFIX = '.current-tmp-';
/** what versions of cmerge before 0.2 left when a crash hit the discarding of an uncommitted version */
export const LEGACY_UNCOMMITTED_PREFIX = '.uncommitted-';

export function pipelineDir(repoRoot: string, pipeline: string): string {
  return join(repoRoot, pipeline);
}
export function versionDir(repoRoot: string, pipeline: string, version: number): string {
  return join(repoRoot, pipeline, String(version));
}
export function stagingDir(repoRoot: string, pipeline: string, version: number): string {
  return join(repoRoot, pipeline, STAGING_PREFIX + version);
}

/** A version number: a positive safe integer. */
export function assertVersion(version: number): void {
  if (!Number.isSafeInteger(version) || version < 1)
    throw new RangeError(`version must be a positive integer, got ${version}`);
}

/** "12" -> 12; "012", "1a", "0", ".staging-3" -> null (leading zeros are not versions here). */
export function parseVersionName(name: string): number | null {
  if (!/^[1-9][0-9]*$/.test(name)) return null;
  const version = Number(name);
  return Number.isSafeInteger(version) ? version : null;
}

/** Numbered version folders present on disk, ascending. Missing pipeline folder -> []. */
export async function listVersions(repoRoot: string, pipeline: string): Promise<number[]> {
  let entries;
  try {
    entries = await readdir(pipelineDir(repoRoot, pipeline), { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const versions: number[] = [];
  for (const entry of entries) {
    const version = parseVersionName(entry.name);
    if (version !== null && entry.isDirectory()) versions.push(version);
  }
  return versions.sort((a, b) => a - b);
}

/** The version `current` points to, or null when there is no link or it is not `N`. */
export async function readCurrent(repoRoot: string, pipeline: string): Promise<number | null> {
  try {
    return parseVersionName(await readlink(join(pipelineDir(repoRoot, pipeline), CURRENT)));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EINVAL') return null;
    throw err;
  }
}
