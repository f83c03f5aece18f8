import { existsSync, readdirSync, statfsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { formatBytes } from '../config/index.js';
import { openModel } from '../io/model.js';
import { FLOAT_DTYPES, type DType } from '../io/types.js';
import { baseFilesToCopy } from '../publish/index.js';

/**
 * Room on disk before a merge (docs/operations.md, "Room on disk"): the next state generation and
 * the next version are estimated from what the last ones took, or from the base model before the
 * first, and compared with what the file systems they go to have free. A merge that would run out
 * of space is not started: the pipeline pauses until there is room, instead of failing mid-write.
 */

/** Bytes about to be written below `dir` (which need not exist yet). */
export interface RoomNeed {
  what: string;
  dir: string;
  bytes: number;
}

/** A file system without room for the needs that go to it. */
export interface Shortfall {
  /** the needs on this file system, e.g. "the state generation (1.2 GiB) and the version (2.2 GiB)" */
  what: string;
  /** the nearest existing folder of the first need: where `free` was measured */
  at: string;
  need: number;
  free: number;
}

/** The nearest folder of `dir` that exists (a repository's pipeline folder before its first version). */
function existingAncestor(dir: string): string {
  let d = dir;
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  return d;
}

/**
 * Needs summed per file system (state and repository often share one) and compared with its free
 * space for unprivileged writers, leaving `reserve` bytes free; the file systems without room.
 */
export function shortfalls(needs: RoomNeed[], reserve: number): Shortfall[] {
  const byDevice = new Map<number, { at: string; needs: RoomNeed[] }>();
  for (const need of needs) {
    const at = existingAncestor(need.dir);
    const dev = statSync(at).dev;
    const group = byDevice.get(dev) ?? { at, needs: [] };
    group.needs.push(need);
    byDevice.set(dev, group);
  }
  const short: Shortfall[] = [];
  for (const { at, needs: group } of byDevice.values()) {
    const fs = statfsSync(at);
    const free = fs.bavail * fs.bsize;
    const need = group.reduce((s, n) => s + n.bytes, 0);
    if (need + reserve > free) {
      const what = group.map((n) => `${n.what} (${formatBytes(n.bytes)})`).join(' and ');
      short.push({ what, at, need: need + reserve, free });
    }
  }
  return short;
}

/** One line for the log and the status: what does not fit where. */
export function describeShortfalls(short: Shortfall[], reserve: number): string {
  const plus = reserve > 0 ? ` plus the ${formatBytes(reserve)} reserve` : '';
  const parts = short.map(
    (s) => `${s.what}${plus}: ${formatBytes(s.need)} needed on the file system of ${s.at}, ${formatBytes(s.free)} free`,
  );
  return `not enough room on disk: ${parts.join('; ')}`;
}

/** Bytes of the files below `path` (a file: its size; missing: 0). */
export function diskBytes(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const name of readdirSync(path)) total += diskBytes(join(path, name));
  return total;
}

const DTYPE_BYTES: Partial<Record<DType, number>> = { F64: 8, F32: 4, F16: 2, BF16: 2 };

/** What a merge writes, estimated from the base model alone (before the first state and version exist). */
export interface BaseEstimate {
  /** the state's float32 tensors: every float tensor of the base, as float32 (an upper bound) */
  stateBytes: number;
  /** the published version: the weights in the output dtype plus the base folder's other files, copied */
  versionBytes: number;
}

/** Reads the base's header (no tensor data) and sizes its folder's other files. */
export function estimateFromBase(base: string, outDtype: DType | undefined): BaseEstimate {
  const model = openModel(base);
  let stateBytes = 0;
  let weights = 0;
  try {
    for (const t of model.tensors.values()) {
      const float = FLOAT_DTYPES.has(t.dtype);
      if (float) stateBytes += t.size * 4;
      weights += float && outDtype ? t.size * DTYPE_BYTES[outDtype]! : t.byteLength;
    }
  } finally {
    model.close();
  }
  return { stateBytes, versionBytes: weights + otherFiles(base) };
}

/** Bytes of the files a publication copies from a base folder (a single file: none). */
function otherFiles(base: string): number {
  if (!statSync(base).isDirectory()) return 0;
  return baseFilesToCopy(base).reduce((total, f) => total + f.bytes, 0);
}
