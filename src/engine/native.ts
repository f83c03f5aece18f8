import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Svd } from './types.js';

/** The cmerge_linalg addon (native/src/linalg/addon.cc). Inputs must match the dimensions exactly. */
export interface LinalgAddon {
  /** `solo`: wait until no job runs, then run alone with every BLAS thread */
  sgemm(
    a: Float32Array,
    b: Float32Array,
    m: number,
    k: number,
    n: number,
    transA: boolean,
    transB: boolean,
    solo?: boolean,
  ): Promise<Float32Array>;
  svd(a: Float32Array, m: number, n: number, solo?: boolean): Promise<Svd>;
  /** Process-wide; applied before the next job, never during one. */
  setThreads(threads: number): void;
  /** How many jobs may run at once; with more than one, each runs single-threaded BLAS. */
  setLanes(lanes: number): void;
  /** The pending setThreads value, else what OpenBLAS read from OPENBLAS_NUM_THREADS (default: cores). */
  getThreads(): number;
  /** σ ≤ nullTolerance·σ_max are reported as 0, their vectors completed orthonormally. */
  readonly nullTolerance: number;
}

/** The cmerge_sys addon (native/src/sys/sd_notify.cc). */
export interface SysAddon {
  /** One datagram to $NOTIFY_SOCKET; false when it is unset; throws when sending fails. */
  sdNotify(message: string): boolean;
}

export type AddonLoad<T> = { addon: T; error: null } | { addon: null; error: Error };

/** The package root, from src/engine (tsx) or dist/src/engine (compiled) alike. */
const packageRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + dirname(fileURLToPath(import.meta.url)));
    dir = up;
  }
  return dir;
})();

export const nativeBuildDir = join(packageRoot, 'native', 'build', 'Release');

const cache = new Map<string, AddonLoad<unknown>>();

/**
 * Loads native/build/Release/<name>.node once. Never throws: an absent or unloadable addon comes
 * back as { addon: null, error } whose message says why and how to build it.
 */
export function loadNativeAddon<T>(name: string): AddonLoad<T> {
  let load = cache.get(name);
  if (!load) {
    const file = join(nativeBuildDir, `${name}.node`);
    if (!existsSync(file)) {
      load = {
        addon: null,
        error: new Error(
          `${file} is not built (npm install runs native/build.mjs; it needs a C++ toolchain, ` +
            `and libopenblas-dev + liblapacke-dev for cmerge_linalg)`,
        ),
      };
    } else {
      try {
        load = { addon: createRequire(import.meta.url)(file) as unknown, error: null };
      } catch (e) {
        load = { addon: null, error: new Error(`${file} failed to load: ${(e as Error).message}`) };
      }
    }
    cache.set(name, load);
  }
  return load as AddonLoad<T>;
}

export const loadLinalg = (): AddonLoad<LinalgAddon> => loadNativeAddon<LinalgAddon>('cmerge_linalg');
export const loadSys = (): AddonLoad<SysAddon> => loadNativeAddon<SysAddon>('cmerge_sys');
/** Alias of loadLinalg: "the native engine's addon". */
export const loadNative = loadLinalg;
