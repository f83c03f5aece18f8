import { createServer } from 'node:net';
import {
  ConfigError,
  pathIssues,
  readConfig,
  type Config,
  type ConfigIssue,
  type PortTarget,
} from '../config/index.js';
import { openModel } from '../io/model.js';

/**
 * The daemon's config, checked whole before anything is created: the schema, then what it points
 * at (bases that exist and open as models, folders that can be created and written, programs,
 * free ports). Every problem is in one ConfigError, so a bad config leaves no state folder,
 * database or drop folder behind and is fixed in one go.
 */
export async function loadDaemonConfig(path: string): Promise<Config> {
  const r = readConfig(path);
  const issues = [...r.issues, ...pathIssues(r.targets, 'daemon')];
  const missing = new Set(issues.map((i) => i.path));
  for (const t of r.targets.paths) {
    if (t.role === 'input' && !missing.has(t.key)) issues.push(...modelIssues(t.key, t.path));
  }
  issues.push(...(await portIssues(r.targets.ports)));
  if (issues.length || !r.config) throw new ConfigError(r.file, issues);
  return r.config;
}

/** The base opens as a model (headers only): a folder without weights is refused here, not mid-start. */
function modelIssues(key: string, path: string): ConfigIssue[] {
  try {
    openModel(path).close();
    return [];
  } catch (e) {
    const msg = (e as Error).message;
    return [{ path: key, message: msg.startsWith(path) ? msg : `${path}: ${msg}` }];
  }
}

/** Each port that cannot be listened on; one listener per host and port (sse notifiers may share one). */
async function portIssues(ports: PortTarget[]): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  const owner = new Map<string, PortTarget>();
  for (const t of ports) {
    const id = `${t.host}:${t.port}`;
    const first = owner.get(id);
    if (first) {
      // sse notifiers on one port share a hub; the metrics server cannot share it
      if (first.key === 'metrics_port' || t.key === 'metrics_port')
        issues.push({ path: t.key, message: `${t.port} on ${t.host} is also ${first.key}` });
      continue;
    }
    owner.set(id, t);
    const problem = await listenProblem(t.port, t.host);
    if (problem) issues.push({ path: t.key, message: `${t.port} on ${t.host} ${problem}` });
  }
  return issues;
}

/** Listen and close at once: null when the port is free to use. */
function listenProblem(port: number, host: string): Promise<string | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (e: NodeJS.ErrnoException) =>
      resolve(e.code === 'EADDRINUSE' ? 'is already in use' : `cannot be listened on: ${e.message}`),
    );
    server.listen(port, host, () => server.close(() => resolve(null)));
  });
}
