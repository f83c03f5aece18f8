/** Shared by the inspection commands (status, history, show, verify): opening, output helpers. */
import { existsSync } from 'node:fs';
import { loadConfig, type Config } from '../config/index.js';
import { openStore, type EngineRecord, type GpuFigures, type Store } from '../store/index.js';
import { configureLog } from '../util/log.js';

export interface Inspection {
  config: Config;
  store: Store;
}

/**
 * Load the config and open its database read-only: inspection must never take the daemon's write
 * lock or migrate under it, and WAL lets it read while the daemon writes.
 */
export function openInspection(configPath: string): Inspection {
  // stdout carries --json; anything logged goes to stderr
  configureLog({ stream: 'stderr', level: 'warn' });
  // what the config says must exist (the bases) is reported before "no database yet"
  const config = loadConfig(configPath, { paths: 'inspect' });
  // better-sqlite3's own message ("unable to open database file") does not say which file or why
  if (!existsSync(config.db_path)) {
    throw new Error(
      `${config.db_path}: no database yet (the daemon creates it on its first start with ${config.file})`,
    );
  }
  return { config, store: openStore(config.db_path, { readonly: true }) };
}

/** Run fn with an open inspection, closing the database whatever happens. */
export async function withInspection<T>(configPath: string, fn: (i: Inspection) => T | Promise<T>): Promise<T> {
  const inspection = openInspection(configPath);
  try {
    return await fn(inspection);
  } finally {
    inspection.store.close();
  }
}

/** Pipelines to report: configured ones first (even if never used), then any only the database knows. */
export function pipelineNames({ config, store }: Inspection): string[] {
  return [...new Set([...config.pipelines.map((p) => p.name), ...store.pipelines()])];
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

/** A plain left-aligned table; columns as wide as their widest cell. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((s, c) => (c === cells.length - 1 ? s : s.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** Enough of a sha256 to tell versions apart by eye; --json always has the full one. */
export const shortSha = (s: string | null | undefined): string => (s ? s.slice(0, 12) : '-');

export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export function fmtNum(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined) return '-';
  if (!Number.isFinite(x)) return String(x);
  // toPrecision for a fixed number of significant digits, Number() to drop trailing zeros
  return Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(digits)));
}

/** λ first (the scalar people look for), then the rest by name. */
export function fmtScalars(s: Record<string, number> | null | undefined): string {
  if (!s) return '-';
  const keys = Object.keys(s).sort((a, b) => (a === 'lambda' ? -1 : b === 'lambda' ? 1 : a.localeCompare(b)));
  if (!keys.length) return '-';
  return keys.map((k) => `${k === 'lambda' ? 'λ' : k}=${fmtNum(s[k])}`).join(' ');
}

export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${n.toFixed(1)} ${units[unit]}`;
}

/** "cuda on 0: NVIDIA H200 (...), TF32" or "native, Haswell kernels". */
export function fmtEngine(e: EngineRecord | null | undefined): string {
  if (!e) return '-';
  return `${e.name}${e.device ? ` on ${e.device}` : ''}${e.tf32 ? ', TF32' : ''}${e.blas_core ? `, ${e.blas_core} kernels` : ''}`;
}

/** "GPU 3.21 s, peak device memory 7.9 GiB" (+ CPU fallbacks when any); '' for the CPU engines. */
export function fmtGpu(g: GpuFigures | null | undefined): string {
  if (!g) return '';
  const fallbacks = g.cpu_fallbacks ? `, ${g.cpu_fallbacks} operations on the CPU (device memory)` : '';
  return `GPU ${fmtMs(g.gpu_seconds * 1000)}, peak device memory ${fmtBytes(g.peak_device_bytes)}${fallbacks}`;
}

/** Positive integer argument, or a usage error naming it. */
export function positiveInt(v: string, what: string, makeError: (msg: string) => Error): number {
  const n = /^[1-9][0-9]*$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw makeError(`${what} must be a positive integer, got "${v}"`);
  return n;
}
