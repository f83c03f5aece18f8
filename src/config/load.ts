import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError, type ConfigIssue } from './errors.js';
import { validate } from './issues.js';
import { configTargets, pathIssues, resolveProgram, type ConfigTargets, type PathScope } from './paths.js';
import { isMethodName, type MethodName, type MethodParams } from '../methods/registry.js';
import {
  configSchema,
  pipelineWithoutMethod,
  type CommandNotifierConfig,
  type HttpNotifierConfig,
  type SseNotifierConfig,
  type NotifierConfig,
  type RawConfig,
} from './schema.js';

type RawPipeline = RawConfig['pipelines'][number];
type PipelineCommon = Omit<RawPipeline, 'method' | 'params' | 'notifiers' | 'archive'> & {
  /** the folder merged checkpoints move to (absolute; default `<drop>.merged`), null: they stay in the drop folder */
  archive: string | null;
};

/** One pipeline, paths absolute, defaults filled; `params` typed by `method`. */
export type PipelineConfig = {
  [M in MethodName]: PipelineCommon & { method: M; params: MethodParams[M]; notifiers: NotifierConfig[] };
}[MethodName];

/** The loaded config: every path absolute, every default filled. */
export type Config = Omit<RawConfig, 'pipelines' | 'api'> & {
  /** absolute path of the file it came from (or the label given to parseConfig) */
  file: string;
  /** the SQLite database: <state_dir>/cmerge.sqlite */
  db_path: string;
  pipelines: PipelineConfig[];
  /** the HTTP API, when configured; token_file absolute */
  api?: ApiConfig;
};

export type ApiConfig = Required<NonNullable<RawConfig['api']>>;

export const DB_FILE_NAME = 'cmerge.sqlite';
/** the API's bearer token when api.token_file is not set: <state_dir>/api-token */
export const API_TOKEN_FILE_NAME = 'api-token';

/** A config file read and checked as far as it goes. */
export interface ConfigReading {
  /** absolute path of the file (or the label given to readConfigText) */
  file: string;
  /** null when there is any issue */
  config: Config | null;
  /** every problem of the file itself: YAML, schema, resolution (one drop folder twice); not yet its targets */
  issues: ConfigIssue[];
  /** the files, folders and ports it names, for pathIssues and the daemon's port check */
  targets: ConfigTargets;
}

/**
 * Read, validate and resolve a YAML config file. Throws ConfigError (file + key path) listing
 * every problem; with `paths`, the files and folders that scope of command needs are checked too.
 */
export function loadConfig(path: string, opts: { paths?: PathScope } = {}): Config {
  const r = readConfig(path);
  const issues = [...r.issues, ...(opts.paths ? pathIssues(r.targets, opts.paths) : [])];
  if (issues.length || !r.config) throw new ConfigError(r.file, issues);
  return r.config;
}

/** loadConfig without throwing on content: the caller adds its own checks before reporting. */
export function readConfig(path: string): ConfigReading {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return failed(file, [{ path: '', message: `cannot read: ${(e as Error).message}` }]);
  }
  return readConfigText(text, file);
}

/**
 * Validate YAML text. `file` labels errors and, unless `baseDir` is given, its folder anchors
 * relative paths (for an embedded default config, pass a label and the folder to use).
 */
export function parseConfig(text: string, file: string, baseDir?: string): Config {
  const r = readConfigText(text, file, baseDir);
  if (!r.config) throw new ConfigError(file, r.issues);
  return r.config;
}

function failed(file: string, issues: ConfigIssue[]): ConfigReading {
  return { file, config: null, issues, targets: { paths: [], ports: [] } };
}

export function readConfigText(text: string, file: string, baseDir: string = dirname(resolve(file))): ConfigReading {
  const lines = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter: lines });
  if (doc.errors.length > 0) {
    return failed(
      file,
      doc.errors.map((e) => {
        const at = lines.linePos(e.pos[0]);
        return { path: '', message: `line ${at.line}, column ${at.col}: ${e.message.split('\n')[0]}` };
      }),
    );
  }
  const raw: unknown = doc.toJS();
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return failed(file, [
      { path: '', message: 'expected a mapping of keys at the top level (state_dir, pipelines, ...)' },
    ]);
  }
  const targets = configTargets(raw, baseDir);
  const parsed = validate(configSchema, raw);
  if (!parsed.ok) return { ...failed(file, withMethodless(parsed.issues, raw)), targets };
  const { config, issues } = resolveConfig(parsed.data, file, baseDir);
  return { file, config: issues.length ? null : config, issues, targets };
}

/**
 * The schema's issues, plus, for each pipeline without a known method, those of the keys every
 * method shares (zod stops such a pipeline at `method`), placed before its `method` line.
 */
function withMethodless(issues: ConfigIssue[], raw: object): ConfigIssue[] {
  const out = [...issues];
  const pipelines: unknown = (raw as { pipelines?: unknown }).pipelines;
  if (!Array.isArray(pipelines)) return out;
  pipelines.forEach((p: unknown, i) => {
    if (p === null || typeof p !== 'object' || Array.isArray(p)) return;
    const method = (p as { method?: unknown }).method;
    if (typeof method === 'string' && isMethodName(method)) return;
    const r = validate(pipelineWithoutMethod, p, ['pipelines', i]);
    if (r.ok) return;
    const at = out.findIndex((x) => x.path === `pipelines[${i}].method`);
    out.splice(at < 0 ? out.length : at, 0, ...r.issues);
  });
  return out;
}

function resolveConfig(cfg: RawConfig, file: string, baseDir: string): { config: Config; issues: ConfigIssue[] } {
  const abs = (p: string) => resolve(baseDir, p);
  const argv = (a: string[]) => [resolveProgram(a[0]!, baseDir), ...a.slice(1)];
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
      archive: p.archive === false ? null : abs(p.archive ?? `${drop}.merged`),
      notifiers,
      evaluator: p.evaluator && { ...p.evaluator, argv: argv(p.evaluator.argv) },
    } as PipelineConfig;
  });
  const state_dir = abs(cfg.state_dir);
  const { api, ...rest } = cfg;
  const config: Config = { ...rest, file, state_dir, db_path: join(state_dir, DB_FILE_NAME), pipelines };
  // absent stays absent (no `api: undefined` key)
  if (api) config.api = { ...api, token_file: abs(api.token_file ?? join(state_dir, API_TOKEN_FILE_NAME)) };
  return { config, issues };
}
