import { existsSync, realpathSync, type Stats } from 'node:fs';
import { basename, join, sep } from 'node:path';
import type { Logger } from 'winston';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../../io/lora/config.js';
import { findCheckpointFiles, notCheckpointReason } from '../../io/model.js';
import { probeComplete } from '../../io/safetensors/header.js';
import type { WaitingReason } from '../../store/index.js';
import { folderListing, safeLstat, safeStat } from './entry-stats.js';
import type { WaitingLedger } from './waiting.js';

/**
 * Readiness: when is a drop-folder entry written completely? A candidate is taken once it is
 * complete (size = 8 + header + last offset; every shard of an index present and complete; a LoRA
 * adapter folder's adapter_config.json and adapter_model.safetensors both present, the latter
 * complete) and
 * its size signature has not changed for the settle window; one that stays incomplete is taken
 * (to be rejected) after the incomplete timeout, counted from its last change (size or mtime), so a
 * writer that is still going is never rejected. A symlink that leads out of the drop folder is
 * rejected at once. Only cheap synchronous reads: prefix, header, sizes.
 */

/** What a waiting (incomplete) entry holds so far: shown by status and the log. */
export interface WaitInfo {
  /** bytes so far (a folder: its checkpoint files) */
  size: number;
  /** what the header(s) say, null when not known yet (header incomplete, a file missing) */
  expected: number | null;
  reason: WaitingReason;
}

/** What one look at an entry found. */
export type Readiness =
  | { kind: 'gone' }
  | { kind: 'wait'; signature: string; wait: WaitInfo }
  | { kind: 'ready'; signature: string }
  | { kind: 'reject'; reason: string; signature: string };

/** A candidate to take now; `rejectReason` when readiness already knows it is bad. */
export interface ReadyEntry {
  path: string;
  rejectReason: string | null;
}

/** The windows readiness judges by, ms. */
export interface ReadinessWindows {
  /** how long the signature must stay unchanged (the pipeline's settle_ms) */
  settleMs: number;
  /** how long an incomplete entry may stay unchanged before it is taken to be rejected */
  incompleteTimeoutMs: number;
}

interface Candidate {
  signature: string;
  stableSince: number;
}

/** Entries seen but not yet taken, in arrival order. */
export class Candidates {
  private readonly entries = new Map<string, Candidate>();

  constructor(
    private readonly windows: ReadinessWindows,
    private readonly log: Logger,
    /** records waiting entries (status, restarts); none: nothing recorded */
    private readonly ledger: WaitingLedger | null = null,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** An arrival or a change: the entry is looked at again at the next poll. */
  add(path: string, now: number): void {
    const c = this.entries.get(path);
    if (c) c.stableSince = Math.min(c.stableSince, now);
    else this.entries.set(path, { signature: '', stableSince: now });
  }

  /** Looks at every candidate; returns those to take now (removed from the set), in arrival order. */
  poll(now: number, realDrop: string): ReadyEntry[] {
    const ready: ReadyEntry[] = [];
    for (const [path, c] of this.entries) {
      const r = this.judge(path, c, now, realDrop);
      if (r === 'keep') continue;
      this.entries.delete(path);
      if (r !== 'drop') ready.push(r);
    }
    return ready;
  }

  private judge(path: string, c: Candidate, now: number, realDrop: string): ReadyEntry | 'keep' | 'drop' {
    let r: Readiness;
    try {
      r = inspectEntry(path, realDrop);
    } catch (e) {
      // vanished or unreadable between two calls (a race with its producer): the next scan looks again
      this.log.warn(`cannot inspect ${path}: ${(e as Error).message}`);
      this.ledger?.done(path, 'gone', now);
      return 'drop';
    }
    if (r.kind === 'gone') {
      this.ledger?.done(path, 'gone', now);
      return 'drop';
    }
    const changed = r.signature !== c.signature;
    if (changed) {
      // first look after a (re)start: an entry unchanged since its recorded last change keeps it
      const restored = c.signature === '' && r.kind === 'wait' ? this.ledger?.lastChange(path, r.signature) : null;
      c.signature = r.signature;
      c.stableSince = restored ?? now;
    }
    if (r.kind === 'wait') this.ledger?.seen(path, r.signature, r.wait, c.stableSince, now);
    if (changed) return 'keep';
    const unchangedFor = now - c.stableSince;
    if (unchangedFor < this.windows.settleMs) return 'keep';
    if (r.kind === 'wait' && unchangedFor < this.windows.incompleteTimeoutMs) return 'keep';
    this.ledger?.done(path, r.kind === 'wait' ? 'timeout' : 'complete', now);
    return { path, rejectReason: r.kind === 'reject' ? r.reason : null };
  }
}

/** One cheap, synchronous look at an entry of the drop folder (`realDrop`: its real path). */
export function inspectEntry(path: string, realDrop: string): Readiness {
  const link = safeLstat(path);
  if (!link) return { kind: 'gone' };
  const outside = symlinkEscape(path, link, realDrop);
  if (outside) return { kind: 'reject', reason: outside, signature: 'link' };
  const stats = safeStat(path);
  if (!stats) return { kind: 'gone' };
  if (stats.isFile()) return inspectFile(path, stats);
  if (stats.isDirectory()) return inspectFolder(path, stats, realDrop);
  return { kind: 'reject', reason: 'not a regular file or folder', signature: 'special' };
}

function inspectFile(path: string, stats: Stats): Readiness {
  if (!path.endsWith('.safetensors'))
    return { kind: 'reject', reason: notCheckpointReason(path), signature: `${stats.size}` };
  const probe = probeComplete(path);
  const signature = `${probe.actualSize}:${stats.mtimeMs}`;
  // shorter than its prefix, header or data say so far: a slow writer may still be at it
  if (probe.pending)
    return {
      kind: 'wait',
      signature,
      wait: { size: probe.actualSize, expected: probe.expectedSize, reason: 'growing' },
    };
  return { kind: 'ready', signature }; // when not complete either, validation gives the reason
}

function inspectFolder(path: string, stats: Stats, realDrop: string): Readiness {
  let files: string[] | null;
  try {
    files = findCheckpointFiles(path);
  } catch {
    return { kind: 'ready', signature: `bad-index:${stats.mtimeMs}` }; // validation gives the reason
  }
  // every name in it with size and mtime: a shard written as `.name.part` beside the others is a change too
  const listing = folderListing(path);
  if (!files) {
    // adapter weights without their adapter_config.json yet: an adapter, not an empty folder
    const reason = existsSync(join(path, ADAPTER_WEIGHTS)) ? 'missing_adapter_file' : 'no_weights';
    return { kind: 'wait', signature: `empty#${listing}`, wait: { size: 0, expected: null, reason } };
  }
  const look = lookAtFiles(files, realDrop);
  if ('reject' in look) return { kind: 'reject', reason: look.reject, signature: 'link' };
  const signature = `${look.sizes.join(',')}#${listing}`;
  if (!look.missing && !look.growing) return { kind: 'ready', signature };
  const adapter = basename(files[0]!) === ADAPTER_CONFIG;
  const missing: WaitingReason = adapter ? 'missing_adapter_file' : 'missing_shard';
  const wait: WaitInfo = {
    size: look.size,
    expected: look.missing ? null : look.expected,
    reason: look.missing ? missing : 'growing',
  };
  return { kind: 'wait', signature, wait };
}

interface FilesLook {
  sizes: string[];
  /** bytes of the files there */
  size: number;
  /** what their headers say (the other files: their size); null when a header is not complete yet */
  expected: number | null;
  missing: boolean;
  growing: boolean;
}

/** Sizes and completeness of a folder checkpoint's files, or why one may not be read. */
function lookAtFiles(files: string[], realDrop: string): FilesLook | { reject: string } {
  const look: FilesLook = { sizes: [], size: 0, expected: 0, missing: false, growing: false };
  for (const f of files) {
    const fileLink = safeLstat(f);
    if (!fileLink) {
      look.missing = true;
      look.sizes.push('-');
      continue;
    }
    const escape = symlinkEscape(f, fileLink, realDrop);
    if (escape) return { reject: `${basename(f)}: ${escape}` };
    // an index or adapter_config.json (or a refused adapter_model.bin): its size only
    const probe = f.endsWith('.safetensors') ? probeComplete(f) : null;
    const size = probe ? probe.actualSize : fileLink.size;
    const expected = probe ? probe.expectedSize : fileLink.size;
    look.sizes.push(`${size}`);
    look.size += size;
    look.expected = look.expected === null || expected === null ? null : look.expected + expected;
    if (probe?.pending) look.growing = true;
  }
  return look;
}

/** Why a symlink may not be read (it must resolve inside the drop folder), null when fine or no link. */
export function symlinkEscape(path: string, link: Stats, realDrop: string): string | null {
  if (!link.isSymbolicLink()) return null;
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return 'symlink whose target does not exist';
  }
  return real === realDrop || real.startsWith(realDrop + sep)
    ? null
    : `symlink leads out of the drop folder (to ${real})`;
}
