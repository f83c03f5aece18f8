import { basename } from 'node:path';
import { openModel } from '../../io/model.js';
import { InputError, type ModelReader } from '../../io/types.js';
import { validateAgainstBase } from '../../merge/validate.js';
import type { Store } from '../../store/index.js';
import { checkpointSha256 } from '../checkpoint-hash.js';
import { entrySize, safeFiles, safeLstat } from './entry-stats.js';
import type { RejectedEntry } from './quarantine.js';

/**
 * Validation of an entry readiness handed over: what the store already knows of it, its sha256,
 * the checks against the base (headers, tensor names, shapes, dtypes, values: docs/architecture.md,
 * bad inputs), and the store's duplicate check, which is part of queueing it.
 */
export interface ValidationContext {
  store: Store;
  pipeline: string;
  base: ModelReader;
}

/** An entry hashed and valid: what is queued. */
export type CheckedEntry = Required<RejectedEntry>;

export type Verdict =
  /** nothing to do: recorded before a restart, or removed by its producer meanwhile */
  | { kind: 'skip' }
  /** a rejection recorded before a crash whose move to quarantine did not happen yet */
  | { kind: 'unmoved-rejection'; path: string; target: string; reason: string }
  | { kind: 'reject'; entry: RejectedEntry; reason: string }
  | { kind: 'queued'; entry: CheckedEntry; queuePosition: number };

/**
 * Decides on the entry at `path`. `rejectReason` is readiness's, when it already knows the entry
 * is bad. Throws only for failures that are not the entry's own (SQLite, the disk).
 */
export async function validateEntry(
  ctx: ValidationContext,
  path: string,
  rejectReason: string | null,
): Promise<Verdict> {
  const entry: RejectedEntry = { name: basename(path), path, size: entrySize(path) };
  const prior = priorVerdict(ctx, entry);
  if (prior) return prior;
  if (rejectReason) return { kind: 'reject', entry, reason: rejectReason };
  // A file that cannot be read (a shard the index names but that never came, after the
  // incomplete timeout) must be rejected like any bad input, not dropped with an error log: the
  // checks against the base name the problem better, so the hash error is only the reason of
  // last resort.
  let unreadable: Error | null = null;
  try {
    entry.sha256 = await checkpointSha256(path, safeFiles(path));
  } catch (e) {
    unreadable = e as Error;
  }
  if (!safeLstat(path)) return { kind: 'skip' };
  const invalid = checkAgainstBase(ctx.base, path);
  if (invalid) return { kind: 'reject', entry, reason: invalid };
  if (entry.sha256 === undefined)
    return { kind: 'reject', entry, reason: `cannot be read: ${unreadable?.message ?? 'unknown error'}` };
  return enqueue(ctx, { ...entry, sha256: entry.sha256 });
}

/** What the store recorded of this path before (a restart, a crash), if that settles it. */
function priorVerdict(ctx: ValidationContext, entry: RejectedEntry): Verdict | null {
  const known = ctx.store.findByPath(ctx.pipeline, entry.path);
  if (!known) return null;
  if (known.status !== 'rejected' && known.size === entry.size) return { kind: 'skip' };
  if (known.status === 'rejected' && known.quarantine_path)
    return {
      kind: 'unmoved-rejection',
      path: entry.path,
      target: known.quarantine_path,
      reason: known.reason ?? 'rejected',
    };
  return null;
}

/** Why the checkpoint at `path` cannot be merged onto `base`, or null when it can. */
function checkAgainstBase(base: ModelReader, path: string): string | null {
  try {
    const model = openModel(path);
    try {
      validateAgainstBase(base, model);
    } finally {
      model.close();
    }
    return null;
  } catch (e) {
    return e instanceof InputError ? e.reason : (e as Error).message;
  }
}

/** Queues a valid checkpoint; the same content already queued, merging or merged is a duplicate. */
function enqueue(ctx: ValidationContext, entry: CheckedEntry): Verdict {
  const r = ctx.store.enqueue(ctx.pipeline, entry);
  if (r.outcome === 'duplicate')
    return {
      kind: 'reject',
      entry,
      reason: `duplicate: same sha256 as ${r.checkpoint.name} (${r.checkpoint.status})`,
    };
  if (r.outcome === 'known') return { kind: 'skip' };
  return { kind: 'queued', entry, queuePosition: ctx.store.queued(ctx.pipeline).length };
}
