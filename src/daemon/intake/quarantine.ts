import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Store } from '../../store/index.js';
import { fsyncDirSync } from '../../util/fsync.js';
import { safeLstat } from './entry-stats.js';

/**
 * Quarantine: where rejected checkpoints go, `<drop>/.quarantine/`, each with a `.reason.txt`
 * beside it. Nothing is ever deleted (see docs/architecture.md, intake).
 */

/** Where a rejected checkpoint goes: `<drop>/.quarantine/<name>` (a new suffix if taken). */
export function quarantineTarget(drop: string, path: string): string {
  const dir = join(drop, '.quarantine');
  const name = basename(path);
  let target = join(dir, name);
  for (let i = 1; existsSync(target) || existsSync(`${target}.reason.txt`); i++) target = join(dir, `${name}.${i}`);
  return target;
}

/**
 * Moves a rejected checkpoint (file, folder, or the symlink itself, never its target) into
 * quarantine with a `.reason.txt` beside it. Never deletes anything. False when the path is gone
 * (lstat-based: a dangling symlink still exists as an entry to move).
 */
export function moveToQuarantine(path: string, target: string, reason: string): boolean {
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(`${target}.reason.txt`, `${new Date().toISOString()} ${basename(path)}: ${reason}\n`);
  if (!safeLstat(path)) return false;
  renameSync(path, target);
  fsyncDirSync(dirname(target));
  return true;
}

/** A drop-folder entry being rejected: what is known of it when the reason is found. */
export interface RejectedEntry {
  name: string;
  path: string;
  size: number;
  /** absent when rejected before it could be hashed */
  sha256?: string;
}

/**
 * Rejects an entry of `drop`: the reason is recorded in the store first, then the entry is moved,
 * so that a crash in between leaves a row whose move the next intake finishes. Returns where it went.
 */
export function quarantineEntry(
  store: Store,
  pipeline: { name: string; drop: string },
  entry: RejectedEntry,
  reason: string,
): string {
  const target = quarantineTarget(pipeline.drop, entry.path);
  store.reject(pipeline.name, entry, reason, target);
  moveToQuarantine(entry.path, target, reason);
  return target;
}
