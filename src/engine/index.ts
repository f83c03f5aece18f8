import { log } from '../util/log.js';
import { probeCuda } from './cuda.js';
import { createCudaEngine } from './cuda-engine.js';
import { EngineUnavailableError } from './errors.js';
import { loadLinalg } from './native.js';
import { NativeEngine } from './native-engine.js';
import { PortableEngine } from './portable.js';
import type { Engine } from './types.js';

export type {
  Cleaning,
  DopOptions,
  DopResult,
  Engine,
  EngineInfo,
  EngineName,
  EngineStats,
  MatmulOptions,
  Svd,
} from './types.js';
export { EngineFatalError, EngineStoppedError, EngineUnavailableError } from './errors.js';

/** What an operator may ask for: a named engine, or `auto` (cuda where a GPU answers, else native, else portable). */
export const ENGINE_CHOICES = ['auto', 'native', 'portable', 'cuda'] as const;
export type EngineChoice = (typeof ENGINE_CHOICES)[number];

export interface CudaOptions {
  /** CUDA device ordinal (default 0) */
  device?: number;
  /** device memory this engine may hold; an operation needing more runs on the CPU engine */
  maxMemoryBytes?: number;
  /** products in TF32 (faster, ~1e-3 relative error: off unless configured) */
  tf32?: boolean;
}

export interface EngineOptions {
  /** BLAS threads (native only; process-wide). Default: OPENBLAS_NUM_THREADS, else all cores. */
  threads?: number;
  /**
   * native: jobs at once (default min(2, threads)); cuda: tensors of up to 64 MiB in flight
   * (default 2). CMERGE_ENGINE_JOBS overrides both.
   */
  jobs?: number;
  cuda?: CudaOptions;
  /**
   * Receives the line naming the engine that runs and why, instead of the log (default: logged,
   * at warn for the portable fallback): the daemon logs it once, not on every merge.
   */
  announce?: EngineAnnounce;
  /**
   * A flag, 0 to run: once set (from any thread: it may live in a SharedArrayBuffer), a job that
   * loops over one tensor ends at its next iteration with EngineStoppedError, so that a merge
   * being abandoned does not run on inside one tensor (CPU engines; DOP's Adam loop).
   */
  stop?: Int32Array;
}

export type EngineAnnounce = (line: string, level: 'info' | 'warn') => void;

const logAnnounce: EngineAnnounce = (line, level) => void log.log(level, line);

/** EngineOptions.jobs, else CMERGE_ENGINE_JOBS when it is a positive number. */
function jobsOf(opts: EngineOptions): number | undefined {
  const env = Number(process.env.CMERGE_ENGINE_JOBS);
  return opts.jobs ?? (env > 0 ? env : undefined);
}

/**
 * "Haswell kernels (OPENBLAS_CORETYPE)": which OpenBLAS kernel set runs and who chose it. It sets
 * the speed (AVX2 kernels run at ~0.6x the AVX-512 ones on an AVX-512 core) and, on CPUs newer than
 * the OpenBLAS release, whether its detected set is safe (docs/performance.md#blas-kernels).
 */
function kernelsNote(core: string): string {
  return `${core} kernels (${process.env.OPENBLAS_CORETYPE ? 'OPENBLAS_CORETYPE' : "OpenBLAS's CPU detection"})`;
}

/** The best CPU engine: native when its addon loaded, else portable (with a warning). */
function cpuEngine(choice: EngineChoice, opts: EngineOptions): Engine {
  const announce = opts.announce ?? logAnnounce;
  const load = loadLinalg();
  if (load.addon) {
    const engine = new NativeEngine(load.addon, { ...opts, jobs: jobsOf(opts) });
    const lanes =
      engine.concurrency > 1
        ? `${engine.concurrency} jobs at once, 1 BLAS thread each`
        : `${engine.threads} BLAS threads`;
    announce(
      `engine: native (OpenBLAS/LAPACKE addon, ${lanes}, ${kernelsNote(load.addon.blasCore())}), ` +
        `${choice === 'native' ? 'as configured' : 'addon loaded'}`,
      'info',
    );
    return engine;
  }
  if (choice === 'native') throw new EngineUnavailableError(`native engine unavailable: ${load.error.message}`);
  announce(`engine: portable (TypeScript, much slower), native addon unavailable: ${load.error.message}`, 'warn');
  return new PortableEngine(opts.stop);
}

/**
 * `auto`: cuda when a usable GPU is found, else native when its addon loaded, else portable.
 * `cuda` / `native`: throws EngineUnavailableError, one line saying what is missing. Announces one
 * line naming the engine that runs and why (for cuda: the GPU, driver and CUDA versions).
 */
export function createEngine(choice: EngineChoice, opts: EngineOptions = {}): Engine {
  if (choice === 'portable') {
    (opts.announce ?? logAnnounce)('engine: portable (TypeScript), as configured', 'info');
    return new PortableEngine(opts.stop);
  }
  if (choice !== 'native' && choice !== 'auto' && choice !== 'cuda')
    throw new Error(`unknown engine "${String(choice)}"`);
  if (choice === 'cuda' || choice === 'auto') {
    const probe = probeCuda(opts.cuda?.device ?? 0);
    if (probe.ok)
      return createCudaEngine(
        probe,
        { ...opts.cuda, stop: opts.stop, jobs: jobsOf(opts) },
        () => cpuEngine('auto', opts),
        choice,
        opts.announce ?? logAnnounce,
      );
    if (choice === 'cuda') throw new EngineUnavailableError(`cuda engine unavailable: ${probe.reason}`);
    log.debug(`engine: cuda not used: ${probe.reason}`);
  }
  return cpuEngine(choice, opts);
}
