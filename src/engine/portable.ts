import { matmulF32 } from './portable-matmul.js';
import { svdGram } from './portable-svd.js';
import { SerialQueue } from './serial.js';
import { CpuEngine } from './cpu-engine.js';
import type { MatmulOptions, Svd } from './types.js';
import { checkMatmulArgs, checkSvdArgs } from './validate.js';

/**
 * Pure TypeScript, correct on every machine, slow (~1 GFLOP/s) and run on the calling thread:
 * a job blocks the event loop for its whole duration.
 */
export class PortableEngine extends CpuEngine {
  readonly name = 'portable' as const;
  readonly concurrency = 1;
  private readonly queue = new SerialQueue();
  private closed = false;

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
    return this.queue.run(async () => {
      this.assertOpen();
      checkMatmulArgs(a, b, m, k, n);
      return matmulF32(a, b, m, k, n, opts.transA === true, opts.transB === true);
    });
  }

  svd(a: Float32Array, m: number, n: number): Promise<Svd> {
    return this.queue.run(async () => {
      this.assertOpen();
      checkSvdArgs(a, m, n);
      return svdGram(a, m, n);
    });
  }

  close(): void {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('engine is closed');
  }
}
