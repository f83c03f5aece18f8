import { z } from 'zod';
import { closest } from '../util/edit-distance.js';
import { formatPath, type ConfigIssue } from './errors.js';

/**
 * The keys an object schema knows, by the `keys` array of its unknown-key issue: zod drops the
 * schema from a finished issue, but its error map still sees it, and the array is carried over.
 */
const knownKeys = new WeakMap<readonly string[], string[]>();

function rememberKnownKeys(iss: z.core.$ZodRawIssue): undefined {
  if (iss.code === 'unrecognized_keys' && iss.inst instanceof z.ZodObject)
    knownKeys.set(iss.keys, Object.keys(iss.inst.shape));
  return undefined;
}

/** One issue per unknown key, at its own path, with the nearest key the object knows when one is close. */
function unknownKeys(path: PropertyKey[], keys: string[]): ConfigIssue[] {
  const known = knownKeys.get(keys) ?? [];
  return keys.map((key) => {
    const near = closest(key, known);
    return { path: formatPath([...path, key]), message: near ? `unknown key (did you mean ${near}?)` : 'unknown key' };
  });
}

/**
 * Parse `value` with `schema`. On failure, zod's issues in the words of a config file: key path
 * (under `prefix`) plus "expected X, got Y". Unknown keys become one issue each at their own path,
 * so the message points at the offending line's key, with the nearest known key when one is close.
 */
export function validate<S extends z.ZodType>(
  schema: S,
  value: unknown,
  prefix: PropertyKey[] = [],
): { ok: true; data: z.output<S> } | { ok: false; issues: ConfigIssue[] } {
  const r = schema.safeParse(value, { error: rememberKnownKeys });
  if (r.success) return { ok: true, data: r.data };
  const under = formatPath(prefix);
  const issues = fromIssues(r.error.issues, value, []).map((i) => ({
    ...i,
    path: under && i.path ? `${under}${i.path.startsWith('[') ? '' : '.'}${i.path}` : under || i.path,
  }));
  return { ok: false, issues };
}

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

type Issue = z.ZodError['issues'][number];

/**
 * A plain union (e.g. `engine: cuda` or `engine: {name: cuda, ...}`) that failed: the issues of
 * the first branch that matched the value's shape (none at the union itself), so that
 * `{name: cuda, device: -1}` is reported at `.device`; null when every branch failed at the top.
 */
function branchIssues(iss: Issue): Issue[] | null {
  if (iss.code !== 'invalid_union') return null;
  for (const branch of iss.errors) if (branch.length && branch.every((b) => b.path.length > 0)) return branch;
  return null;
}

function fromIssues(issues: readonly Issue[], root: unknown, prefix: PropertyKey[]): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const iss of issues) {
    const path = [...prefix, ...iss.path] as PropertyKey[];
    const branch = branchIssues(iss);
    if (branch) {
      out.push(...fromIssues(branch, root, path));
      continue;
    }
    const got = valueAt(root, path);
    switch (iss.code) {
      case 'unrecognized_keys':
        out.push(...unknownKeys(path, iss.keys));
        break;
      case 'invalid_type':
        out.push({
          path: formatPath(path),
          message:
            got === undefined
              ? `required (expected ${iss.expected})`
              : `expected ${iss.expected}, got ${describe(got)}`,
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
        const what =
          iss.origin === 'number' || iss.origin === 'int'
            ? `a number ${op} ${bound}`
            : `${iss.origin} length ${op} ${bound}`;
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
        out.push({
          path: formatPath(at),
          message: v === undefined ? `required (${iss.message})` : `${iss.message}, got ${describe(v)}`,
        });
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
