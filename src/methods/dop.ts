import { z } from 'zod';
import { parseWith } from './params.js';
import type { Method, MethodStep, StepContext, TensorJob } from './types.js';

/** DOP: dual orthogonal projections (design.md §2). State: M. t = 1: M = θ1. t ≥ 2: linear
 * tensors optimised between M_{t−1} and θ_t; other tensors averaged. */
export const dopParams = z
  .object({
    lr: z.number().positive().default(1e-4),
    num_steps: z.number().int().min(0).default(200),
    mgda: z.boolean().default(true),
    ema: z.boolean().default(true),
    ema_beta: z.number().min(0).max(1).default(0.999),
    alpha: z.number().min(0).max(1).default(0.8),
    svd_epsilon: z.number().gt(0).max(1).default(0.99999),
    svd_proj_space: z.enum(['uv', 'u', 'v']).default('uv'),
  })
  .strict();
export type DopParams = z.infer<typeof dopParams>;

class DopStep implements MethodStep {
  readonly analysisPasses = 0;
  private readonly losses: Record<string, [number, number]> = {};
  private readonly weights: Record<string, [number, number]> = {};
  private readonly ranks: Record<string, [number, number]> = {};

  constructor(private readonly ctx: StepContext<DopParams>) {}

  async update(job: TensorJob, base: Float32Array, prev: Float32Array | null, ckpt: Float32Array) {
    if (prev === null) return { state: ckpt };
    if (job.kind !== 'linear') {
      for (let i = 0; i < ckpt.length; i++) ckpt[i] = (prev[i] + ckpt[i]) / 2;
      return { state: ckpt };
    }
    const [m, n] = job.shape;
    const r = await this.ctx.engine.dopOptimize(base, prev, ckpt, m, n, this.ctx.params);
    this.losses[job.name] = [r.lossA, r.lossB];
    this.weights[job.name] = r.weights;
    this.ranks[job.name] = [r.rankA, r.rankB];
    return {
      state: r.w,
      metrics: { loss_merged: r.lossA, loss_new: r.lossB, weight_merged: r.weights[0], weight_new: r.weights[1] },
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
  defaults: {
    lr: 1e-4,
    num_steps: 200,
    mgda: true,
    ema: true,
    ema_beta: 0.999,
    alpha: 0.8,
    svd_epsilon: 0.99999,
    svd_proj_space: 'uv',
  },
  parseParams: (raw) => parseWith('dop', dopParams, raw),
  begin: (ctx) => new DopStep(ctx),
  output: (_job, _base, state) => state,
};
