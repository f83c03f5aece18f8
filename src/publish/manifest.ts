import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST } from './layout.js';

/** One merged checkpoint, in merge order. */
export interface ManifestCheckpoint {
  name: string;
  sha256: string;
  /** ISO 8601 */
  merged_at: string;
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
export function manifestProblems(m: unknown): string[] {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return ['not a JSON object'];
  const o = m as Record<string, unknown>;
  const p: string[] = [];
  if (!Number.isSafeInteger(o.version) || (o.version as number) < 1) p.push('version is not a positive integer');
  if (o.parent !== null && !Number.isSafeInteger(o.parent)) p.push('parent is neither an integer nor null');
  for (const k of ['pipeline', 'method', 'created_at', 'cmerge_version', 'engine'] as const) {
    if (typeof o[k] !== 'string') p.push(`${k} is not a string`);
  }
  for (const k of ['params', 'metrics', 'base'] as const) {
    if (typeof o[k] !== 'object' || o[k] === null || Array.isArray(o[k])) p.push(`${k} is not an object`);
  }
  if (!Array.isArray(o.checkpoints)) p.push('checkpoints is not an array');
  const files = o.files;
  if (typeof files !== 'object' || files === null || Array.isArray(files)) {
    p.push('files is not an object');
  } else {
    for (const [f, h] of Object.entries(files)) {
      if (typeof h !== 'string' || !HEX64.test(h)) p.push(`files["${f}"] is not a sha256`);
      if (f.startsWith('/') || f.split('/').includes('..')) p.push(`files["${f}"] leaves the version folder`);
    }
  }
  return p;
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
