/** One problem in a config file: where (key path, e.g. `pipelines[0].params.alpha`) and what. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/**
 * Every config problem surfaces as this one error type, so the CLI can print it and exit 1
 * without a stack trace. The message names the file and the key path of each issue, one per
 * line: `/etc/cmerge.yaml: pipelines[0].params.alpha: expected number, got string "x"`.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly issues: ConfigIssue[],
  ) {
    super(issues.map((i) => (i.path ? `${file}: ${i.path}: ${i.message}` : `${file}: ${i.message}`)).join('\n'));
  }
}

/** `['pipelines', 0, 'params', 'alpha']` → `pipelines[0].params.alpha`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}
