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

  finish() {
    return {
      scalars: {},
      summary: this.ctx.t > 1 ? { losses: this.losses, weights: this.weights, split_rank: this.ranks } : {},
    };
  }
}

export const dop: Method<DopParams> = {
  name: 'dop',
  params,
  begin: (ctx) => new DopStep(ctx),
  output: (_job, _base, state) => state,
};
