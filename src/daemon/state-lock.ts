import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

/** Another process holds the state directory: a daemon, or an operator command run without one. */
export class StateLocked extends Error {
  constructor(readonly stateDir: string) {
    super(
      `${stateDir} is in use by another cmerge process (a daemon, or a rollback/revert/pin/pause run without one); ` +
        'with a daemon running, operator commands go through its socket',
    );
    this.name = 'StateLocked';
  }
}

/**
 * The state directory's exclusive lock (docs/operations.md): one writer at a time, the daemon for
 * its life or an operator command while no daemon runs, never both. It is an SQLite file held in
 * EXCLUSIVE locking mode: the kernel's POSIX locks end with the process, kill -9 included, so a
 * crash never leaves a stale lock, and a lock file on NFS gets the same (advisory) semantics as the database beside it.
 */
export function acquireStateLock(stateDir: string): { release(): void } {
  mkdirSync(stateDir, { recursive: true });
  const db = new Database(join(stateDir, 'state.lock'), { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    // the first write takes the exclusive lock; in this mode it is kept until the connection closes
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER); DELETE FROM holder;');
    db.prepare('INSERT INTO holder VALUES (?)').run(process.pid);
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code === 'SQLITE_BUSY') throw new StateLocked(stateDir);
    throw e;
  }
  return { release: () => db.close() };
}
