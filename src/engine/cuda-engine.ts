import { log } from '../util/log.js';
import type { CudaAddon, CudaAvailability, CudaSession } from './cuda.js';
import { libraryVersion } from './cuda.js';
import { EngineFatalError, EngineStoppedError } from './errors.js';
import { DeviceAdmission } from './device-admission.js';
import { opcmSplit, uncleaned } from './ops/opcm-clean.js';
import type { Cleaning, DopOptions, DopResult, Engine, EngineInfo, EngineStats, MatmulOptions, Svd } from './types.js';
import { checkDim, checkMatmulArgs, checkMatrix, checkSvdArgs } from './validate.js';

export interface CudaEngineOptions {
  device?: number;
  maxMemoryBytes?: number;
  tf32?: boolean;
  /** EngineOptions.stop: DOP's loop on the device reads it before each step */
  stop?: Int32Array;
  /** tensors of up to PAIR_MAX_ELEMENTS in flight at once (default 2; 1: one after the other) */
  jobs?: number;
}

/**
 * Tensors of at most this many elements go two at a time (docs/cuda-engine.md#overlap): while
 * one is on the device the host reads and decodes the next, and its SVD can start while the host
 * forms the other's τ. Larger ones (embeddings, LM heads, 7B MLPs) go alone, which keeps a
 * tensor-sized host buffer per lane within the RSS bounds (16 Mi elements: 64 MiB as float32).
 */
export const PAIR_MAX_ELEMENTS = 16 << 20;

/**
 * Device memory the libraries' own workspaces (cuBLAS, cuSOLVER) and the reductions' partial sums
 * may take beside the buffers an estimate counts.
 */
export const LIBRARY_SLACK = 64 << 20;

/** Device memory of one operation, bytes (docs/cuda-engine.md#memory: the SVD's float64 work dominates). */
export function opcmDeviceBytes(m: number, n: number): number {
  const s = Math.min(m, n);
  return 16 * m * n + 16 * s * s + 4 * (m + n) * s + LIBRARY_SLACK;
}

/**
 * DOP's optimisation (native/src/cuda/dop.cc): the larger of its two phases. Projecting: the three
 * inputs, the first projection's sides (factors 8·rows·k per side, or the dense rows×rows form,
 * no larger), and the second's SVD (float64 work, or its float32 factors while its sides are
 * formed). The loop: two inputs, seven m×n buffers, the k×max(m, n) product, both projections.
 */
export function dopDeviceBytes(m: number, n: number): number {
  const s = Math.min(m, n);
  const mn = m * n;
  const sides = 8 * (m + n) * s;
  const project = 12 * mn + sides + Math.max(16 * mn + 24 * s * s, 4 * mn + 20 * s * s + sides);
  const loop = 36 * mn + 4 * s * Math.max(m, n) + 2 * sides;
  return Math.max(project, loop) + LIBRARY_SLACK;
}

export function matmulDeviceBytes(m: number, k: number, n: number): number {
  return 4 * (m * k + k * n + m * n) + LIBRARY_SLACK;
}

/** A cuda rejection as the engine's error: a lost device poisons the process (EngineFatalError). */
function engineError(e: unknown): Error {
  const err = e as Error & { code?: string };
  if (err.code === 'CUDA_STICKY') return new EngineFatalError(`CUDA device lost: ${err.message}`);
  return err.code ? Object.assign(new Error(`cuda engine: ${err.message}`), { code: err.code }) : err;
}

/**
 * cuBLAS + cuSOLVER through the cmerge_cuda addon (docs/cuda-engine.md). The addon runs one job
 * at a time on the device; up to `jobs` operations are in flight, so the host's work for one
 * tensor overlaps the device's for another, as far as device memory allows (DeviceAdmission). An
 * operation that needs more device memory than is free (or than max_memory) runs on the CPU engine
 * instead, with a log line.
 */
export class CudaEngine implements Engine {
  readonly name = 'cuda' as const;
  readonly concurrency: number;
  private session: CudaSession | null;
  private readonly admission: DeviceAdmission;
  private cpu: Engine | null = null;
  private fallbacks = 0;
  /** operations started and not yet ended: close() waits for them before freeing the device */
  private active = 0;
  private closing = false;

  constructor(
    private readonly addon: CudaAddon,
    private readonly probe: CudaAvailability & { ok: true },
    private readonly opts: CudaEngineOptions,
    private readonly makeCpu: () => Engine,
  ) {
    if (opts.maxMemoryBytes !== undefined && !(opts.maxMemoryBytes > 0))
      throw new RangeError('max_memory must be positive');
    this.concurrency = opts.jobs ?? 2;
    checkDim(this.concurrency, 'jobs');
    this.session = addon.open(probe.ordinal, opts.maxMemoryBytes ?? 0, opts.tf32 === true);
    this.admission = new DeviceAdmission(() => this.room());
  }

  concurrencyFor(elements: number): number {
    return elements <= PAIR_MAX_ELEMENTS ? this.concurrency : 1;
  }

  async matmul(
    a: Float32Array,
    b: Float32Array,
    m: number,
    k: number,
    n: number,
    opts: MatmulOptions = {},
  ): Promise<Float32Array> {
    checkMatmulArgs(a, b, m, k, n);
    return this.onDevice(
      matmulDeviceBytes(m, k, n),
      `a ${m}×${k}·${k}×${n} product`,
      (s) => this.addon.sgemm(s, a, b, m, k, n, opts.transA === true, opts.transB === true),
      (cpu) => cpu.matmul(a, b, m, k, n, opts),
    );
  }

  async svd(a: Float32Array, m: number, n: number): Promise<Svd> {
    checkSvdArgs(a, m, n);
    return this.onDevice(
      opcmDeviceBytes(m, n),
      `the SVD of a ${m}×${n} matrix`,
      (s) => this.addon.svd(s, a, m, n),
      (cpu) => cpu.svd(a, m, n),
    );
  }

  async opcmClean(
    prev: Float32Array,
    loadTau: () => Float32Array,
    m: number,
    n: number,
    alpha: number,
  ): Promise<Cleaning> {
    checkDim(m, 'm');
    checkDim(n, 'n');
    checkSvdArgs(prev, m, n);
    return this.onDevice(
      opcmDeviceBytes(m, n),
      `OPCM cleaning of a ${m}×${n} tensor`,
      async (session) => {
        const { handle, s } = await this.addon.svdResident(session, prev, m, n);
        try {
          // the host forms τ (over prev's buffer) while the device may run another tensor's SVD
          const { k, rank, prevSq, leadSq } = opcmSplit(s, alpha, m, n);
          const tau = loadTau();
          checkMatrix(tau, m, n, 'tau');
          if (rank === 0) return uncleaned(tau, prevSq);
          const { removedSq, cleanedSq } = await this.addon.opcmApply(handle, tau, k, rank);
          return { cleaned: tau, split: k, removedSq, cleanedSq, prevSq, leadSq };
        } finally {
          await this.addon.freeResident(handle).catch(() => undefined);
        }
      },
      (cpu) => cpu.opcmClean(prev, loadTau, m, n, alpha),
    );
  }

  async dopOptimize(
    base: Float32Array,
    wa: Float32Array,
    wb: Float32Array,
    m: number,
    n: number,
    o: DopOptions,
  ): Promise<DopResult> {
    checkDim(m, 'm');
    checkDim(n, 'n');
    checkMatrix(base, m, n, 'base');
    checkMatrix(wa, m, n, 'wa');
    checkMatrix(wb, m, n, 'wb');
    return this.onDevice(
      dopDeviceBytes(m, n),
      `DOP optimisation of a ${m}×${n} tensor`,
      async (s) => {
        const r = await this.addon.dopOptimize(s, base, wa, wb, m, n, { ...o, stop: this.opts.stop });
        if (r.stopped) throw new EngineStoppedError();
        return {
          w: r.w,
          lossA: r.lossA,
          lossB: r.lossB,
          weights: [r.weightA, r.weightB] as [number, number],
          rankA: r.rankA,
          rankB: r.rankB,
        };
      },
      (cpu) => cpu.dopOptimize(base, wa, wb, m, n, o),
    );
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

  /** Frees the device memory and handles; with operations still running, once they end. */
  close(): void {
    this.closing = true;
    if (this.active === 0) this.closeNow();
    this.cpu?.close();
    this.cpu = null;
  }

  private closeNow(): void {
    if (this.session) this.addon.close(this.session);
    this.session = null;
  }

  /**
   * Runs `run` on the device once `bytes` of device memory are reserved for it, or `cpu` on the
   * CPU engine when they are not there even with nothing else in flight (one warning per engine).
   */
  private async onDevice<T>(
    bytes: number,
    what: string,
    run: (s: CudaSession) => Promise<T>,
    cpu: (e: Engine) => Promise<T>,
  ): Promise<T> {
    if (this.closing || !this.session) throw new Error('engine is closed');
    const session = this.session;
    this.active++;
    try {
      let admitted: boolean;
      try {
        admitted = await this.admission.admit(bytes);
      } catch (e) {
        throw engineError(e);
      }
      if (!admitted) {
        if (++this.fallbacks === 1) {
          log.warn(
            `engine: ${what} needs ~${(bytes / 2 ** 30).toFixed(2)} GiB of device memory, ${(this.room() / 2 ** 30).toFixed(2)} GiB available: it runs on the CPU engine (and any other that does not fit)`,
          );
        }
        return await cpu(this.fallback());
      }
      try {
        return await run(session);
      } catch (e) {
        throw engineError(e);
      } finally {
        this.admission.release(bytes);
      }
    } finally {
      if (--this.active === 0 && this.closing) this.closeNow();
    }
  }

  /** Device memory an operation may take now: min(max_memory, the device's free memory). */
  private room(): number {
    return this.session
      ? Math.min(this.opts.maxMemoryBytes ?? Infinity, this.addon.memInfo(this.session).free)
      : Infinity;
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
