import { log } from '../util/log.js';
import { loadLinalg } from './native.js';
import { NativeEngine } from './native-engine.js';
import { PortableEngine } from './portable.js';
import type { Engine } from './types.js';

export type { Engine, EngineName, MatmulOptions, Svd } from './types.js';

export type EngineChoice = 'auto' | 'native' | 'portable';

export interface EngineOptions {
  /** BLAS threads (native only; process-wide). Default: OPENBLAS_NUM_THREADS, else all cores. */
  threads?: number;
  /** native: jobs at once (default min(2, threads)); CMERGE_ENGINE_JOBS overrides */
  jobs?: number;
}

/**
 * `auto`: native when its addon loaded, else portable. `native`: throws when the addon is
 * unavailable, saying why. Logs one line naming the engine that runs and why.
 */
export function createEngine(choice: EngineChoice, opts: EngineOptions = {}): Engine {
  if (choice === 'portable') {
    log.info('engine: portable (TypeScript), as configured');
    return new PortableEngine();
  }
  if (choice !== 'native' && choice !== 'auto') throw new Error(`unknown engine "${String(choice)}"`);
  const load = loadLinalg();
  if (load.addon) {
    const envJobs = Number(process.env.CMERGE_ENGINE_JOBS);
    const engine = new NativeEngine(load.addon, { ...opts, jobs: opts.jobs ?? (envJobs > 0 ? envJobs : undefined) });
    const lanes = engine.concurrency > 1 ? `${engine.concurrency} jobs at once, 1 BLAS thread each` : `${engine.threads} BLAS threads`;
    log.info(`engine: native (OpenBLAS/LAPACKE addon, ${lanes}), ${choice === 'auto' ? 'addon loaded' : 'as configured'}`);
    return engine;
  }
  if (choice === 'native') throw new Error(`native engine unavailable: ${load.error.message}`);
  log.warn(`engine: portable (TypeScript, much slower), native addon unavailable: ${load.error.message}`);
  return new PortableEngine();
}
