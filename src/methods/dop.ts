import { z } from 'zod';
import type { Method, MethodStep, StepContext, StepUpdate, TaskSource, TensorJob } from './types.js';

/** DOP: dual orthogonal projections (docs/methods.md). State: M. t = 1: M = θ1. t ≥ 2: linear
 * tensors optimised between M_{t−1} and θ_t; other tensors averaged. */
const params = z.strictObject({
  lr: z.number().positive().default(1e-4),
  num_steps: z.number().int().min(0).default(200),
  mgda: z.boolean().default(true),
  ema: z.boolean().default(true),
  ema_beta: z.number().min(0).max(1).default(0.999),
  alpha: z.number().min(0).max(1).default(0.8),
  svd_epsilon: z.number().gt(0).max(1).default(0.99999),
  svd_proj_space: z.enum(['uv', 'u', 'v']).default('uv'),
});
export type DopParams = z.output<typeof params>;

class DopStep implements MethodStep {
  readonly analysisPasses = 0;
  private readonly losses: Record<string, [number, number]> = {};
  private readonly weights: Record<string, [number, number]> = {};
  private readonly ranks: Record<string, [number, number]> = {};

  constructor(private readonly ctx: StepContext<DopParams>) {}

  async updateTask(job: TensorJob, src: TaskSource): Promise<StepUpdate> {
    const { base, prev, ckpt } = src.tensors();
    if (prev === null) return { state: ckpt };
    if (job.kind !== 'linear') {
      for (let i = 0; i < ckpt.length; i++) ckpt[i] = (prev[i] + ckpt[i]) / 2;
      return { state: ckpt };
    }
    const kept = oneSidedMinimizer(base, prev, ckpt);
    if (kept !== null) return this.keep(job, kept === 'merged' ? prev : ckpt, kept);
    const [m, n] = job.shape;
    const opt = await this.ctx.engine.dopOptimize(base, prev, ckpt, m, n, this.ctx.params);
    this.losses[job.name] = [opt.lossA, opt.lossB];
    this.weights[job.name] = opt.weights;
    this.ranks[job.name] = [opt.rankA, opt.rankB];
    return {
      state: opt.w,
      metrics: {
        loss_merged: opt.lossA,
        loss_new: opt.lossB,
        weight_merged: opt.weights[0],
        weight_new: opt.weights[1],
      },
    };
  }

  /** The objective's exact minimizer when one side's task vector is zero (docs/methods.md#dop). */
  private keep(job: TensorJob, state: Float32Array, side: 'merged' | 'new'): StepUpdate {
    const weights: [number, number] = side === 'merged' ? [1, 0] : [0, 1];
    this.losses[job.name] = [0, 0];
    this.weights[job.name] = weights;
    this.ranks[job.name] = [0, 0];
    return {
      state,
      metrics: { loss_merged: 0, loss_new: 0, weight_merged: weights[0], weight_new: weights[1] },
    };
  }

  finish() {
    return {
      scalars: {},
      summary: this.ctx.t > 1 ? { losses: this.losses, weights: this.weights, split_rank: this.ranks } : {},
    };
  }
}

/**
 * DOP's loss of each side is relative to that side's task vector, so it is undefined when one is
 * zero (the reference divides by zero there). The minimizer is then exact: τ_new = 0 (a tensor the
 * new checkpoint left unchanged: a frozen layer, a module an adapter does not target) keeps
 * M_{t−1}; M_{t−1} − θ0 = 0 takes θ_t. Exact comparison: a frozen tensor is bit-identical to θ0.
 */
function oneSidedMinimizer(base: Float32Array, prev: Float32Array, ckpt: Float32Array): 'merged' | 'new' | null {
  if (equal(ckpt, base)) return 'merged';
  if (equal(prev, base)) return 'new';
  return null;
}

function equal(a: Float32Array, b: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export const dop: Method<DopParams> = {
  name: 'dop',
  params,
  begin: (ctx) => new DopStep(ctx),
  output: (_job, _base, state) => state,
};
