import { readdirSync, realpathSync, type Stats } from 'node:fs';
import { basename, sep } from 'node:path';
import type { Logger } from 'winston';
import { findCheckpointFiles, notCheckpointReason } from '../../io/model.js';
import { probeComplete } from '../../io/safetensors/header.js';
import { safeLstat, safeStat } from './entry-stats.js';

/**
 * Readiness: when is a drop-folder entry written completely? A candidate is taken once it is
 * complete (size = 8 + header + last offset; every shard of an index present and complete; a LoRA
 * adapter folder's adapter_config.json and adapter_model.safetensors both present, the latter
 * complete) and
 * its size signature has not changed for the settle window; one that stays incomplete is taken
 * (to be rejected) after the incomplete timeout. A symlink that leads out of the drop folder is
 * rejected at once. Only cheap synchronous reads: prefix, header, sizes.
 */

/** What one look at an entry found. */
export type Readiness =
  | { kind: 'gone' }
  | { kind: 'wait'; signature: string; incomplete: boolean }
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
      return 'drop';
    }
    if (r.kind === 'gone') return 'drop';
    if (r.signature !== c.signature) {
      c.signature = r.signature;
      c.stableSince = now;
      return 'keep';
    }
    const unchangedFor = now - c.stableSince;
    if (unchangedFor < this.windows.settleMs) return 'keep';
    if (r.kind === 'wait' && (!r.incomplete || unchangedFor < this.windows.incompleteTimeoutMs)) return 'keep';
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
  if (probe.pending) return { kind: 'wait', signature, incomplete: true };
  return { kind: 'ready', signature }; // when not complete either, validation gives the reason
}

function inspectFolder(path: string, stats: Stats, realDrop: string): Readiness {
  let files: string[] | null;
  try {
    files = findCheckpointFiles(path);
  } catch {
    return { kind: 'ready', signature: `bad-index:${stats.mtimeMs}` }; // validation gives the reason
  }
  if (!files) return { kind: 'wait', signature: `empty:${readdirSync(path).length}`, incomplete: true };
  let incomplete = false;
  const sizes: string[] = [];
  for (const f of files) {
    const fileLink = safeLstat(f);
    if (!fileLink) {
      incomplete = true;
      sizes.push('-');
      continue;
    }
    const escape = symlinkEscape(f, fileLink, realDrop);
    if (escape) return { kind: 'reject', reason: `${basename(f)}: ${escape}`, signature: 'link' };
    // an index or adapter_config.json (or a refused adapter_model.bin): its size only
    if (!f.endsWith('.safetensors')) {
      sizes.push(`${fileLink.size}`);
      continue;
    }
    const probe = probeComplete(f);
    sizes.push(`${probe.actualSize}`);
    if (probe.pending) incomplete = true;
  }
  const signature = sizes.join(',');
  return incomplete ? { kind: 'wait', signature, incomplete: true } : { kind: 'ready', signature };
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
