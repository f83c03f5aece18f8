import { z } from 'zod';
import type { Engine } from '../engine/types.js';
import { parseWith } from './params.js';
import type { Method, MethodStep, Scalars, StepContext, TensorJob, TensorMetrics } from './types.js';
import { axpy, firstCumulativeIndex, sub, sumSquares } from './vec.js';

/**
 * OPCM: orthogonal projection + adaptive scaling (design.md §2).
 * State: S, the unscaled sum of cleaned task vectors; scalars: lambda, norms (‖τ_i‖ per step).
 * M_t = θ0 + S_t / λ_t with λ_t = ‖S_t‖ / mean(norms).
 */
export const opcmParams = z.object({ alpha: z.number().gt(0).lt(1).default(0.5) }).strict();
export type OpcmParams = z.infer<typeof opcmParams>;

/**
 * cleaned = τ − U Q Vᵀ, where Q keeps the leading k×k block and the diagonal of P = UᵀτV:
 * the reference's full-matrices form U P Vᵀ with those entries zeroed, using only the r leading
 * singular vectors. Returns cleaned (written over τ) and the split rank k.
 */
export async function opcmClean(engine: Engine, prev: Float32Array, tau: Float32Array, m: number, n: number, alpha: number): Promise<{ cleaned: Float32Array; split: number; removedSq: number }> {
  const r = Math.min(m, n);
  const { u, s, v } = await engine.svd(prev, m, n);
  // argmax of (cumsum/sum > α) is 0 when nothing exceeds α (all-zero spectrum): same here
  const k = firstCumulativeIndex(s, (ratio) => ratio > alpha, 0);
  const tv = await engine.matmul(tau, v, m, n, r); // τV, m×r
  const p = await engine.matmul(u, tv, r, m, r, { transA: true }); // UᵀτV, r×r
  const q = new Float32Array(r * r);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) q[i * r + j] = p[i * r + j];
  for (let i = k; i < r; i++) q[i * r + i] = p[i * r + i];
  const qvt = await engine.matmul(q, v, r, r, n, { transB: true }); // Q Vᵀ, r×n
  const removed = await engine.matmul(u, qvt, m, r, n); // U Q Vᵀ, m×n
  const removedSq = sumSquares(removed);
  return { cleaned: sub(tau, removed, tau), split: k, removedSq };
}

class OpcmStep implements MethodStep {
  readonly analysisPasses = 0;
  private tauSq = 0;
  private stateSq = 0;
  private readonly splits: Record<string, number> = {};

  constructor(private readonly ctx: StepContext<OpcmParams>) {}

  async update(job: TensorJob, base: Float32Array, prev: Float32Array | null, ckpt: Float32Array): Promise<{ state: Float32Array; metrics: TensorMetrics }> {
    const tau = sub(ckpt, base, ckpt);
    const tauSq = sumSquares(tau);
    this.tauSq += tauSq;
    if (prev === null) {
      this.stateSq += tauSq;
      return { state: tau, metrics: { task_norm: Math.sqrt(tauSq) } };
    }
    if (job.kind === 'linear') {
      const [m, n] = job.shape;
      const { cleaned, split, removedSq } = await opcmClean(this.ctx.engine, prev, tau, m, n, this.ctx.params.alpha);
      this.splits[job.name] = split;
      const state = axpy(prev, 1, cleaned, prev);
      const stateSq = sumSquares(state);
      this.stateSq += stateSq;
      return {
        state,
        metrics: { task_norm: Math.sqrt(tauSq), split_rank: split, removed_share: tauSq > 0 ? Math.sqrt(removedSq / tauSq) : 0, state_norm: Math.sqrt(stateSq) },
      };
    }
    const state = axpy(prev, 1, tau, prev);
    const stateSq = sumSquares(state);
    this.stateSq += stateSq;
    return { state, metrics: { task_norm: Math.sqrt(tauSq), state_norm: Math.sqrt(stateSq) } };
  }

  finish() {
    const prevNorms = (this.ctx.scalars.norms as number[] | undefined) ?? [];
    const norms = [...prevNorms, Math.sqrt(this.tauSq)];
    const avg = norms.reduce((a, b) => a + b, 0) / norms.length;
    // t = 1: M1 = θ1, i.e. λ = 1 (equal to ‖S‖/avg up to rounding; keep it exact)
    const lambda = this.ctx.t === 1 ? 1 : Math.sqrt(this.stateSq) / avg;
    const scalars: Scalars = { lambda, norms };
    return {
      scalars,
      summary: { lambda, avg_task_vector_norm: avg, task_vector_norm: norms[norms.length - 1], merged_task_vector_norm: Math.sqrt(this.stateSq) / lambda, split_rank: this.splits },
    };
  }
}

export const opcm: Method<OpcmParams> = {
  name: 'opcm',
  defaults: { alpha: 0.5 },
  parseParams: (raw) => parseWith('opcm', opcmParams, raw),
  begin: (ctx) => new OpcmStep(ctx),
  output(_job, base, state, scalars) {
    const inv = 1 / (scalars.lambda as number);
    return axpy(base, inv, state);
  },
};
