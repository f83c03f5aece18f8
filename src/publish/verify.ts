import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { listVersionFiles } from './files.js';
import { sha256File } from '../util/hash.js';
import { parseVersionName } from './layout.js';
import { readManifest } from './manifest.js';

export type ProblemKind = 'manifest' | 'missing' | 'size' | 'hash' | 'extra' | 'unreadable';

export interface VersionProblem {
  kind: ProblemKind;
  /** relative path inside the version, or null for the version as a whole */
  file: string | null;
  message: string;
}

export interface VerifyOptions {
  /** sizes only, no hashing: cheap enough for every start; default false (full sha256) */
  quick?: boolean;
}

/**
 * Check a version folder against its manifest.json: every listed file present with its size and
 * sha256, nothing unlisted, and the manifest's version equal to the folder's number.
 * Returns [] when the version is intact.
 */
export async function verifyVersion(dir: string, opts: VerifyOptions = {}): Promise<VersionProblem[]> {
  let manifest;
  try {
    manifest = await readManifest(dir);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    return [{ kind: 'manifest', file: null, message: missing ? 'manifest.json is missing' : (err as Error).message }];
  }
  const problems: VersionProblem[] = [];
  const folderVersion = parseVersionName(basename(dir));
  if (folderVersion !== null && manifest.version !== folderVersion) {
    problems.push({
      kind: 'manifest',
      file: null,
      message: `manifest says version ${manifest.version}, folder is ${folderVersion}`,
    });
  }
  let present: string[];
  try {
    present = (await listVersionFiles(dir)).files;
  } catch (err) {
    return [...problems, { kind: 'unreadable', file: null, message: (err as Error).message }];
  }
  const listed = new Set(Object.keys(manifest.files));
  for (const file of present) {
    if (!listed.has(file)) problems.push({ kind: 'extra', file, message: `${file} is not in the manifest` });
  }
  const onDisk = new Set(present);
  for (const [file, expected] of Object.entries(manifest.files)) {
    if (!onDisk.has(file)) {
      problems.push({ kind: 'missing', file, message: `${file} is missing` });
      continue;
    }
    const size = manifest.file_sizes?.[file];
    if (size !== undefined) {
      const actual = (await stat(join(dir, file))).size;
      if (actual !== size) {
        problems.push({ kind: 'size', file, message: `${file}: ${actual} bytes, manifest says ${size}` });
        continue;
      }
    }
    if (opts.quick) continue;
    const actual = await sha256File(join(dir, file));
    if (actual !== expected)
      problems.push({ kind: 'hash', file, message: `${file}: sha256 ${actual}, manifest says ${expected}` });
  }
  return problems;
}
