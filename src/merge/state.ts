import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { openModel } from '../io/model.js';
import type { ModelReader } from '../io/types.js';
import type { Scalars, TensorKind } from '../methods/types.js';
import { fsyncDirSync, writeFileAtomic } from '../util/fsync.js';

/**
 * The merge-state directory: one folder per generation (gen-N; `state.json` says how many
 * checkpoints it holds, its step; the daemon numbers generations by version, `cmerge merge` by
 * step) holding `state.safetensors` (float32 state tensors) and `state.json` (scalars and
 * provenance), and a `CURRENT` file naming the committed generation. A generation is written under
 * a dot name and renamed into place, and CURRENT is replaced atomically, so a crash leaves either
 * the old or the new state. Generations newer than CURRENT are leftovers of an interrupted run.
 */
export const STATE_FORMAT = 1;

export interface CheckpointRecord {
  name: string;
  path: string;
  bytes: number;
  /** the float dtypes it was stored in (absent in states written before cmerge recorded it) */
  dtype?: string;
  sha256?: string;
  /** when its step was merged, ISO 8601 (absent in states written before cmerge recorded it) */
  merged_at?: string;
}

export interface StateMeta {
  format: number;
  method: string;
  params: Record<string, unknown>;
  step: number;
  scalars: Scalars;
  base: { path: string; fingerprint: string };
  kinds: Record<string, TensorKind>;
  checkpoints: CheckpointRecord[];
  engine: string;
  created_at: string;
}

export interface Generation {
  /** the number in its folder name; 0 for an intermediate state of a multi-checkpoint run */
  id: number;
  /** checkpoints merged into it (meta.step) */
  step: number;
  dir: string;
  meta: StateMeta;
  open(): ModelReader;
}

const genName = (id: number) => `gen-${String(id).padStart(8, '0')}`;

export function generationDir(stateDir: string, id: number): string {
  return join(stateDir, genName(id));
}

/** state.json of a generation folder, or null when it has none (a leftover). */
export function readStateMeta(dir: string): StateMeta | null {
  const metaPath = join(dir, 'state.json');
  if (!existsSync(metaPath)) return null;
  const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as StateMeta;
  if (meta.format !== STATE_FORMAT) throw new Error(`${metaPath}: unsupported state format ${meta.format}`);
  return meta;
}

function loadGenerationDir(dir: string, id: number): Generation {
  const meta = readStateMeta(dir);
  if (!meta) throw new Error(`${dir}: generation ${id} is missing (${join(dir, 'state.json')})`);
  return { id, step: meta.step, dir, meta, open: () => openModel(join(dir, 'state.safetensors')) };
}

function loadGeneration(stateDir: string, id: number): Generation {
  return loadGenerationDir(generationDir(stateDir, id), id);
}

/** The generations on disk (committed or not), by id. */
export function listGenerations(stateDir: string): number[] {
  if (!existsSync(stateDir)) return [];
  return readdirSync(stateDir)
    .map((e) => /^gen-(\d+)$/.exec(e))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** The committed generation's id (0 when the directory is new or empty). */
export function committedGeneration(stateDir: string): number {
  const p = join(stateDir, 'CURRENT');
  if (!existsSync(p)) return 0;
  const m = /^gen-(\d+)\s*$/.exec(readFileSync(p, 'utf8'));
  if (!m) throw new Error(`${p}: malformed`);
  return Number(m[1]);
}

/** The generation a merge continues from: `id` when given (the daemon's record; 0: the base), else CURRENT. */
export function openGeneration(stateDir: string, id?: number): Generation | null {
  const s = id ?? committedGeneration(stateDir);
  return s === 0 ? null : loadGeneration(stateDir, s);
}

/** A generation being written: files go into `tmpDir`; `seal()` renames it into place. */
export interface PendingGeneration {
  id: number;
  tmpDir: string;
  seal(meta: StateMeta): Generation;
  discard(): void;
}

/** `id` 0: an intermediate state (`.replay-<step>`), removed by the caller once the next step is sealed. */
export function beginGeneration(stateDir: string, id: number, step: number): PendingGeneration {
  mkdirSync(stateDir, { recursive: true });
  const final = id === 0 ? join(stateDir, `.replay-${step}`) : generationDir(stateDir, id);
  const tmpDir = join(stateDir, `.${id === 0 ? `replay-${step}` : genName(id)}.tmp`);
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir);
  return {
    id,
    tmpDir,
    seal(meta) {
      writeFileAtomic(join(tmpDir, 'state.json'), JSON.stringify(meta, null, 1));
      fsyncDirSync(tmpDir);
      // an uncommitted generation of this number from an interrupted run is replaced
      rmSync(final, { recursive: true, force: true });
      renameSync(tmpDir, final);
      fsyncDirSync(stateDir);
      return loadGenerationDir(final, id);
    },
    discard() {
      rmSync(tmpDir, { recursive: true, force: true });
    },
  };
}

/** Point CURRENT at generation `id` atomically. */
export function commitGeneration(stateDir: string, id: number): void {
  writeFileAtomic(join(stateDir, 'CURRENT'), genName(id) + '\n');
}

const isLeftover = (e: string) => (e.startsWith('.gen-') && e.endsWith('.tmp')) || e.startsWith('.replay-');

/** Remove generations other than `keep` (and dot leftovers). */
export async function pruneGenerations(stateDir: string, keep: readonly number[]): Promise<void> {
  const names = new Set(keep.map(genName));
  for (const e of readdirSync(stateDir)) {
    if ((e.startsWith('gen-') && !names.has(e)) || isLeftover(e)) {
      // off the event loop: unlinking a model-sized state file takes ext4 up to a few hundred ms
      await rm(join(stateDir, e), { recursive: true, force: true });
    }
  }
}

/**
 * Remove generations numbered above `id` (state written by a merge that was never committed, or
 * states of versions a rollback left: no ancestor of a version is numbered above it).
 */
export function discardAfter(stateDir: string, id: number): void {
  if (!existsSync(stateDir)) return;
  for (const e of readdirSync(stateDir)) {
    const m = /^gen-(\d+)$/.exec(e);
    if ((m && Number(m[1]) > id) || isLeftover(e)) rmSync(join(stateDir, e), { recursive: true, force: true });
  }
}
