import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';

export type Db = Database.Database;

export class StoreError extends Error {
  override readonly name = 'StoreError';
}

export interface OpenOptions {
  /** inspection (status/history/show/verify): never writes, never migrates */
  readonly?: boolean;
  /** how long a writer waits for another writer's lock, ms (default 10 s) */
  busyTimeoutMs?: number;
}

/**
 * Open the database with the durability settings docs/architecture.md requires and bring its schema up to
 * date. WAL lets `cmerge status` read while the daemon writes; synchronous=FULL makes a commit
 * durable before it returns (the daemon acts on commits: renames, notifications).
 */
export function openDatabase(path: string, opts: OpenOptions = {}): Db {
  if (!opts.readonly) mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { readonly: opts.readonly === true, fileMustExist: opts.readonly === true });
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 10_000))}`);
    db.pragma('foreign_keys = ON');
    if (opts.readonly) {
      const v = db.pragma('user_version', { simple: true }) as number;
      if (v !== SCHEMA_VERSION) {
        throw new StoreError(
          `${path}: schema version ${v}, this cmerge reads version ${SCHEMA_VERSION}${v < SCHEMA_VERSION ? ' (start the daemon once to migrate)' : ''}`,
        );
      }
      return db;
    }
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new StoreError(`${path}: cannot switch to WAL (journal_mode is ${String(mode)})`);
    db.pragma('synchronous = FULL');
    migrate(db, path);
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

/** Apply pending migrations; the version is re-read under the write lock, so two processes opening a fresh file do not both migrate. */
export function migrate(db: Db, path = db.name): number {
  // Up to date (the usual case): no write lock, so opening never waits for a busy daemon.
  if ((db.pragma('user_version', { simple: true }) as number) === SCHEMA_VERSION) return SCHEMA_VERSION;
  for (const m of MIGRATIONS) {
    db.transaction(() => {
      const v = db.pragma('user_version', { simple: true }) as number;
      if (v > SCHEMA_VERSION)
        throw new StoreError(
          `${path}: schema version ${v} is newer than this cmerge (${SCHEMA_VERSION}); upgrade cmerge`,
        );
      if (v >= m.version) return;
      if (v !== m.version - 1) throw new StoreError(`${path}: schema version ${v} cannot take migration ${m.version}`);
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
  return db.pragma('user_version', { simple: true }) as number;
}

/** Now as stored: ISO-8601 UTC. */
export const now = (): string => new Date().toISOString();

/** Prepared statements cached per connection: the hot paths (queue, commit) run many times. */
const cache = new WeakMap<Db, Map<string, Database.Statement>>();
export function sql(db: Db, text: string): Database.Statement {
  let m = cache.get(db);
  if (!m) cache.set(db, (m = new Map()));
  let s = m.get(text);
  if (!s) m.set(text, (s = db.prepare(text)));
  return s;
}

export const json = (v: unknown): string | null => (v === undefined || v === null ? null : JSON.stringify(v));
export const parseJson = <T>(v: unknown): T | null => (typeof v === 'string' ? (JSON.parse(v) as T) : null);
