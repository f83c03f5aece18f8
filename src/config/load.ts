import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError, type ConfigIssue } from './errors.js';
import { toConfigIssues } from './issues.js';
import type { MethodName, MethodParams } from '../methods/registry.js';
import {
  configSchema,
  type CommandNotifierConfig,
  type HttpNotifierConfig,
  type SseNotifierConfig,
  type NotifierConfig,
  type RawConfig,
} from './schema.js';

type RawPipeline = RawConfig['pipelines'][number];
type PipelineCommon = Omit<RawPipeline, 'method' | 'params' | 'notifiers'>;

/** One pipeline, paths absolute, defaults filled; `params` typed by `method`. */
export type PipelineConfig = {
  [M in MethodName]: PipelineCommon & { method: M; params: MethodParams[M]; notifiers: NotifierConfig[] };
}[MethodName];

/** The loaded config: every path absolute, every default filled. */
export type Config = Omit<RawConfig, 'pipelines'> & {
  /** absolute path of the file it came from (or the label given to parseConfig) */
  file: string;
  /** the SQLite database: <state_dir>/cmerge.sqlite */
  db_path: string;
  pipelines: PipelineConfig[];
};

export const DB_FILE_NAME = 'cmerge.sqlite';

/** Read, validate and resolve a YAML config file. Throws ConfigError (file + key path) on any problem. */
export function loadConfig(path: string): Config {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [{ path: '', message: `cannot read: ${(e as Error).message}` }]);
  }
  return parseConfig(text, file);
}

/**
 * Validate YAML text. `file` labels errors and, unless `baseDir` is given, its folder anchors
 * relative paths (for an embedded default config, pass a label and the folder to use).
 */
export function parseConfig(text: string, file: string, baseDir: string = dirname(resolve(file))): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter: lines });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        const at = lines.linePos(e.pos[0]);
        return { path: '', message: `line ${at.line}, column ${at.col}: ${e.message.split('\n')[0]}` };
      }),
    );
  }
  const raw: unknown = doc.toJS();
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(file, [
      { path: '', message: 'expected a mapping of keys at the top level (state_dir, pipelines, ...)' },
    ]);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(file, toConfigIssues(parsed.error, raw));
  return resolveConfig(parsed.data, file, baseDir);
}

function resolveConfig(cfg: RawConfig, file: string, baseDir: string): Config {
  const abs = (p: string) => resolve(baseDir, p);
  // argv[0] is a program looked up on PATH unless it is written as a relative path
  const argv = (a: string[]) => (/^\.\.?\//.test(a[0]!) ? [abs(a[0]!), ...a.slice(1)] : a);
  const issues: ConfigIssue[] = [];
  const dropOwner = new Map<string, number>();

  const pipelines = cfg.pipelines.map((p, i): PipelineConfig => {
    const drop = abs(p.drop);
    const other = dropOwner.get(drop);
    if (other !== undefined)
      issues.push({ path: `pipelines[${i}].drop`, message: `same drop folder as pipelines[${other}]` });
    else dropOwner.set(drop, i);
    const notifiers = p.notifiers.map((n, j): NotifierConfig => {
      // same default name as src/publish records: `<type>#<index>`
      const name = n.name ?? `${n.type}#${j}`;
      if (n.type === 'command') {
        return {
          ...n,
          name,
          argv: argv(n.argv),
          ...(n.cwd ? { cwd: abs(n.cwd) } : {}),
        } satisfies CommandNotifierConfig;
      }
      return { ...n, name } satisfies HttpNotifierConfig | SseNotifierConfig;
    });
    const names = new Map<string, number>();
    notifiers.forEach((n, j) => {
      const first = names.get(n.name);
      if (first !== undefined)
        issues.push({
          path: `pipelines[${i}].notifiers[${j}].name`,
          message: `duplicate notifier name "${n.name}" (also notifiers[${first}])`,
        });
      else names.set(n.name, j);
    });
    return {
      ...p,
      base: abs(p.base),
      drop,
      repository: abs(p.repository),
      notifiers,
      evaluator: p.evaluator && { ...p.evaluator, argv: argv(p.evaluator.argv) },
    } as PipelineConfig;
  });
  if (issues.length) throw new ConfigError(file, issues);

  const state_dir = abs(cfg.state_dir);
  return { ...cfg, file, state_dir, db_path: join(state_dir, DB_FILE_NAME), pipelines };
}
