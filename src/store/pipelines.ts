import { now, sql, StoreError, type Db } from './db.js';

/** The pipeline's row id, or null when nothing was ever recorded for it. */
export function pipelineId(db: Db, name: string): number | null {
  const r = sql(db, 'SELECT id FROM pipelines WHERE name = ?').get(name) as { id: number } | undefined;
  return r?.id ?? null;
}

/** The pipeline's row id, creating the row on first use (call inside the writer's transaction). */
export function ensurePipeline(db: Db, name: string): number {
  sql(db, 'INSERT INTO pipelines (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING').run(name, now());
  return pipelineId(db, name)!;
}

export function requirePipeline(db: Db, name: string): number {
  const id = pipelineId(db, name);
  if (id === null) throw new StoreError(`unknown pipeline "${name}"`);
  return id;
}

export function pipelineNames(db: Db): string[] {
  return (sql(db, 'SELECT name FROM pipelines ORDER BY id').all() as { name: string }[]).map((r) => r.name);
}
