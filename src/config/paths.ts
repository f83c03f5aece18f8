import { accessSync, constants, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { ConfigIssue } from './errors.js';

/**
 * What a config points at outside itself (files, folders, ports) and whether they are usable.
 * The targets are read from the YAML as it is, not from the validated config, so that a missing
 * base is reported in the same run as a misspelled key elsewhere.
 */

/** A file or folder the config names, at its key path, resolved against the config's folder. */
export interface PathTarget {
  key: string;
  path: string;
  /**
   * input: read (a base model); dir: created and written by the daemon; program: run (an argv[0]
   * written as a path); cwd: a folder a command runs in
   */
  role: 'input' | 'dir' | 'program' | 'cwd';
  /** checked only when the target of this key had no problem (a default derived from it: one cause, one line) */
  unlessFailed?: string;
}

/** A port the daemon will listen on. */
export interface PortTarget {
  key: string;
  port: number;
  host: string;
}

export interface ConfigTargets {
  paths: PathTarget[];
  ports: PortTarget[];
}

/**
 * Which paths a command needs: the inspection commands read the database and only need the bases
 * to exist; the daemon also creates and writes the folders and runs the programs.
 */
export type PathScope = 'inspect' | 'daemon';

/** argv[0] is a program looked up on PATH unless it is written as a relative path (./x, ../x). */
export function resolveProgram(program: string, baseDir: string): string {
  return /^\.\.?\//.test(program) ? resolve(baseDir, program) : program;
}

type Mapping = Record<string, unknown>;
const mapping = (v: unknown): Mapping | null =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Mapping) : null;
const text = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const port = (v: unknown): number | null =>
  typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535 ? v : null;
// the schema's default host for metrics_host, api.host and an sse notifier's host
const DEFAULT_HOST = '127.0.0.1';

/** Every path and port of the YAML `raw` whose value has the right type; the rest is the schema's to report. */
export function configTargets(raw: unknown, baseDir: string): ConfigTargets {
  const out: ConfigTargets = { paths: [], ports: [] };
  const root = mapping(raw);
  if (!root) return out;
  const addPath = (key: string, value: unknown, role: PathTarget['role'], unlessFailed?: string) => {
    const v = text(value);
    if (!v) return;
    const path = role === 'program' ? resolveProgram(v, baseDir) : resolve(baseDir, v);
    out.paths.push({ key, path, role, ...(unlessFailed ? { unlessFailed } : {}) });
  };
  const addPort = (key: string, value: unknown, host: unknown) => {
    const p = port(value);
    if (p) out.ports.push({ key, port: p, host: text(host) ?? DEFAULT_HOST });
  };
  addPath('state_dir', root.state_dir, 'dir');
  addPort('metrics_port', root.metrics_port, root.metrics_host);
  addPort('api.port', mapping(root.api)?.port, mapping(root.api)?.host);
  list(root.pipelines).forEach((item, i) => {
    const p = mapping(item);
    if (!p) return;
    const at = `pipelines[${i}]`;
    addPath(`${at}.base`, p.base, 'input');
    addPath(`${at}.drop`, p.drop, 'dir');
    addPath(`${at}.repository`, p.repository, 'dir');
    // absent: beside the drop folder, as load.ts resolves it
    const drop = text(p.drop)?.replace(/\/+$/, '');
    if (p.archive === undefined && drop) addPath(`${at}.archive`, `${drop}.merged`, 'dir', `${at}.drop`);
    else addPath(`${at}.archive`, p.archive, 'dir');
    addPath(`${at}.evaluator.argv[0]`, list(mapping(p.evaluator)?.argv)[0], 'program');
    list(p.notifiers).forEach((entry, j) => {
      const n = mapping(entry);
      if (n?.type === 'command') {
        addPath(`${at}.notifiers[${j}].argv[0]`, list(n.argv)[0], 'program');
        addPath(`${at}.notifiers[${j}].cwd`, n.cwd, 'cwd');
      } else if (n?.type === 'sse') addPort(`${at}.notifiers[${j}].port`, n.port, n.host);
    });
  });
  // a bare program name is looked up on PATH when it runs: not a path to check here
  out.paths = out.paths.filter((t) => t.role !== 'program' || t.path.includes('/'));
  return out;
}

/** Each target of the scope that cannot be used, as `key: <path> <problem>`. */
export function pathIssues(targets: ConfigTargets, scope: PathScope): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const t of targets.paths) {
    if (scope === 'inspect' && t.role !== 'input') continue;
    if (t.unlessFailed && issues.some((i) => i.path === t.unlessFailed)) continue;
    const problem = PROBLEM[t.role](t.path);
    if (problem) issues.push({ path: t.key, message: `${t.path} ${problem}` });
  }
  return issues;
}

function stat(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

function can(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

const WRITE = constants.W_OK | constants.X_OK;

const PROBLEM: Record<PathTarget['role'], (path: string) => string | null> = {
  input: (path) => (!stat(path) ? 'does not exist' : !can(path, constants.R_OK) ? 'is not readable' : null),
  dir: (path) => {
    const s = stat(path);
    if (s) return !s.isDirectory() ? 'is not a folder' : !can(path, WRITE) ? 'is not writable' : null;
    // created on first use (mkdir -p): the nearest folder that exists must let it be
    let up = dirname(path);
    while (!stat(up) && dirname(up) !== up) up = dirname(up);
    if (!stat(up)?.isDirectory()) return `cannot be created: ${up} is not a folder`;
    return can(up, WRITE) ? null : `cannot be created: ${up} is not writable`;
  },
  program: (path) => {
    const s = stat(path);
    if (!s) return 'does not exist';
    return s.isDirectory() ? 'is a folder' : !can(path, constants.X_OK) ? 'is not executable' : null;
  },
  cwd: (path) => (!stat(path) ? 'does not exist' : !stat(path)!.isDirectory() ? 'is not a folder' : null),
};
