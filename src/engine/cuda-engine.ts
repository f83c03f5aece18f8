import { log } from '../util/log.js';
import type { CudaAddon, CudaAvailability, CudaSession } from './cuda.js';
import { libraryVersion } from './cuda.js';
import { EngineFatalError, EngineStoppedError } from './errors.js';
import { opcmSplit, uncleaned } from './ops/opcm-clean.js';
import { SerialQueue } from './serial.js';
import type { Cleaning, DopOptions, DopResult, Engine, EngineInfo, EngineStats, MatmulOptions, Svd } from './types.js';
import { checkDim, checkMatmulArgs, checkMatrix, checkSvdArgs } from './validate.js';

export interface CudaEngineOptions {
  device?: number;
  maxMemoryBytes?: number;
  tf32?: boolean;
  /** EngineOptions.stop: DOP's loop on the device reads it before each step */
  stop?: Int32Array;
}

/** Device memory of one operation, bytes (docs/cuda-engine.md: the SVD's float64 work dominates). */
export function opcmDeviceBytes(m: number, n: number): number {
  const s = Math.min(m, n);
  return 16 * m * n + 16 * s * s + 4 * (m + n) * s + (64 << 20);
}

export function dopDeviceBytes(m: number, n: number): number {
  const s = Math.min(m, n);
  return 28 * m * n + 16 * s * s + 4 * (m * m + n * n) + (64 << 20);
}

/** A cuda rejection as the engine's error: a lost device poisons the process (EngineFatalError). */
function engineError(e: unknown): Error {
  const err = e as Error & { code?: string };
  if (err.code === 'CUDA_STICKY') return new EngineFatalError(`CUDA device lost: ${err.message}`);
  return err.code ? Object.assign(new Error(`cuda engine: ${err.message}`), { code: err.code }) : err;
}

/**
 * cuBLAS + cuSOLVER through the cmerge_cuda addon (docs/cuda-engine.md). One job at a time; the
 * coarse operations keep their tensors on the device. An operation that needs more device memory
 * than is free (or than max_memory) runs on the CPU engine instead, with a log line.
 */
export class CudaEngine implements Engine {
  readonly name = 'cuda' as const;
  readonly concurrency = 1;
  private readonly queue = new SerialQueue(1);
  private session: CudaSession | null;
  private cpu: Engine | null = null;
  private fallbacks = 0;

  constructor(
    private readonly addon: CudaAddon,
    private readonly probe: CudaAvailability & { ok: true },
    private readonly opts: CudaEngineOptions,
    private readonly makeCpu: () => Engine,
  ) {
    if (opts.maxMemoryBytes !== undefined && !(opts.maxMemoryBytes > 0))
      throw new RangeError('max_memory must be positive');
    this.session = addon.open(probe.ordinal, opts.maxMemoryBytes ?? 0, opts.tf32 === true);
  }

  concurrencyFor(): number {
    return 1;
  }

  matmul(
    a: Float32Array,
    b: Float32Array,
    m: number,
    k: number,
    n: number,
    opts: MatmulOptions = {},
  ): Promise<Float32Array> {
    return this.job(async (s) => {
      checkMatmulArgs(a, b, m, k, n);
      return this.addon.sgemm(s, a, b, m, k, n, opts.transA === true, opts.transB === true);
    });
  }

  svd(a: Float32Array, m: number, n: number): Promise<Svd> {
    return this.job(async (s) => {
      checkSvdArgs(a, m, n);
      return this.addon.svd(s, a, m, n);
    });
  }

  opcmClean(prev: Float32Array, loadTau: () => Float32Array, m: number, n: number, alpha: number): Promise<Cleaning> {
    checkDim(m, 'm');
    checkDim(n, 'n');
    if (!this.fits(opcmDeviceBytes(m, n), `OPCM cleaning of a ${m}×${n} tensor`))
      return this.fallback().opcmClean(prev, loadTau, m, n, alpha);
    return this.job(async (session) => {
      checkSvdArgs(prev, m, n);
      const { handle, s } = await this.addon.svdResident(session, prev, m, n);
      try {
        const { k, rank, prevSq, leadSq } = opcmSplit(s, alpha, m, n);
        const tau = loadTau();
        checkMatrix(tau, m, n, 'tau');
        if (rank === 0) return uncleaned(tau, prevSq);
        const { removedSq, cleanedSq } = await this.addon.opcmApply(handle, tau, k, rank);
        return { cleaned: tau, split: k, removedSq, cleanedSq, prevSq, leadSq };
      } finally {
        await this.addon.freeResident(handle).catch(() => undefined);
      }
    });
  }

  dopOptimize(
    base: Float32Array,
    wa: Float32Array,
    wb: Float32Array,
    m: number,
    n: number,
    o: DopOptions,
  ): Promise<DopResult> {
    checkDim(m, 'm');
    checkDim(n, 'n');
    if (!this.fits(dopDeviceBytes(m, n), `DOP optimisation of a ${m}×${n} tensor`))
      return this.fallback().dopOptimize(base, wa, wb, m, n, o);
    return this.job(async (s) => {
      checkMatrix(base, m, n, 'base');
      checkMatrix(wa, m, n, 'wa');
      checkMatrix(wb, m, n, 'wb');
      const r = await this.addon.dopOptimize(s, base, wa, wb, m, n, { ...o, stop: this.opts.stop });
      if (r.stopped) throw new EngineStoppedError();
      return {
        w: r.w,
        lossA: r.lossA,
        lossB: r.lossB,
        weights: [r.weightA, r.weightB],
        rankA: r.rankA,
        rankB: r.rankB,
      };
    });
  }

  info(): EngineInfo {
    const p = this.probe;
    return {
      name: 'cuda',
      device: `${p.ordinal}: ${p.name} (sm_${p.cc.replace('.', '')}, ${(p.totalBytes / 2 ** 30).toFixed(1)} GiB)`,
      versions: {
        driver: p.driver,
        runtime: p.runtime,
        cublas: libraryVersion('cublas', p.cublas),
        cusolver: libraryVersion('cusolver', p.cusolver),
      },
      tf32: this.opts.tf32 === true,
    };
  }

  stats(): EngineStats | null {
    if (!this.session) return null;
    const s = this.addon.stats(this.session);
    return { gpuSeconds: s.gpuSeconds, peakDeviceBytes: s.peakDeviceBytes, cpuFallbacks: this.fallbacks };
  }

  resetStats(): void {
    if (this.session) this.addon.resetStats(this.session);
    this.fallbacks = 0;
  }

  close(): void {
    if (this.session) this.addon.close(this.session);
    this.session = null;
    this.cpu?.close();
    this.cpu = null;
  }

  private job<T>(run: (s: CudaSession) => Promise<T>): Promise<T> {
    return this.queue.run(async () => {
      if (!this.session) throw new Error('engine is closed');
      try {
        return await run(this.session);
      } catch (e) {
        throw engineError(e);
      }
    });
  }

  /** Whether `bytes` of device memory are there for one operation: free memory and max_memory. */
  private fits(bytes: number, what: string): boolean {
    if (!this.session) return true; // job() reports the closed engine
    const limit = Math.min(this.opts.maxMemoryBytes ?? Infinity, this.addon.memInfo(this.session).free);
    if (bytes <= limit) return true;
    this.fallbacks++;
    if (this.fallbacks === 1)
      log.warn(
        `engine: ${what} needs ~${(bytes / 2 ** 30).toFixed(2)} GiB of device memory, ${(limit / 2 ** 30).toFixed(2)} GiB available: it runs on the CPU engine (and any other that does not fit)`,
      );
    return false;
  }

  private fallback(): Engine {
    this.cpu ??= this.makeCpu();
    return this.cpu;
  }
}

/** The cuda engine; `announce` gets the line naming the GPU, driver and CUDA versions. */
export function createCudaEngine(
  probe: CudaAvailability & { ok: true },
  opts: CudaEngineOptions,
  makeCpu: () => Engine,
  choice: string,
  announce: (line: string, level: 'info') => void,
): Engine {
  const engine = new CudaEngine(probe.addon, probe, opts, makeCpu);
  const i = engine.info();
  announce(
    `engine: cuda (${i.device}, driver ${i.versions?.driver}, CUDA runtime ${i.versions?.runtime}, cuBLAS ${i.versions?.cublas}, cuSOLVER ${i.versions?.cusolver}${i.tf32 ? ', TF32 products' : ''}), ${choice === 'cuda' ? 'as configured' : 'GPU found'}`,
    'info',
  );
  return engine;
}
