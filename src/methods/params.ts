import { z } from 'zod';

/** Values from the command line arrive as strings: numbers and booleans are read as such. */
export function coerceCliValue(v: string): unknown {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return v;
}

/** Parses raw parameters with a strict schema; errors name the key. */
export function parseWith<S extends z.ZodType>(method: string, schema: S, raw: Record<string, unknown>): z.infer<S> {
  const norm: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) norm[k] = typeof v === 'string' ? coerceCliValue(v) : v;
  const r = schema.safeParse(norm);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const key = issue.path.length ? issue.path.join('.') : ((issue as { keys?: string[] }).keys?.join(', ') ?? '');
  throw new Error(`${method}: parameter ${key}: ${issue.message}`);
}
