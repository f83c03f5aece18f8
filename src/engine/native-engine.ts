import type { LinalgAddon } from './native.js';
import { EngineStoppedError } from './errors.js';
import { SerialQueue } from './serial.js';
import { CpuEngine } from './cpu-engine.js';
import { adamConstants, dopProjections, dopStart } from './ops/dop-optimize.js';
import { opcmSplit, uncleaned } from './ops/opcm-clean.js';
import type { Cleaning, DopOptions, DopResult, EngineInfo, EngineWork, MatmulOptions, Svd } from './types.js';
import { checkDim, checkMatmulArgs, checkSvdArgs } from './validate.js';

/**
 * Jobs on a matrix of more elements than this run alone with every BLAS thread (the addon's solo
 * jobs); smaller ones share the lanes. concurrencyFor tells callers, so the runner keeps such
 * tensors one at a time (which also bounds its memory).
 */
export const SOLO_MIN_ELEMENTS = 3 << 20;
/**
 * The same limit for OPCM's cleaning, whose jobs hold less (EngineWork). Two single-threaded
 * cleanings side by side beat one two-threaded at a time: TinyLlama's MLP tensors (5632×2048,
 * 11.5 Mi elements) under this limit made its OPCM step 294–300 → 248–259 s with peak RSS
 * 709 → 784 MiB (docs/performance.md). 7B-sized tensors (4096×4096 and up) stay above it.
 */
export const OPCM_SOLO_MIN_ELEMENTS = 12 << 20;

const solo = (elements: number, work: EngineWork = 'other'): boolean =>
  elements > (work === 'opcm-clean' ? OPCM_SOLO_MIN_ELEMENTS : SOLO_MIN_ELEMENTS);

/**
 * OpenBLAS/LAPACKE through the cmerge_linalg addon. Jobs run on the libuv pool; the caller must
 * not modify input arrays until the returned promise settles (the addon reads them in place).
 */
export class NativeEngine extends CpuEngine {
  readonly name = 'native' as const;
  readonly concurrency: number;
  private readonly queue: SerialQueue;
  private closed = false;

  /**
   * `jobs`: jobs run at once, each with single-threaded BLAS when above 1 (see the addon's lanes).
   * Default: as many as the BLAS threads, up to 2 (on 2 cores two single-threaded SVDs side by side
   * do ~1.6x the work of one two-threaded SVD; past 2, in-flight tensors would cost memory).
   */
  constructor(
    private readonly addon: LinalgAddon,
    opts: { threads?: number; jobs?: number; stop?: Int32Array } = {},
  ) {
    super(opts.stop);
    if (opts.threads !== undefined) {
      checkDim(opts.threads, 'threads');
      addon.setThreads(opts.threads);
    }
    const jobs = opts.jobs ?? Math.min(2, this.threads);
    checkDim(jobs, 'jobs');
    this.concurrency = jobs;
    this.queue = new SerialQueue(jobs);
    addon.setLanes(jobs);
  }

  override info(): EngineInfo {
    return { name: this.name, blas_core: this.addon.blasCore() };
  }

  concurrencyFor(elements: number, work: EngineWork = 'other'): number {
    return solo(elements, work) ? 1 : this.concurrency;
  }

  /** BLAS threads the next job will use (process-wide in OpenBLAS). */
  get threads(): number {
    return this.addon.getThreads();
  }

  matmul(
    a: Float32Array,
    b: Float32Array,
    m: number,
    k: number,
    n: number,
    opts: MatmulOptions = {},
  ): Promise<Float32Array> {
    return this.queue.run(async () => {
      this.assertOpen();
      checkMatmulArgs(a, b, m, k, n);
      return this.addon.sgemm(
        a,
        b,
        m,
        k,
        n,
        opts.transA === true,
        opts.transB === true,
        solo(Math.max(m * k, k * n, m * n)),
      );
    });
  }

  svd(a: Float32Array, m: number, n: number): Promise<Svd> {
    return this.queue.run(async () => {
      this.assertOpen();
      checkSvdArgs(a, m, n);
      return this.addon.svd(a, m, n, solo(m * n));
    });
  }

  /**
   * OPCM's cleaning as engine/ops/opcm-clean.ts computes it (same bits), in two addon jobs: the SVD,
   * whose U and V stay in native memory, then the products and sums, which free them. U, V and the
   * blocks' products never become JavaScript garbage (peak RSS), and no element-wise pass runs on
   * the event loop.
   */
  override async opcmClean(
    prev: Float32Array,
    loadTau: () => Float32Array,
    m: number,
    n: number,
    alpha: number,
  ): Promise<Cleaning> {
    const big = solo(m * n, 'opcm-clean');
    const { s, handle } = await this.queue.run(async () => {
      this.assertOpen();
      checkSvdArgs(prev, m, n);
      return this.addon.svdKeep(prev, m, n, big);
    });
    const { k, rank, prevSq, leadSq } = opcmSplit(s, alpha, m, n);
    let tau: Float32Array;
    try {
      tau = loadTau();
    } catch (e) {
      this.addon.svdRelease(handle);
      throw e;
    }
    if (rank === 0) {
      this.addon.svdRelease(handle);
      return uncleaned(tau, prevSq);
    }
    const sums = await this.queue.run(async () => {
      this.assertOpen();
      return this.addon.opcmApply(handle, tau, k, rank, big);
    });
    return { cleaned: tau, split: k, removedSq: sums.removedSq, cleanedSq: sums.cleanedSq, prevSq, leadSq };
  }

  /**
   * The projections as on every CPU engine (engine/ops/dop-optimize.ts), then the Adam loop in the
   * addon: one job per tensor instead of four products, their allocations and six JavaScript passes
   * per step (same arithmetic, same bits).
   */
  override async dopOptimize(
    base: Float32Array,
    wa: Float32Array,
    wb: Float32Array,
    m: number,
    n: number,
    o: DopOptions,
  ): Promise<DopResult> {
    const { pa, pb } = await dopProjections(this, base, wa, wb, m, n, o);
    const w = dopStart(wa, wb);
    const { stepSize, bc2sqrt } = adamConstants(o);
    const r = await this.queue.run(async () => {
      this.assertOpen();
      return this.addon.dopAdam(
        w,
        pa,
        pb,
        m,
        n,
        {
          numSteps: o.num_steps,
          mgda: o.mgda,
          ema: o.ema,
          emaBeta: o.ema_beta,
          alpha: o.alpha,
          stepSize,
          bc2sqrt,
          stop: this.stop ?? undefined,
        },
        solo(m * n),
      );
    });
    if (r.stopped) throw new EngineStoppedError();
    return {
      w,
      lossA: r.lossA,
      lossB: r.lossB,
      weights: o.mgda ? [r.weightA, r.weightB] : [o.alpha, 1 - o.alpha],
      rankA: pa.rank,
      rankB: pb.rank,
    };
  }

  close(): void {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('engine is closed');
  }
}
