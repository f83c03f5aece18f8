import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Svd } from './types.js';

/** One side of a DOP quadratic form, as the addon takes it. */
export interface DopAddonSide {
  dense: Float32Array | null;
  f: Float32Array;
  g: Float32Array;
  k: number;
}

/** One DOP loss: the model it pulls towards and its two sides. */
export interface DopAddonProjection {
  w: Float32Array;
  left: DopAddonSide | null;
  right: DopAddonSide | null;
}

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
  /**
   * DOP's Adam loop for one tensor (native/src/linalg/dop.h): the arithmetic of the JavaScript loop
   * in engine/ops/dop-optimize.ts, same bits. `w` holds the start point and is updated in place.
   */
  dopAdam(
    w: Float32Array,
    pa: DopAddonProjection,
    pb: DopAddonProjection,
    m: number,
    n: number,
    opts: {
      numSteps: number;
      mgda: boolean;
      ema: boolean;
      emaBeta: number;
      alpha: number;
      stepSize: Float64Array;
      bc2sqrt: Float64Array;
      /** read before each step: nonzero ends the loop there, resolving with `stopped` */
      stop?: Int32Array;
    },
    solo?: boolean,
  ): Promise<{ lossA: number; lossB: number; weightA: number; weightB: number; stopped: boolean }>;
  /** svd with U and V kept in native memory behind `handle`, for opcmApply (or svdRelease). */
  svdKeep(a: Float32Array, m: number, n: number, solo?: boolean): Promise<{ s: Float64Array; handle: object }>;
  /**
   * OPCM's cleaning (native/src/linalg/opcm.h) with the kept U and V: tau becomes τ − U Q Vᵀ, and
   * the handle's U and V are freed. Same arithmetic as engine/ops/opcm-clean.ts, same bits.
   */
  opcmApply(
    handle: object,
    tau: Float32Array,
    k: number,
    rank: number,
    solo?: boolean,
  ): Promise<{ removedSq: number; cleanedSq: number }>;
  /** Frees a kept SVD's U and V now. */
  svdRelease(handle: object): void;
  /** Process-wide; applied before the next job, never during one. */
  setThreads(threads: number): void;
  /** How many jobs may run at once; with more than one, each runs single-threaded BLAS. */
  setLanes(lanes: number): void;
  /** The pending setThreads value, else what OpenBLAS read from OPENBLAS_NUM_THREADS (default: cores). */
  getThreads(): number;
  /** The kernel set OpenBLAS runs (e.g. "SkylakeX"), as it reports it. */
  blasCore(): string;
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
