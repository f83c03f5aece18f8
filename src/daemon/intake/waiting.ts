import { basename, dirname, resolve } from 'node:path';
import type { Logger } from 'winston';
import { waitingReasonText, type Store, type WaitingEntry } from '../../store/index.js';
import { safeLstat } from './entry-stats.js';
import type { WaitInfo } from './readiness.js';

/**
 * The drop-folder entries a pipeline's intake waits for (not complete yet), recorded in SQLite:
 * `cmerge status` and the metrics show them, and a restarted daemon resumes each one's incomplete
 * timeout from its recorded last change instead of from zero (docs/architecture.md, intake).
 * Logs once when an entry starts waiting and once when it is taken or gone.
 */

/** A growing file changes at every tick: its row is written at most this often (the timeout is minutes). */
const WRITE_EVERY_MS = 1_000;

interface Live {
  signature: string;
  info: WaitInfo;
  firstSeen: number;
  lastChange: number;
  writtenAt: number;
  dirty: boolean;
}

export interface LedgerOptions {
  store: Store;
  pipeline: string;
  log: Logger;
  /** the incomplete timeout, ms (named in the log line of an entry taken to be rejected) */
  timeoutMs: number;
}

export class WaitingLedger {
  /** rows recorded before this start, not looked at again yet */
  private readonly restored = new Map<string, WaitingEntry>();
  private readonly live = new Map<string, Live>();
  /** a failed write is logged once, not at every tick */
  private failing = false;

  constructor(private readonly o: LedgerOptions) {}

  /** At start: the rows of an earlier run; those whose entry is gone (or in another drop folder) are removed. */
  load(drop: string): void {
    const folder = resolve(drop);
    for (const row of this.attempt(() => this.o.store.waiting(this.o.pipeline)) ?? []) {
      if (dirname(row.path) === folder && safeLstat(row.path)) this.restored.set(row.path, row);
      else this.attempt(() => this.o.store.forgetWaiting(this.o.pipeline, row.path));
    }
  }

  /** The last change recorded before this start, ms, when the entry still has the signature it had then. */
  lastChange(path: string, signature: string): number | null {
    const row = this.restored.get(path);
    return row && row.signature === signature ? Date.parse(row.last_change) : null;
  }

  /** An incomplete entry looked at: recorded (and logged) when new, updated when it changed. */
  seen(path: string, signature: string, info: WaitInfo, lastChange: number, now: number): void {
    let e = this.live.get(path);
    if (!e) {
      const row = this.restored.get(path);
      const firstSeen = row ? Date.parse(row.first_seen) : now;
      e = { signature, info, firstSeen, lastChange, writtenAt: -Infinity, dirty: true };
      this.live.set(path, e);
      const since = row ? ` (since ${row.first_seen})` : '';
      this.o.log.info(`waiting for ${basename(path)}${since}: ${describe(info)}`, this.fields(info));
    } else if (e.signature !== signature || e.info.reason !== info.reason) {
      const reasonChanged = e.info.reason !== info.reason;
      Object.assign(e, { signature, info, lastChange, dirty: true });
      if (reasonChanged) e.writtenAt = -Infinity;
    }
    if (e.dirty && now - e.writtenAt >= WRITE_EVERY_MS) this.write(path, e, now);
  }

  /** The entry left the candidates: taken complete, taken after the timeout (to be rejected), or gone. */
  done(path: string, how: 'complete' | 'timeout' | 'gone', now: number): void {
    const e = this.live.get(path);
    const row = this.restored.get(path);
    if (!e && !row) return; // never waited: an atomic drop
    this.live.delete(path);
    this.restored.delete(path);
    this.attempt(() => this.o.store.forgetWaiting(this.o.pipeline, path));
    const name = basename(path);
    const firstSeen = e?.firstSeen ?? Date.parse(row!.first_seen);
    const waited = `${Math.round((now - firstSeen) / 1000)} s`;
    if (how === 'complete') this.o.log.info(`${name} is complete after waiting ${waited}: taking it`);
    else if (how === 'gone') this.o.log.info(`${name} is gone after waiting ${waited}`);
    else {
      const info = e?.info;
      const idle = `${Math.round((now - (e?.lastChange ?? firstSeen)) / 1000)} s`;
      this.o.log.warn(
        `${name} is still incomplete${info ? ` (${describe(info)})` : ''}, unchanged for ${idle} ` +
          `(incomplete timeout ${this.o.timeoutMs / 1000} s): taking it to be rejected`,
        info ? this.fields(info) : {},
      );
    }
  }

  private write(path: string, e: Live, now: number): void {
    const ok = this.attempt(() => {
      this.o.store.recordWaiting(this.o.pipeline, {
        path,
        name: basename(path),
        size: e.info.size,
        expected_size: e.info.expected,
        reason: e.info.reason,
        signature: e.signature,
        first_seen: new Date(e.firstSeen).toISOString(),
        last_change: new Date(e.lastChange).toISOString(),
      });
      return true;
    });
    if (!ok) return;
    e.writtenAt = now;
    e.dirty = false;
  }

  /** A store call whose failure (SQLite busy, disk full) must not stop the intake: logged once, then retried at later looks. */
  private attempt<T>(f: () => T): T | undefined {
    try {
      const r = f();
      this.failing = false;
      return r;
    } catch (err) {
      if (!this.failing) this.o.log.warn(`cannot record waiting entries: ${(err as Error).message}`);
      this.failing = true;
      return undefined;
    }
  }

  private fields(info: WaitInfo): Record<string, unknown> {
    return { bytes: info.size, expected_bytes: info.expected, reason: info.reason };
  }
}

/** "still growing (200 of 1234 bytes)" */
function describe(info: WaitInfo): string {
  const of = info.expected === null ? '' : ` of ${info.expected}`;
  return `${waitingReasonText(info.reason)} (${info.size}${of} bytes)`;
}
