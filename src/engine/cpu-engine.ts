import { dopOptimize } from './ops/dop-optimize.js';
import { opcmClean } from './ops/opcm-clean.js';
import type {
  Cleaning,
  DopOptions,
  DopResult,
  Engine,
  EngineInfo,
  EngineStats,
  EngineWork,
  MatmulOptions,
  Svd,
} from './types.js';

/**
 * What the CPU engines share: the coarse operations are written with their own matmul and svd
 * (engine/ops), and there is no device to report on.
 */
export abstract class CpuEngine implements Engine {
  /** `stop`: see EngineOptions.stop; read by the jobs that loop over a tensor (DOP's Adam loop). */
  constructor(protected readonly stop: Int32Array | null = null) {}

  abstract readonly name: 'native' | 'portable';
  abstract readonly concurrency: number;
  abstract concurrencyFor(elements: number, work?: EngineWork): number;
  abstract matmul(
    a: Float32Array,
    b: Float32Array,
    m: number,
    k: number,
    n: number,
    opts?: MatmulOptions,
  ): Promise<Float32Array>;
  abstract svd(a: Float32Array, m: number, n: number): Promise<Svd>;
  abstract close(): void;

  opcmClean(prev: Float32Array, loadTau: () => Float32Array, m: number, n: number, alpha: number): Promise<Cleaning> {
    return opcmClean(this, prev, loadTau, m, n, alpha);
  }

  dopOptimize(
    base: Float32Array,
    wa: Float32Array,
    wb: Float32Array,
    m: number,
    n: number,
    o: DopOptions,
  ): Promise<DopResult> {
    return dopOptimize(this, base, wa, wb, m, n, o, this.stop);
  }

  info(): EngineInfo {
    return { name: this.name };
  }

  stats(): EngineStats | null {
    return null;
  }

  resetStats(): void {}
}
