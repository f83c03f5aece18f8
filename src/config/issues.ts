import type { z } from 'zod';
import { formatPath, type ConfigIssue } from './errors.js';

/** The value at a key path of the parsed YAML, to say what was found instead of what was expected. */
function valueAt(root: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let v: unknown = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return v.length ? 'a list' : 'an empty list';
  if (typeof v === 'object') return 'a mapping';
  const s = JSON.stringify(v);
  return `${typeof v} ${s.length > 60 ? s.slice(0, 57) + '...' : s}`;
}

/**
 * Zod's issues in the words of a config file: key path plus "expected X, got Y". Unknown keys
 * become one issue each at their own path, so the message points at the offending line's key.
 */
export function toConfigIssues(error: z.ZodError, root: unknown): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const iss of error.issues) {
    const path = iss.path as PropertyKey[];
    const got = valueAt(root, path);
    switch (iss.code) {
      case 'unrecognized_keys':
        for (const key of iss.keys) out.push({ path: formatPath([...path, key]), message: 'unknown key' });
        break;
      case 'invalid_type':
        out.push({
          path: formatPath(path),
          message: got === undefined ? `required (expected ${iss.expected})` : `expected ${iss.expected}, got ${describe(got)}`,
        });
        break;
      case 'invalid_value':
        out.push({
          path: formatPath(path),
          message: `expected ${iss.values.map((v) => JSON.stringify(v)).join(' | ')}, got ${got === undefined ? 'nothing' : describe(got)}`,
        });
        break;
      case 'too_small':
      case 'too_big': {
        const op = iss.code === 'too_small' ? (iss.inclusive ? '>=' : '>') : iss.inclusive ? '<=' : '<';
        const bound = String(iss.code === 'too_small' ? iss.minimum : iss.maximum);
        const what = iss.origin === 'number' || iss.origin === 'int' ? `a number ${op} ${bound}` : `${iss.origin} length ${op} ${bound}`;
        // custom messages (e.g. "must name a program") are kept as written
        const msg = /^Too (small|big)/.test(iss.message) ? `expected ${what}` : iss.message;
        out.push({ path: formatPath(path), message: got === undefined ? msg : `${msg}, got ${describe(got)}` });
        break;
      }
      case 'invalid_union': {
        // a discriminated union reports at the object; point at the discriminator key instead
        const m = /^expected (method|type):/.exec(iss.message);
        const at = m && path[path.length - 1] !== m[1] ? [...path, m[1]!] : path;
        const v = valueAt(root, at);
        out.push({ path: formatPath(at), message: v === undefined ? `required (${iss.message})` : `${iss.message}, got ${describe(v)}` });
        break;
      }
      case 'invalid_format':
        out.push({ path: formatPath(path), message: `${iss.message}, got ${describe(got)}` });
        break;
      default:
        out.push({ path: formatPath(path), message: iss.message });
    }
  }
  return out;
}
