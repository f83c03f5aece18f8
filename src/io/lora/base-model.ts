/**
 * Does the adapter belong to this base? PEFT records base_model_name_or_path; where that names a
 * local folder, its config.json must describe the same model as the base folder's (else refused);
 * where cmerge cannot look (a hub id with no local copy), it says so in a warning: the shape checks
 * still stand between a wrong base and a silently wrong merge.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { InputError } from '../types.js';

const CONFIG = 'config.json';
/** keys that differ between two saves of one model */
const VOLATILE = new Set(['_name_or_path', 'transformers_version', 'dtype', 'torch_dtype', 'use_cache']);

/** Warnings for what could not be checked; InputError when the adapter names another model. */
export function checkBaseModel(adapterDir: string, named: string | null, baseDir: string | null): string[] {
  if (!named) return [`${adapterDir}: adapter_config.json names no base model; only the shapes were checked`];
  const baseConfig = baseDir ? readConfig(join(baseDir, CONFIG)) : null;
  const local = localFolder(adapterDir, named);
  if (local && baseDir && sameFolder(local, baseDir)) return [];
  if (local && baseConfig) {
    const otherConfig = readConfig(join(local, CONFIG));
    const diff = otherConfig && firstDifference(otherConfig, baseConfig);
    if (diff)
      throw new InputError(
        adapterDir,
        `the adapter was trained on ${named}, a different model than the base (config.json ${diff})`,
      );
    return [];
  }
  if (baseConfig && baseConfig._name_or_path === named) return [];
  return [`${adapterDir}: the adapter names base ${named}, which cmerge cannot compare with the base; shapes checked`];
}

/** `named` as a folder holding config.json: absolute, next to the adapter, or from the working directory. */
function localFolder(adapterDir: string, named: string): string | null {
  const candidates = isAbsolute(named) ? [named] : [join(dirname(adapterDir), named), resolve(named)];
  for (const c of candidates) {
    try {
      if (statSync(c).isDirectory() && existsSync(join(c, CONFIG))) return c;
    } catch {
      // not there: try the next
    }
  }
  return null;
}

function sameFolder(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

function readConfig(path: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function firstDifference(a: Record<string, unknown>, b: Record<string, unknown>): string | null {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !VOLATILE.has(k)).sort();
  for (const k of keys) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k]))
      return `${k}: ${JSON.stringify(a[k])} there, ${JSON.stringify(b[k])} in the base`;
  }
  return null;
}
