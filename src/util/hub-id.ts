/** One part of a Hugging Face Hub repo id: letters, digits, `_ . -`, not starting or ending with `.` or `-`. */
const HUB_NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;

/**
 * Whether `s` is a Hub repo id (`org/name`, or a legacy one-word `name` unless `namespaced`),
 * by the Hub's own rules: at most 96 characters, no `--` or `..`. A local path such as
 * `/models/x` or `./x` never is; a relative `dir/name` looks like one, which is why ids read from
 * files are taken only in the `org/name` form (docs/architecture.md#publication-and-hot-swap).
 */
export function isHubId(s: string, opts: { namespaced?: boolean } = {}): boolean {
  if (s.length > 96 || s.includes('--') || s.includes('..')) return false;
  const parts = s.split('/');
  if (parts.length > 2 || (opts.namespaced && parts.length !== 2)) return false;
  return parts.every((p) => HUB_NAME.test(p));
}
