import chokidar, { type FSWatcher } from 'chokidar';
import { lstatSync, mkdirSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import type { Logger } from 'winston';
import type { PipelineConfig } from '../config/index.js';
import { findCheckpointFiles, openModel } from '../io/model.js';
import { probeComplete } from '../io/safetensors/header.js';
import { InputError, type ModelReader } from '../io/types.js';
import { validateAgainstBase } from '../merge/validate.js';
import type { Store } from '../store/index.js';
import { retryDelayMs } from './backoff.js';
import { checkpointSha256 } from './checkpoint-hash.js';
import { moveToQuarantine, quarantineTarget } from './quarantine.js';

/**
 * Intake of one pipeline's drop folder: a full scan at start plus chokidar events name candidate
 * entries (top-level, not dot-named). A candidate is taken when complete (size = 8 + header +
 * last offset, every shard of an index present and complete) and unchanged for the settle window;
 * then it is hashed, checked against the base (design.md §7) and queued in arrival order, or moved
 * to `<drop>/.quarantine/` with its reason recorded. Candidates are handled one at a time, so the
 * queue order is the order they became complete.
 */
export interface IntakeOptions {
  pipeline: PipelineConfig;
  store: Store;
  base: ModelReader;
  log: Logger;
  /** how long a checkpoint may stay incomplete (truncated, missing shard) before it is rejected */
  incompleteTimeoutMs: number;
  onQueued(): void;
  onRejected?(): void;
}

interface Candidate {
  signature: string;
  stableSince: number;
  firstSeen: number;
}

type Readiness =
  | { kind: 'gone' }
  | { kind: 'wait'; signature: string; incomplete: boolean }
  | { kind: 'ready'; signature: string }
  | { kind: 'reject'; reason: string; signature: string };

export class Intake {
  private readonly candidates = new Map<string, Candidate>();
  private readonly inFlight = new Set<string>();
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private realDrop = '';
  /** entries already taken, with the size signature they had: a rescan skips them */
  private readonly taken = new Map<string, string>();
  /** entries whose intake failed for reasons not their own (SQLite, the disk): when to try again */
  private readonly failed = new Map<string, { count: number; until: number }>();
  private lastScan = 0;

  constructor(private readonly o: IntakeOptions) {}

  get drop(): string {
    return this.o.pipeline.drop;
  }

  /** candidates seen but not yet taken (waiting to settle or complete) */
  get pending(): number {
    return this.candidates.size + this.inFlight.size;
  }

  /**
   * Resolves once the watcher is ready. The scan runs after that: an entry renamed in between
   * the scan and the watcher's readiness would otherwise be seen by neither (add() dedupes).
   */
  async start(): Promise<void> {
    mkdirSync(this.drop, { recursive: true });
    this.realDrop = realpathSync(this.drop);
    this.watcher = chokidar.watch(this.drop, {
      ignoreInitial: true,
      depth: 2,
      followSymlinks: false,
      ignored: (p: string) =>
        relative(this.drop, p)
          .split(sep)
          .some((part) => part.startsWith('.')),
    });
    this.watcher.on('all', (_event, p) => this.touch(p));
    this.watcher.on('error', (e) => this.o.log.error(`watcher: ${(e as Error).message}`));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
    this.scan();
    this.timer = setInterval(() => this.tick(), 200);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.watcher?.close();
    this.watcher = null;
    await this.chain;
  }

  /**
   * Entries in the folder count as arrivals, oldest first. Run at start and every few seconds:
   * file events can be lost (inotify queue overflow, network filesystems), a listing cannot.
   */
  private scan(): void {
    this.lastScan = Date.now();
    let names: string[];
    try {
      names = readdirSync(this.drop);
    } catch (e) {
      // the folder vanished or its filesystem failed (NFS): try again at the next scan
      this.o.log.error(`cannot list the drop folder: ${(e as Error).message}`);
      return;
    }
    const entries = names
      .filter((n) => !n.startsWith('.'))
      .filter((n) => {
        const p = join(this.drop, n);
        const sig = this.taken.get(p);
        return sig === undefined || sig !== quickSignature(p);
      })
      .map((n) => ({ path: join(this.drop, n), mtime: safeStat(join(this.drop, n))?.mtimeMs ?? 0 }))
      .sort((a, b) => a.mtime - b.mtime || a.path.localeCompare(b.path));
    for (const e of entries) this.add(e.path);
  }

  private touch(p: string): void {
    const rel = relative(this.drop, p);
    if (!rel || rel.startsWith('..')) return;
    const top = rel.split(sep)[0];
    if (!top.startsWith('.')) this.add(join(this.drop, top));
  }

  private add(path: string): void {
    if (this.inFlight.has(path) || (this.failed.get(path)?.until ?? 0) > Date.now()) return;
    const c = this.candidates.get(path);
    if (c)
      c.stableSince = Math.min(c.stableSince, Date.now()); // re-checked at the next tick
    else this.candidates.set(path, { signature: '', stableSince: Date.now(), firstSeen: Date.now() });
  }

  private tick(): void {
    const now = Date.now();
    if (now - this.lastScan > 5000) this.scan();
    const settle = this.o.pipeline.settle_ms;
    for (const [path, c] of this.candidates) {
      let r: Readiness;
      try {
        r = this.inspect(path);
      } catch (e) {
        // vanished or unreadable between two calls (a race with its producer): the next scan looks again
        this.candidates.delete(path);
        this.o.log.warn(`cannot inspect ${path}: ${(e as Error).message}`);
        continue;
      }
      if (r.kind === 'gone') {
        this.candidates.delete(path);
        continue;
      }
      if (r.signature !== c.signature) {
        c.signature = r.signature;
        c.stableSince = now;
        continue;
      }
      if (now - c.stableSince < settle) continue;
      if (r.kind === 'wait') {
        if (!r.incomplete || now - c.stableSince < this.o.incompleteTimeoutMs) continue;
      }
      this.candidates.delete(path);
      this.inFlight.add(path);
      this.taken.set(path, quickSignature(path));
      const reason = r.kind === 'reject' ? r.reason : null;
      this.chain = this.chain
        .then(() => this.take(path, reason))
        .then(() => void this.failed.delete(path))
        .catch((e) => {
          // not the file's fault (SQLite or the disk): forget it, so that a later scan takes it again
          this.taken.delete(path);
          const count = (this.failed.get(path)?.count ?? 0) + 1;
          const delay = retryDelayMs(count);
          this.failed.set(path, { count, until: Date.now() + delay });
          this.o.log.error(`intake of ${path} failed, retrying in ${delay / 1000} s: ${(e as Error).message}`);
        })
        .finally(() => this.inFlight.delete(path));
    }
  }

  /** cheap, synchronous look at a candidate: is it complete, and what is its size signature? */
  private inspect(path: string): Readiness {
    const l = safeLstat(path);
    if (!l) return { kind: 'gone' };
    const outside = this.escapes(path, l);
    if (outside) return { kind: 'reject', reason: outside, signature: 'link' };
    const s = safeStat(path)!;
    if (s.isFile()) {
      if (!path.endsWith('.safetensors'))
        return {
          kind: 'reject',
          reason: 'not a checkpoint: expected a .safetensors file or a model folder',
          signature: `${s.size}`,
        };
      const p = probeComplete(path);
      const signature = `${p.actualSize}:${s.mtimeMs}`;
      if (p.complete) return { kind: 'ready', signature };
      // a parseable header with less data than it announces: still being written
      if (p.expectedSize !== null && p.actualSize < p.expectedSize)
        return { kind: 'wait', signature, incomplete: true };
      return { kind: 'ready', signature }; // validation will give the reason
    }
    if (!s.isDirectory()) return { kind: 'reject', reason: 'not a regular file or folder', signature: 'special' };
    let files: string[] | null;
    try {
      files = findCheckpointFiles(path);
    } catch {
      return { kind: 'ready', signature: `bad-index:${s.mtimeMs}` }; // validation will give the reason
    }
    if (!files) return { kind: 'wait', signature: `empty:${readdirSync(path).length}`, incomplete: true };
    let incomplete = false;
    const sizes: string[] = [];
    for (const f of files) {
      const fl = safeLstat(f);
      if (!fl) {
        incomplete = true;
        sizes.push('-');
        continue;
      }
      const esc = this.escapes(f, fl);
      if (esc) return { kind: 'reject', reason: `${basename(f)}: ${esc}`, signature: 'link' };
      if (f.endsWith('.json')) {
        sizes.push(`${fl.size}`);
        continue;
      }
      const p = probeComplete(f);
      sizes.push(`${p.actualSize}`);
      if (p.expectedSize !== null && p.actualSize < p.expectedSize) incomplete = true;
    }
    const signature = sizes.join(',');
    return incomplete ? { kind: 'wait', signature, incomplete: true } : { kind: 'ready', signature };
  }

  /** a symlink must resolve inside the drop folder (no reading of files elsewhere) */
  private escapes(path: string, l: Stats): string | null {
    if (!l.isSymbolicLink()) return null;
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      return 'symlink whose target does not exist';
    }
    return real === this.realDrop || real.startsWith(this.realDrop + sep)
      ? null
      : `symlink leads out of the drop folder (to ${real})`;
  }

  private async take(path: string, rejectReason: string | null): Promise<void> {
    const { store, pipeline, log } = this.o;
    const name = basename(path);
    const known = store.findByPath(pipeline.name, path);
    const size = entrySize(path);
    if (known && known.status !== 'rejected' && known.size === size) return; // seen before a restart
    if (known?.status === 'rejected' && known.quarantine_path) {
      // a rejection recorded before a crash, whose move did not happen yet
      moveToQuarantine(path, known.quarantine_path, known.reason ?? 'rejected');
      return;
    }
    if (rejectReason) return this.reject(path, { name, size }, rejectReason);
    const files = safeFiles(path);
    // A file that cannot be read (a shard the index names but that never came, after the
    // incomplete timeout) must be rejected like any bad input, not dropped with an error log: the
    // checks below name the problem better, so the hash error is only the reason of last resort.
    let sha256: string | undefined;
    let unreadable: Error | null = null;
    try {
      sha256 = await checkpointSha256(path, files);
    } catch (e) {
      unreadable = e as Error;
    }
    if (!safeLstat(path)) return; // gone (removed by its producer): nothing to reject
    try {
      const model = openModel(path);
      try {
        validateAgainstBase(this.o.base, model);
      } finally {
        model.close();
      }
    } catch (e) {
      return this.reject(path, { name, size, sha256 }, e instanceof InputError ? e.reason : (e as Error).message);
    }
    if (sha256 === undefined)
      return this.reject(path, { name, size }, `cannot be read: ${unreadable?.message ?? 'unknown error'}`);
    const r = store.enqueue(pipeline.name, { name, path, sha256, size });
    if (r.outcome === 'duplicate') {
      return this.reject(
        path,
        { name, size, sha256 },
        `duplicate: same sha256 as ${r.checkpoint.name} (${r.checkpoint.status})`,
      );
    }
    if (r.outcome === 'queued') {
      log.info(`queued ${name}`, {
        pipeline: pipeline.name,
        sha256,
        bytes: size,
        queue_position: store.queued(pipeline.name).length,
      });
      this.o.onQueued();
    }
  }

  private reject(path: string, a: { name: string; size: number; sha256?: string }, reason: string): void {
    const target = quarantineTarget(this.drop, path);
    // the reason is recorded first: a crash before the move is finished at the next scan
    this.o.store.reject(this.o.pipeline.name, { name: a.name, path, sha256: a.sha256, size: a.size }, reason, target);
    moveToQuarantine(path, target, reason);
    this.o.log.warn(`rejected ${a.name}: ${reason}`, { pipeline: this.o.pipeline.name, quarantine: target });
    this.o.onRejected?.();
  }
}

/** size and mtime of the entry itself: enough to notice that a taken name holds new content */
function quickSignature(p: string): string {
  const s = safeLstat(p);
  return s ? `${s.size}:${s.mtimeMs}` : '';
}

function safeLstat(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

function safeStat(p: string): Stats | null {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

function safeFiles(p: string): string[] | null {
  try {
    return findCheckpointFiles(p);
  } catch {
    return null;
  }
}

/** bytes of a file, or of the files of a folder checkpoint */
function entrySize(path: string): number {
  const s = safeStat(path);
  if (!s) return 0;
  if (!s.isDirectory()) return s.size;
  return (safeFiles(path) ?? []).reduce((acc, f) => acc + (safeStat(f)?.size ?? 0), 0);
}
