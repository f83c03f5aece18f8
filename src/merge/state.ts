import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { openModel } from '../io/model.js';
import type { ModelReader } from '../io/types.js';
import type { Scalars, TensorKind } from '../methods/types.js';
import { fsyncDirSync, writeFileAtomic } from '../util/fsync.js';

/**
 * The merge-state directory: one folder per generation (gen-N = the state after N merged
 * checkpoints) holding `state.safetensors` (float32 state tensors) and `state.json` (scalars and
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
  step: number;
  dir: string;
  meta: StateMeta;
  open(): ModelReader;
}

const genName = (step: number) => `gen-${String(step).padStart(8, '0')}`;

export function generationDir(stateDir: string, step: number): string {
  return join(stateDir, genName(step));
}

function loadGeneration(stateDir: string, step: number): Generation {
  const dir = generationDir(stateDir, step);
  const metaPath = join(dir, 'state.json');
  if (!existsSync(metaPath)) throw new Error(`${stateDir}: generation ${step} is missing (${metaPath})`);
  const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as StateMeta;
  if (meta.format !== STATE_FORMAT) throw new Error(`${metaPath}: unsupported state format ${meta.format}`);
  return { step, dir, meta, open: () => openModel(join(dir, 'state.safetensors')) };
}

/** The committed step (0 when the directory is new or empty). */
export function currentStep(stateDir: string): number {
  const p = join(stateDir, 'CURRENT');
  if (!existsSync(p)) return 0;
  const m = /^gen-(\d+)\s*$/.exec(readFileSync(p, 'utf8'));
  if (!m) throw new Error(`${p}: malformed`);
  return Number(m[1]);
}

/** The generation a merge continues from: `step` when given (the daemon's record), else CURRENT. */
export function openGeneration(stateDir: string, step?: number): Generation | null {
  const s = step ?? currentStep(stateDir);
  return s === 0 ? null : loadGeneration(stateDir, s);
}

/** A generation being written: files go into `tmpDir`; `seal()` renames it into place. */
export interface PendingGeneration {
  step: number;
  tmpDir: string;
  seal(meta: StateMeta): Generation;
  discard(): void;
}

export function beginGeneration(stateDir: string, step: number): PendingGeneration {
  mkdirSync(stateDir, { recursive: true });
  const final = generationDir(stateDir, step);
  const tmpDir = join(stateDir, `.${genName(step)}.tmp`);
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir);
  return {
    step,
    tmpDir,
    seal(meta) {
      writeFileAtomic(join(tmpDir, 'state.json'), JSON.stringify(meta, null, 1));
      fsyncDirSync(tmpDir);
      // an uncommitted generation of this number from an interrupted run is replaced
      rmSync(final, { recursive: true, force: true });
      renameSync(tmpDir, final);
      fsyncDirSync(stateDir);
      return loadGeneration(stateDir, step);
    },
    discard() {
      rmSync(tmpDir, { recursive: true, force: true });
    },
  };
}

/** Point CURRENT at `step` atomically. */
export function commitGeneration(stateDir: string, step: number): void {
  writeFileAtomic(join(stateDir, 'CURRENT'), genName(step) + '\n');
}

/** Remove generations other than `keep` (and dot leftovers). */
export async function pruneGenerations(stateDir: string, keep: readonly number[]): Promise<void> {
  const names = new Set(keep.map(genName));
  for (const e of readdirSync(stateDir)) {
    if ((e.startsWith('gen-') && !names.has(e)) || (e.startsWith('.gen-') && e.endsWith('.tmp'))) {
      // off the event loop: unlinking a model-sized state file takes ext4 up to a few hundred ms
      await rm(join(stateDir, e), { recursive: true, force: true });
    }
  }
}

/** Remove generations after `step` (state written by a merge that was never committed). */
export function discardAfter(stateDir: string, step: number): void {
  if (!existsSync(stateDir)) return;
  for (const e of readdirSync(stateDir)) {
    const m = /^gen-(\d+)$/.exec(e);
    if ((m && Number(m[1]) > step) || (e.startsWith('.gen-') && e.endsWith('.tmp')))
      rmSync(join(stateDir, e), { recursive: true, force: true });
  }
}
