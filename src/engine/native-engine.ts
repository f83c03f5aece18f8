import type { LinalgAddon } from './native.js';
import { SerialQueue } from './serial.js';
import { CpuEngine } from './cpu-engine.js';
import type { MatmulOptions, Svd } from './types.js';
import { checkDim, checkMatmulArgs, checkSvdArgs } from './validate.js';

/**
 * Jobs on a matrix of more elements than this run alone with every BLAS thread (the addon's solo
 * jobs); smaller ones share the lanes. concurrencyFor tells callers, so the runner keeps such
 * tensors one at a time (which also bounds its memory).
 */
export const SOLO_MIN_ELEMENTS = 3 << 20;

const solo = (elements: number): boolean => elements > SOLO_MIN_ELEMENTS;

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
    opts: { threads?: number; jobs?: number } = {},
  ) {
    super();
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

  concurrencyFor(elements: number): number {
    return solo(elements) ? 1 : this.concurrency;
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

  close(): void {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('engine is closed');
  }
}
