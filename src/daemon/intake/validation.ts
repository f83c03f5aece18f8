import { basename } from 'node:path';
import { isAdapterFolder } from '../../io/lora/adapter.js';
import { openModel } from '../../io/model.js';
import { InputError, type ModelReader } from '../../io/types.js';
import { validateAgainstBase } from '../../merge/validate.js';
import type { AdapterRecord, Store } from '../../store/index.js';
import { checkpointHashes, type CheckpointHashes } from '../checkpoint-hash.js';
import { adapterReason, adapterRecord, checkAdapter, type AdapterSummary } from './adapter-check.js';
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
  /** the base's folder, which an adapter's base_model_name_or_path is compared with; null or absent: a single-file base */
  baseDir?: string | null;
}

/** An entry hashed and valid: what is queued (`adapter` when it is a LoRA adapter folder, else null). */
export type CheckedEntry = Required<RejectedEntry> & { adapter: AdapterRecord | null };

export type Verdict =
  /** nothing to do: recorded before a restart, or removed by its producer meanwhile */
  | { kind: 'skip' }
  /** a rejection recorded before a crash whose move to quarantine did not happen yet */
  | { kind: 'unmoved-rejection'; path: string; target: string; reason: string }
  | { kind: 'reject'; entry: RejectedEntry; reason: string }
  /** `warnings`: what the checks could not verify (an adapter's base they could not compare), to be logged */
  | { kind: 'queued'; entry: CheckedEntry; queuePosition: number; warnings: readonly string[] };

/** What the checks against the base found: a reason to reject, or what the checkpoint is. */
type BaseCheck = { reason: string } | { adapter: AdapterSummary | null };

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
  let hashes: CheckpointHashes | null = null;
  try {
    hashes = await checkpointHashes(path, safeFiles(path));
    entry.sha256 = hashes.sha256;
  } catch (e) {
    unreadable = e as Error;
  }
  if (!safeLstat(path)) return { kind: 'skip' };
  const checked = checkAgainstBase(ctx, path);
  if ('reason' in checked) return { kind: 'reject', entry, reason: checked.reason };
  if (!hashes) return { kind: 'reject', entry, reason: `cannot be read: ${unreadable?.message ?? 'unknown error'}` };
  const adapter = checked.adapter && adapterRecord(checked.adapter, hashes);
  return enqueue(ctx, { ...entry, sha256: hashes.sha256, adapter }, checked.adapter?.warnings ?? []);
}

/** What the store recorded of this path before (a restart, a crash), if that settles it. */
function priorVerdict(ctx: ValidationContext, entry: RejectedEntry): Verdict | null {
  const known = ctx.store.findByPath(ctx.pipeline, entry.path);
  if (!known) return null;
  if (known.status !== 'rejected' && known.size === entry.size) return { kind: 'skip' };
  // a rejection whose file is back with other content (size) is a new attempt; the same file put
  // back by hand is quarantined again: `cmerge requeue` is the way to retry it (docs/operations.md)
  if (known.status === 'rejected' && known.quarantine_path && known.size === entry.size)
    return {
      kind: 'unmoved-rejection',
      path: entry.path,
      target: known.quarantine_path,
      reason: known.reason ?? 'rejected',
    };
  return null;
}

/**
 * Why the checkpoint at `path` cannot be merged onto the base, or what it is when it can: a LoRA
 * adapter folder (adapter_config.json) is opened as an adapter, anything else as a model.
 */
function checkAgainstBase(ctx: ValidationContext, path: string): BaseCheck {
  const adapter = isAdapterFolder(path);
  try {
    if (adapter) return { adapter: checkAdapter(path, ctx.base, ctx.baseDir ?? null) };
    const model = openModel(path);
    try {
      validateAgainstBase(ctx.base, model);
    } finally {
      model.close();
    }
    return { adapter: null };
  } catch (e) {
    if (!(e instanceof InputError)) return { reason: (e as Error).message };
    return { reason: adapter ? adapterReason(path, e.file, e.reason) : e.reason };
  }
}

/** Queues a valid checkpoint; the same content already queued, merging or merged is a duplicate. */
function enqueue(ctx: ValidationContext, entry: CheckedEntry, warnings: readonly string[]): Verdict {
  const r = ctx.store.enqueue(ctx.pipeline, entry);
  if (r.outcome === 'duplicate')
    return {
      kind: 'reject',
      entry,
      reason: `duplicate: same sha256 as ${r.checkpoint.name} (${r.checkpoint.status})`,
    };
  if (r.outcome === 'known') return { kind: 'skip' };
  return { kind: 'queued', entry, queuePosition: ctx.store.queued(ctx.pipeline).length, warnings };
}
