/**
 * `cmerge merge --out DIR`: a model folder a server or `from_pretrained` can load, completed as a
 * daemon version is (docs/architecture.md#publication-and-hot-swap: the base's non-weight files,
 * README.md, manifest.json last) in a dot-named folder beside DIR, then renamed to DIR.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError } from '../io/types.js';
import { fsyncDir } from '../util/fsync.js';
import { MANIFEST } from './layout.js';
import { readManifest, type Manifest } from './manifest.js';
import { completeFolder, type FinishInput } from './repository.js';

export interface ModelFolderStaging {
  /** the folder asked for (absolute) */
  readonly dest: string;
  /** where the runner writes the weights: `.<name>.cmerge-staging` beside dest */
  readonly dir: string;
}

/**
 * An empty staging folder for `dest`, after the leftovers of an interrupted run are removed.
 * `dest` may be missing, an empty folder, or an earlier cmerge output (a valid manifest.json),
 * which is replaced; anything else is refused (InputError): it is not ours to delete.
 */
export async function beginModelFolder(dest: string): Promise<ModelFolderStaging> {
  const abs = resolve(dest);
  const { dir, aside } = siblings(abs);
  // a run interrupted between finishModelFolder's two renames: the earlier output comes back
  if (!existsSync(abs) && existsSync(join(aside, MANIFEST))) await rename(aside, abs);
  if (existsSync(abs)) await assertReplaceable(abs);
  await rm(dir, { recursive: true, force: true });
  await rm(aside, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  return { dest: abs, dir };
}

/**
 * Completes the staging folder (see completeFolder) and renames it to `dest`. An earlier output
 * is first renamed aside, then removed: `dest` is missing for a moment between the two renames,
 * which a one-shot command can afford (the daemon's `current` link never is).
 */
export async function finishModelFolder(
  staging: ModelFolderStaging,
  id: { pipeline: string; version: number },
  input: FinishInput,
): Promise<{ manifest: Manifest; modelFile: string }> {
  const done = await completeFolder(staging.dir, id, input);
  const { aside } = siblings(staging.dest);
  const replacing = existsSync(staging.dest);
  if (replacing) await rename(staging.dest, aside);
  await rename(staging.dir, staging.dest);
  await fsyncDir(dirname(staging.dest));
  if (replacing) await rm(aside, { recursive: true, force: true });
  return done;
}

/** A failed run leaves no staging folder behind. */
export async function discardModelFolder(staging: ModelFolderStaging): Promise<void> {
  await rm(staging.dir, { recursive: true, force: true });
}

/** Dot names beside `dest`, on its filesystem so the renames cannot cross filesystems. */
function siblings(dest: string): { dir: string; aside: string } {
  const prefix = join(dirname(dest), `.${basename(dest)}`);
  return { dir: `${prefix}.cmerge-staging`, aside: `${prefix}.cmerge-old` };
}

async function assertReplaceable(dest: string): Promise<void> {
  if (!(await stat(dest)).isDirectory())
    throw new InputError(dest, 'exists and is not a folder (a single-file output ends in .safetensors)');
  if ((await readdir(dest)).length === 0) return;
  try {
    await readManifest(dest);
  } catch {
    throw new InputError(dest, 'exists and is not a cmerge output folder (no valid manifest.json): not replaced');
  }
}
