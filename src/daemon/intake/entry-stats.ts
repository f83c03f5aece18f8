import { lstatSync, readdirSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { findCheckpointFiles } from '../../io/model.js';

/** Reads of a drop-folder entry that may vanish or change at any moment: null instead of a throw. */

export function safeLstat(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

export function safeStat(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

/** the weight files of a checkpoint (findCheckpointFiles), null when not one or not readable */
export function safeFiles(path: string): string[] | null {
  try {
    return findCheckpointFiles(path);
  } catch {
    return null;
  }
}

/** size and mtime of the entry itself: enough to notice that a taken name holds new content */
export function quickSignature(path: string): string {
  const s = safeLstat(path);
  return s ? `${s.size}:${s.mtimeMs}` : '';
}

/** bytes of a file, or of the files of a folder checkpoint */
export function entrySize(path: string): number {
  const s = safeStat(path);
  if (!s) return 0;
  if (!s.isDirectory()) return s.size;
  return (safeFiles(path) ?? []).reduce((acc, f) => acc + (safeStat(f)?.size ?? 0), 0);
}

/** every name in a folder with its size and mtime ('' when unreadable): any write in it changes this */
export function folderListing(path: string): string {
  let names: string[];
  try {
    names = readdirSync(path).sort();
  } catch {
    return '';
  }
  return names
    .map((n) => {
      const s = safeLstat(join(path, n));
      return s ? `${n}=${s.size}:${s.mtimeMs}` : n;
    })
    .join('|');
}
