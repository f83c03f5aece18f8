import chokidar, { type FSWatcher } from 'chokidar';
import { readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { Logger } from 'winston';
import type { Clock } from '../backoff.js';
import { safeStat } from './entry-stats.js';

/**
 * The watcher: names the top-level, not dot-named entries of a drop folder that arrived or
 * changed. File events (chokidar) name them as they come; a full listing at start and every
 * `rescanMs` names all of them, oldest first, because events can be lost (inotify queue
 * overflow, network filesystems) and a listing cannot. It also drives the intake's tick.
 */
export interface DropWatcherOptions {
  drop: string;
  clock: Clock;
  /** ms between two ticks */
  tickMs: number;
  /** ms between two full listings */
  rescanMs: number;
  log: Logger;
  /** an entry arrived or changed, or a listing found it (the receiver dedupes) */
  onEntry(path: string): void;
  /** called every tickMs (after a due listing) with the clock's time */
  onTick(now: number): void;
}

export class DropWatcher {
  private watcher: FSWatcher | null = null;
  private cancelTick: (() => void) | null = null;
  private lastScan = 0;

  constructor(private readonly options: DropWatcherOptions) {}

  /**
   * Resolves once chokidar is ready. The first listing runs after that: an entry renamed in
   * between the listing and chokidar's readiness would otherwise be seen by neither.
   */
  async start(): Promise<void> {
    const { drop, log } = this.options;
    const watcher = chokidar.watch(drop, {
      ignoreInitial: true,
      depth: 2,
      followSymlinks: false,
      ignored: (p: string) =>
        relative(drop, p)
          .split(sep)
          .some((part) => part.startsWith('.')),
    });
    this.watcher = watcher;
    watcher.on('all', (_event, p) => this.event(p));
    watcher.on('error', (e) => log.error(`watcher: ${(e as Error).message}`));
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    this.scan();
    this.scheduleTick();
  }

  async stop(): Promise<void> {
    this.cancelTick?.();
    this.cancelTick = null;
    await this.watcher?.close();
    this.watcher = null;
  }

  private scheduleTick(): void {
    this.cancelTick = this.options.clock.setTimer(() => this.tick(), this.options.tickMs);
  }

  private tick(): void {
    const now = this.options.clock.now();
    if (now - this.lastScan >= this.options.rescanMs) this.scan();
    this.options.onTick(now);
    if (this.cancelTick) this.scheduleTick(); // not when stop() ran meanwhile
  }

  /** an event names any path below the drop folder: the top-level entry it belongs to is the arrival */
  private event(path: string): void {
    const rel = relative(this.options.drop, path);
    if (!rel || rel.startsWith('..')) return;
    const top = rel.split(sep)[0];
    if (!top.startsWith('.')) this.options.onEntry(join(this.options.drop, top));
  }

  /** Every entry of the folder, oldest first (mtime, then name). */
  private scan(): void {
    const { drop, log, clock } = this.options;
    this.lastScan = clock.now();
    let names: string[];
    try {
      names = readdirSync(drop);
    } catch (e) {
      // the folder vanished or its filesystem failed (NFS): try again at the next listing
      log.error(`cannot list the drop folder: ${(e as Error).message}`);
      return;
    }
    const entries = names
      .filter((n) => !n.startsWith('.'))
      .map((n) => ({ path: join(drop, n), mtime: safeStat(join(drop, n))?.mtimeMs ?? 0 }))
      .sort((a, b) => a.mtime - b.mtime || a.path.localeCompare(b.path));
    for (const e of entries) this.options.onEntry(e.path);
  }
}
