/**
 * Shared pieces of the daemon tests (not a test file itself): a real `cmerge daemon` process with
 * its JSON log lines collected, waits on log lines and published versions, atomic drops
 * (write `.name.part`, rename), configs, and reading versions back.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { writeDemoModels } from '../../src/demo/synth.js';
import { cmerge } from '../helpers/cli.js';
import { cliPath, repoRoot, tempDir } from '../helpers/paths.js';

export interface LogLine {
  level: string;
  message: string;
  [k: string]: unknown;
}

export interface PipelineOpts {
  name?: string;
  base: string;
  drop: string;
  repository: string;
  method?: string;
  params?: Record<string, unknown>;
  settle_ms?: number;
  [k: string]: unknown;
}

/** Writes a YAML config (pipelines get opcm α 0.5 and settle 300 ms unless given). */
export function writeConfig(
  path: string,
  stateDir: string,
  pipelines: PipelineOpts[],
  extra: Record<string, unknown> = {},
): string {
  const cfg = {
    state_dir: stateDir,
    ...extra,
    pipelines: pipelines.map((p) => ({ name: 'clip', method: 'opcm', params: { alpha: 0.5 }, settle_ms: 300, ...p })),
  };
  writeFileSync(path, stringify(cfg));
  return path;
}

/** A work folder with small demo models (base + n tasks), an empty drop folder, repository and state paths. */
export function workspace(prefix: string, n = 3, seed = 11) {
  const work = tempDir(prefix);
  const models = writeDemoModels(join(work, 'models'), n, { d: 16, layers: 1, seed });
  const drop = join(work, 'drop');
  const repo = join(work, 'repo');
  mkdirSync(drop);
  return {
    work,
    models,
    drop,
    repo,
    state: join(work, 'state'),
    pipeline: { base: models.base, drop, repository: repo },
  };
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** A running `cmerge daemon`: every stdout line parsed as JSON and kept, in order. */
export class DaemonProc {
  readonly lines: LogLine[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: (() => void)[] = [];
  readonly child: ChildProcess;

  constructor(config: string, args: string[] = []) {
    this.child = spawn(
      process.execPath,
      [cliPath, 'daemon', '--config', config, '--incomplete-timeout', '2', ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, CMERGE_LOG_FORMAT: 'json' },
      },
    );
    live.add(this.child);
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      let parsed: LogLine;
      try {
        parsed = JSON.parse(l) as LogLine;
      } catch {
        parsed = { level: 'raw', message: l };
      }
      this.lines.push(parsed);
      if (process.env.CMERGE_TEST_DAEMON_LOG) process.stderr.write(`[daemon ${this.child.pid}] ${l}\n`);
      this.poke();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        live.delete(this.child);
        this.poke();
        resolve({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  private poke(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** resolves with the first log line (from index `from`) matching, or rejects after `timeoutMs` */
  async waitFor(match: RegExp | ((l: LogLine) => boolean), timeoutMs = 30_000, from = 0): Promise<LogLine> {
    const test = typeof match === 'function' ? match : (l: LogLine) => match.test(l.message);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.slice(from).find(test);
      if (hit) return hit;
      if (!this.alive)
        throw new Error(`daemon exited before a line matching ${match}; stderr: ${this.stderr}\nlog:\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no log line matching ${match} within ${timeoutMs} ms; log:\n${this.tail()}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  ready(timeoutMs = 30_000): Promise<LogLine> {
    return this.waitFor(/^cmerge daemon ready/, timeoutMs);
  }

  /** waits for "published version N" */
  published(n: number, timeoutMs = 30_000): Promise<LogLine> {
    return this.waitFor(new RegExp(`^published version ${n}:`), timeoutMs);
  }

  messages(re: RegExp): string[] {
    return this.lines.map((l) => l.message).filter((m) => re.test(m));
  }

  tail(n = 30): string {
    return (
      this.lines
        .slice(-n)
        .map((l) => `${l.level} ${l.message}`)
        .join('\n') + (this.stderr ? `\nstderr: ${this.stderr}` : '')
    );
  }

  /** sends `signal` and waits for the exit (SIGKILLs after `timeoutMs`, then throws) */
  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
    timeoutMs = 20_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const t0 = Date.now();
    if (this.alive) this.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), timeoutMs);
    });
    const r = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (r === 'timeout') {
      this.child.kill('SIGKILL');
      await this.exited;
      throw new Error(`daemon did not exit within ${timeoutMs} ms of ${signal}; log:\n${this.tail()}`);
    }
    return { ...r, ms: Date.now() - t0 };
  }

  /** SIGKILL and wait; never throws (cleanup in finally blocks) */
  async kill(): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Producer-style drop: copy to `<drop>/.<name>.part`, then rename to `<drop>/<name>`. */
export function dropFile(src: string, drop: string, name = basename(src)): string {
  const part = join(drop, `.${name}.part`);
  copyFileSync(src, part);
  const target = join(drop, name);
  renameSync(part, target);
  return target;
}

/** Same for bytes made in the test. */
export function dropBytes(bytes: Uint8Array, drop: string, name: string): string {
  const part = join(drop, `.${name}.part`);
  writeFileSync(part, bytes);
  const target = join(drop, name);
  renameSync(part, target);
  return target;
}

export const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

export interface Manifest {
  version: number;
  parent: number | null;
  pipeline: string;
  method: string;
  checkpoints: { name: string; sha256: string; merged_at: string }[];
  files: Record<string, string>;
  [k: string]: unknown;
}

export function manifest(repo: string, pipeline: string, n: number): Manifest {
  return JSON.parse(readFileSync(join(repo, pipeline, String(n), 'manifest.json'), 'utf8')) as Manifest;
}

/** where `current` points (even when dangling: callers check the target), null without one */
export function currentVersion(repo: string, pipeline: string): number | null {
  try {
    return Number(readlinkSync(join(repo, pipeline, 'current')));
  } catch {
    return null;
  }
}

/** polls the repository until version n is published and `current` points at it */
export async function waitForVersion(
  repo: string,
  pipeline: string,
  n: number,
  timeoutMs = 30_000,
  d?: DaemonProc,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((currentVersion(repo, pipeline) ?? 0) < n) {
    if (d && !d.alive) throw new Error(`daemon exited while waiting for version ${n}; log:\n${d.tail()}`);
    if (Date.now() > deadline)
      throw new Error(`version ${n} not published within ${timeoutMs} ms${d ? `; log:\n${d.tail()}` : ''}`);
    await sleep(50);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(50);
  }
}

/** the daemon's /metrics text (its config has metrics_port; the URL is read from its log) */
export async function metricsText(d: DaemonProc): Promise<string> {
  const url = /^metrics on (http:\S+)/.exec((await d.waitFor(/^metrics on http/)).message)![1]!;
  return (await fetch(url)).text();
}

export interface StatusJson {
  pipelines: {
    name: string;
    current_version: number | null;
    queued: number;
    current_merge: {
      checkpoint: string;
      step: number;
      progress: { phase: string; done: number; total: number; at: string } | null;
    } | null;
    retrying: { checkpoint: string; step: number; attempts: number; last_error: string; last_at: string } | null;
    rejected: { name: string; reason: string }[];
    paused: { since: string; reason: string; kind: string } | null;
    waiting: {
      name: string;
      size: number;
      expected_size: number | null;
      reason: string;
      since: string;
      last_change: string;
    }[];
  }[];
}

export function status(config: string): StatusJson {
  const r = cmerge(['status', '--config', config, '--json']);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as StatusJson;
}

export interface HistoryEntryJson {
  pipeline: string;
  step: number;
  status: string;
  checkpoint: string;
  sha256: string | null;
  version: number | null;
}

export function history(config: string): HistoryEntryJson[] {
  const r = cmerge(['history', '--config', config, '--json']);
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { history: HistoryEntryJson[] }).history;
}

/** `cmerge verify` must exit 0; returns its output for diagnostics */
export function assertVerifyClean(config: string): string {
  const r = cmerge(['verify', '--config', config]);
  assert.equal(r.status, 0, `cmerge verify failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/**
 * The reference: a fresh uninterrupted `cmerge merge` of `checkpoints` in that order; asserts its
 * output is byte-identical to `published`.
 */
export function assertSameAsOneShot(opts: {
  base: string;
  checkpoints: string[];
  published: string;
  work: string;
  method?: string;
  params?: string[];
}): void {
  const out = join(opts.work, 'reference.safetensors');
  const r = cmerge([
    'merge',
    '--base',
    opts.base,
    '--state',
    join(opts.work, 'reference-state'),
    '--method',
    opts.method ?? 'opcm',
    ...(opts.params ?? ['--param', 'alpha=0.5']),
    '--out',
    out,
    ...opts.checkpoints,
  ]);
  assert.equal(r.status, 0, `cmerge merge failed: ${r.stderr}`);
  const a = readFileSync(out);
  const b = readFileSync(opts.published);
  assert.equal(a.length, b.length, 'reference and published model differ in size');
  if (a.equals(b)) return;
  let bytes = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) bytes++;
  // on a shared machine, a rebuilt native addon between the daemon's merges and the reference
  // changes results by an ulp or so: say so rather than leave a mystery
  const rebuilt =
    addonMtime() !== addonMtimeAtStart ? ' (the native addon was rebuilt during this test run: rerun)' : '';
  assert.fail(
    `published model is not byte-identical to the uninterrupted cmerge merge: ${bytes} of ${a.length} bytes differ${rebuilt}`,
  );
}

const addonPath = join(repoRoot, 'native', 'build', 'Release', 'cmerge_linalg.node');
const addonMtime = (): number | null => (existsSync(addonPath) ? statSync(addonPath).mtimeMs : null);
const addonMtimeAtStart = addonMtime();
