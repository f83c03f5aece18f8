import { existsSync, lstatSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fsyncDirSync } from '../util/fsync.js';

/** Where a rejected checkpoint goes: `<drop>/.quarantine/<name>` (a new suffix if taken). */
export function quarantineTarget(drop: string, path: string): string {
  const dir = join(drop, '.quarantine');
  const name = basename(path);
  let target = join(dir, name);
  for (let i = 1; existsSync(target) || existsSync(`${target}.reason.txt`); i++) target = join(dir, `${name}.${i}`);
  return target;
}

/** lstat-based: a dangling symlink still exists as an entry to move */
function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Moves a rejected checkpoint (file, folder, or the symlink itself, never its target) into
 * quarantine with a `.reason.txt` beside it. Never deletes anything. False when the path is gone.
 */
export function moveToQuarantine(path: string, target: string, reason: string): boolean {
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(`${target}.reason.txt`, `${new Date().toISOString()} ${basename(path)}: ${reason}\n`);
  if (!present(path)) return false;
  renameSync(path, target);
  fsyncDirSync(dirname(target));
  return true;
}
