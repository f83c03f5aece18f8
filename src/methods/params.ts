import type { Method } from './types.js';

/** Values from the command line arrive as strings: numbers and booleans are read as such. */
function coerceCliValue(v: string): unknown {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return v;
}

/**
 * A method's complete parameters from raw ones (a config's, or `--param key=value` strings):
 * validated by the method's schema, defaults filled. Errors name the key (`opcm: parameter alpah: ...`).
 */
export function parseMethodParams<P extends object>(method: Method<P>, raw: Record<string, unknown>): P {
  const norm: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) norm[k] = typeof v === 'string' ? coerceCliValue(v) : v;
  const r = method.params.safeParse(norm);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const key = issue.path.length ? issue.path.join('.') : ((issue as { keys?: string[] }).keys?.join(', ') ?? '');
  throw new Error(`${method.name}: parameter ${key}: ${issue.message}`);
}
