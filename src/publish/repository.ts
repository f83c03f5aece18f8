/**
 * Version repository: `<repository>/<pipeline>/{1,2,...}`, `current -> N`, `.staging-N/`.
 *
 * Publication of version N (docs/architecture.md#publication-and-hot-swap):
 *   const s = await beginVersion(repo, pipeline, N);   // empty .staging-N/
 *   ... merge runner writes model.safetensors (or shards + index) into s.dir ...
 *   const v = await finishVersion(s, {...});           // base files, README, manifest, fsync, rename
 *   await swapCurrent(repo, pipeline, N);              // atomic symlink replace
 *   ... record in SQLite, runNotifiers(...), applyRetention(...) ...
 *
 * Invariant: a numbered folder appears only through rename of a fully written and fsynced
 * staging folder whose manifest.json was written last, so servers never see a partial version.
 */
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { copyBaseFiles } from './base-files.js';
import { cmergeVersion } from '../util/version.js';
import { listVersionFiles } from './files.js';
import { fsyncDir, fsyncFile } from '../util/fsync.js';
import { sha256File } from '../util/hash.js';
import {
  CURRENT,
  LINK_TMP_PREFIX,
  MANIFEST,
  MODEL_CARD,
  assertVersion,
  pipelineDir,
  stagingDir,
  versionDir,
} from './layout.js';
import { manifestCheckpoint, type Manifest, type ManifestCheckpoint } from './manifest.js';
import { findHubIds } from './hub-ids.js';
import { renderModelCard, type ModelCardOptions } from './model-card.js';

/**
 * A merged checkpoint as the manifest records it, and where it was read: its folder's config.json
 * may name its Hub id for the model card. The path is not written to the manifest.
 */
export type FinishCheckpoint = ManifestCheckpoint & { path?: string };

/** A version being written. `dir` is where the merge runner puts the weight files. */
export interface Staging {
  readonly repoRoot: string;
  readonly pipeline: string;
  readonly version: number;
  /** absolute path of `.staging-N/` */
  readonly dir: string;
}

export interface FinishInput {
  parent: number | null;
  method: string;
  params: Record<string, unknown>;
  /** the base model as given in the config (file or folder) and its sha256 */
  base: { path: string; sha256: string };
  /**
   * Folder whose config/tokenizer files are copied. Default: base.path when it is a folder;
   * null (or a single-file base) copies nothing.
   */
  baseFolder?: string | null;
  /** every checkpoint merged so far, in merge order */
  checkpoints: FinishCheckpoint[];
  /** the base's Hub id for the model card (config `base_model_id`); default: found from the base (findHubId) */
  baseModelId?: string | null;
  engine: string;
  metrics?: Record<string, unknown>;
  /** sha256 of files the caller wrote into the staging folder (relative path → hex), computed
   * while writing: they are not read again */
  knownSha256?: Record<string, string>;
  /** default: now */
  createdAt?: Date;
  /** default: package.json's version */
  cmergeVersion?: string;
  card?: ModelCardOptions;
  /** called on the complete staging folder before it is renamed into place; throwing stops the publication (the caller removes the folder) */
  beforeRename?: (stagingDir: string) => Promise<void>;
}

export interface PublishedVersion {
  version: number;
  /** absolute path of `<repository>/<pipeline>/<N>` */
  dir: string;
  manifest: Manifest;
  /** absolute path of model.safetensors, or of the shard index for a sharded model */
  modelFile: string;
}

/** Thrown by beginVersion / finishVersion when `<N>/` already exists. */
export class VersionExistsError extends Error {
  constructor(
    readonly dir: string,
    readonly complete: boolean,
  ) {
    super(`${dir} already exists${complete ? '' : ' without a manifest (run recovery)'}`);
    this.name = 'VersionExistsError';
  }
}

/** Pipeline names become folder names next to `current` and staging folders. */
export function assertPipelineName(pipeline: string): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(pipeline) || pipeline === CURRENT) {
    throw new Error(`invalid pipeline name "${pipeline}": letters, digits, _ . - and not starting with a dot`);
  }
}

/**
 * Start version N: an empty `.staging-N/` (a stale one from a crash is removed first).
 * Refuses when `<N>/` exists: the caller must not publish the same number twice (after a crash
 * between rename and the SQLite record, compare the existing manifest and adopt it instead).
 */
export async function beginVersion(repoRoot: string, pipeline: string, version: number): Promise<Staging> {
  assertVersion(version);
  assertPipelineName(pipeline);
  const final = versionDir(repoRoot, pipeline, version);
  if (existsSync(final)) throw new VersionExistsError(final, existsSync(join(final, MANIFEST)));
  await mkdir(pipelineDir(repoRoot, pipeline), { recursive: true });
  const dir = stagingDir(repoRoot, pipeline, version);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir);
  return { repoRoot, pipeline, version, dir };
}

/**
 * Complete a staged version and make it visible as `<N>/`: copy the base's non-weight files,
 * write README.md, hash every file, write manifest.json last, fsync files and folders, rename,
 * fsync the parent. Does not move `current` (see swapCurrent).
 */
export async function finishVersion(staging: Staging, input: FinishInput): Promise<PublishedVersion> {
  const { repoRoot, pipeline, version, dir } = staging;
  if (input.parent !== null && (!Number.isSafeInteger(input.parent) || input.parent >= version)) {
    throw new RangeError(`parent ${input.parent} must be an integer below ${version}`);
  }
  const { manifest, modelFile } = await completeFolder(dir, { pipeline, version }, input);
  // the quality gate: a candidate that fails never becomes a numbered folder
  await input.beforeRename?.(dir);

  const final = versionDir(repoRoot, pipeline, version);
  // rename(2) silently replaces an empty directory; refuse instead of guessing.
  if (existsSync(final)) throw new VersionExistsError(final, existsSync(join(final, MANIFEST)));
  await rename(dir, final);
  await fsyncDir(pipelineDir(repoRoot, pipeline));
  return { version, dir: final, manifest, modelFile: join(final, modelFile) };
}

/**
 * Everything of a version but its rename: the folder holding the runner's weights gets the base's
 * non-weight files, README.md (the model card) and manifest.json last, every file and folder
 * fsynced. Returns the manifest and the weights' file (relative). Shared by finishVersion and
 * `cmerge merge --out DIR` (finishModelFolder).
 */
export async function completeFolder(
  dir: string,
  id: { pipeline: string; version: number },
  input: FinishInput,
): Promise<{ manifest: Manifest; modelFile: string }> {
  const modelFile = await checkWeights(dir);
  const baseFolder = input.baseFolder === undefined ? await folderOrNull(input.base.path) : input.baseFolder;
  if (baseFolder) await copyBaseFiles(baseFolder, dir);

  const head: Omit<Manifest, 'files' | 'file_sizes'> = {
    format: 'cmerge-version/1',
    version: id.version,
    parent: input.parent,
    pipeline: id.pipeline,
    method: input.method,
    params: input.params,
    base: { path: input.base.path, sha256: input.base.sha256 },
    checkpoints: input.checkpoints.map(manifestCheckpoint),
    created_at: (input.createdAt ?? new Date()).toISOString(),
    cmerge_version: input.cmergeVersion ?? cmergeVersion(),
    engine: input.engine,
    metrics: input.metrics ?? {},
  };
  const hubIds = await findHubIds(
    input.base.path,
    input.baseModelId,
    input.checkpoints.map((c) => c.path),
  );
  const before = await listVersionFiles(dir);
  const card = renderModelCard(head, [...before.files, MODEL_CARD], { ...input.card, hubIds });
  await writeFile(join(dir, MODEL_CARD), card);
  return { manifest: await writeManifest(dir, head, input.knownSha256), modelFile };
}

/** Hashes every file of `dir`, writes manifest.json last, and fsyncs the files and folders. */
async function writeManifest(
  dir: string,
  head: Omit<Manifest, 'files' | 'file_sizes'>,
  knownSha256: Record<string, string> | undefined,
): Promise<Manifest> {
  const { files, dirs } = await listVersionFiles(dir);
  const hashes: Record<string, string> = {};
  const sizes: Record<string, number> = {};
  for (const file of files) {
    hashes[file] = knownSha256?.[file] ?? (await sha256File(join(dir, file)));
    sizes[file] = (await stat(join(dir, file))).size;
  }
  const manifest: Manifest = { ...head, files: hashes, file_sizes: sizes };
  // Key order of `head` first, then files: the manifest reads top-down like the card.
  await writeFile(join(dir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');

  for (const file of [...files, MANIFEST]) await fsyncFile(join(dir, file));
  for (const subdir of dirs.reverse()) await fsyncDir(join(dir, subdir));
  await fsyncDir(dir);
  return manifest;
}

/**
 * Point `current` at version N atomically: a temporary symlink renamed over `current`, so there
 * is no moment without a `current` (unlike `ln -sfn`, which unlinks first). The link is relative
 * (`current -> N`) so the repository can be moved or bind-mounted elsewhere.
 */
export async function swapCurrent(repoRoot: string, pipeline: string, version: number): Promise<void> {
  assertVersion(version);
  const target = versionDir(repoRoot, pipeline, version);
  if (!existsSync(join(target, MANIFEST))) throw new Error(`refusing to point current at ${target}: no manifest`);
  const parent = pipelineDir(repoRoot, pipeline);
  const tmp = join(parent, `${LINK_TMP_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  await symlink(String(version), tmp);
  try {
    await rename(tmp, join(parent, CURRENT));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(parent);
}

/** The weights the runner wrote: model.safetensors, an index whose shards all exist, or any .safetensors. */
async function checkWeights(dir: string): Promise<string> {
  const { files } = await listVersionFiles(dir);
  if (files.includes('model.safetensors')) return 'model.safetensors';
  const index = files.find((f) => f.endsWith('.safetensors.index.json'));
  if (index) {
    const parsed = JSON.parse(await readFile(join(dir, index), 'utf8')) as { weight_map?: Record<string, string> };
    const shards = new Set(Object.values(parsed.weight_map ?? {}));
    const missing = [...shards].filter((s) => !files.includes(s));
    if (shards.size === 0 || missing.length) {
      throw new Error(
        `${join(dir, index)}: ${shards.size === 0 ? 'empty weight_map' : 'missing shards ' + missing.join(', ')}`,
      );
    }
    return index;
  }
  const single = files.find((f) => f.endsWith('.safetensors'));
  if (single) return single;
  throw new Error(`${dir}: no weights were written (expected model.safetensors or a shard index)`);
}

async function folderOrNull(path: string): Promise<string | null> {
  try {
    return (await stat(path)).isDirectory() ? path : null;
  } catch {
    return null;
  }
}

/** True when `path` is a symlink (used by recovery to leave real folders named `current` alone). */
export async function isSymlink(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isSymbolicLink();
  } catch {
    return false;
  }
}
