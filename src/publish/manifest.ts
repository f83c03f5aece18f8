import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST } from './layout.js';
import type { AdapterRecord } from '../store/types.js';

/** One merged checkpoint, in merge order. */
export interface ManifestCheckpoint {
  name: string;
  /** for a folder, the hash of its files' names and hashes (for an adapter: both files) */
  sha256: string;
  /** ISO 8601 */
  merged_at: string;
  /** present only when the checkpoint was a PEFT LoRA adapter folder (docs/lora.md) */
  adapter?: ManifestAdapter;
  /** the float dtypes it was stored in ("F32", "BF16+F32"); absent when the store has none (merged before it recorded dtypes) */
  dtype?: string;
}

/** What an adapter checkpoint was: the store's record of it (docs/lora.md). */
export type ManifestAdapter = AdapterRecord;

/** A checkpoint's manifest entry: its fields in the manifest's order, `adapter` only for adapters. */
export function manifestCheckpoint(c: ManifestCheckpoint): ManifestCheckpoint {
  const entry: ManifestCheckpoint = { name: c.name, sha256: c.sha256, merged_at: c.merged_at };
  if (c.dtype) entry.dtype = c.dtype;
  if (c.adapter) entry.adapter = c.adapter;
  return entry;
}

/**
 * `<N>/manifest.json`. Written last: its presence marks a complete version. `files` covers every
 * file of the version except manifest.json itself (README.md included).
 */
export interface Manifest {
  format: 'cmerge-version/1';
  version: number;
  parent: number | null;
  pipeline: string;
  method: string;
  params: Record<string, unknown>;
  base: { path: string; sha256: string };
  checkpoints: ManifestCheckpoint[];
  /** relative path ('/' separated) -> sha256 hex */
  files: Record<string, string>;
  /** relative path -> bytes; lets a quick check catch truncation without hashing */
  file_sizes: Record<string, number>;
  /** ISO 8601 */
  created_at: string;
  cmerge_version: string;
  engine: string;
  metrics: Record<string, unknown>;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Reasons a parsed manifest.json is not a usable Manifest; [] when it is. */
export function manifestProblems(parsed: unknown): string[] {
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return ['not a JSON object'];
  const manifest = parsed as Record<string, unknown>;
  const problems: string[] = [];
  if (!Number.isSafeInteger(manifest.version) || (manifest.version as number) < 1)
    problems.push('version is not a positive integer');
  if (manifest.parent !== null && !Number.isSafeInteger(manifest.parent))
    problems.push('parent is neither an integer nor null');
  for (const key of ['pipeline', 'method', 'created_at', 'cmerge_version', 'engine'] as const) {
    if (typeof manifest[key] !== 'string') problems.push(`${key} is not a string`);
  }
  for (const key of ['params', 'metrics', 'base'] as const) {
    const value = manifest[key];
    if (typeof value !== 'object' || value === null || Array.isArray(value)) problems.push(`${key} is not an object`);
  }
  if (!Array.isArray(manifest.checkpoints)) problems.push('checkpoints is not an array');
  const files = manifest.files;
  if (typeof files !== 'object' || files === null || Array.isArray(files)) {
    problems.push('files is not an object');
  } else {
    for (const [file, hash] of Object.entries(files)) {
      if (typeof hash !== 'string' || !HEX64.test(hash)) problems.push(`files["${file}"] is not a sha256`);
      if (file.startsWith('/') || file.split('/').includes('..'))
        problems.push(`files["${file}"] leaves the version folder`);
    }
  }
  return problems;
}

/** Read and check `<dir>/manifest.json`; throws with a readable reason when unusable. */
export async function readManifest(dir: string): Promise<Manifest> {
  const text = await readFile(join(dir, MANIFEST), 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${join(dir, MANIFEST)}: not JSON (${(err as Error).message})`);
  }
  const problems = manifestProblems(parsed);
  if (problems.length) throw new Error(`${join(dir, MANIFEST)}: ${problems.join('; ')}`);
  return parsed as Manifest;
}
