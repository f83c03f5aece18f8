import { z } from 'zod';
import type { Cleaning } from '../engine/types.js';
import { parseWith } from './params.js';
import type { Method, MethodStep, Scalars, StepContext, TaskSource, TensorJob, TensorMetrics } from './types.js';
import { axpy, sub, sumSquares } from '../util/vec.js';

/**
 * OPCM: orthogonal projection + adaptive scaling (design.md §2).
 * State: S, the unscaled sum of cleaned task vectors; scalars: lambda, norms (‖τ_i‖ per step).
 * M_t = θ0 + S_t / λ_t with λ_t = ‖S_t‖ / mean(norms).
 */
export const opcmParams = z.object({ alpha: z.number().gt(0).lt(1).default(0.5) }).strict();
export type OpcmParams = z.infer<typeof opcmParams>;

class OpcmStep implements MethodStep {
  readonly analysisPasses = 0;
  private tauSq = 0;
  private stateSq = 0;
  private readonly splits: Record<string, number> = {};
  /** per linear tensor: the sums that give its interference once λ_t is known (see finish) */
  private readonly subspace = new Map<
    string,
    { leadSq: number; prevSq: number; crossDot: number; cleanedSq: number }
  >();

  constructor(private readonly ctx: StepContext<OpcmParams>) {}

  update(
    job: TensorJob,
    base: Float32Array,
    prev: Float32Array | null,
    ckpt: Float32Array,
  ): Promise<{ state: Float32Array; metrics: TensorMetrics }> {
    // not async: base is dropped as soon as τ is formed (this frame ends before any await)
    const tau = sub(ckpt, base, ckpt);
    return this.updateTask(job, {
      prev: () => prev,
      tau: () => ({ tau, sq: sumSquares(tau) }),
      addPrev: (out) => axpy(prev!, 1, out, out),
    });
  }

  /**
   * Memory: prev and τ share the runner's buffer (τ overwrites prev after the SVD) and the new
   * state S = prev + cleaned is formed by streaming prev back in (addPrev): one tensor-sized buffer
   * plus U for the largest tensor, not four. Same arithmetic as update.
   */
  async updateTask(job: TensorJob, src: TaskSource): Promise<{ state: Float32Array; metrics: TensorMetrics }> {
    const prev = src.prev();
    if (prev === null) {
      const { tau, sq: tauSq } = src.tau();
      this.tauSq += tauSq;
      this.stateSq += tauSq;
      return { state: tau, metrics: { task_norm: Math.sqrt(tauSq) } };
    }
    let tauSq = 0;
    const loadTau = () => {
      const { tau, sq } = src.tau();
      tauSq = sq;
      return tau;
    };
    let cleaned: Float32Array;
    const metrics: TensorMetrics = {};
    let cleaning: Cleaning | null = null;
    if (job.kind === 'linear') {
      const [m, n] = job.shape;
      cleaning = await this.ctx.engine.opcmClean(prev, loadTau, m, n, this.ctx.params.alpha);
      cleaned = cleaning.cleaned;
      this.splits[job.name] = cleaning.split;
      metrics.split_rank = cleaning.split;
      metrics.removed_share = tauSq > 0 ? Math.sqrt(cleaning.removedSq / tauSq) : 0;
    } else {
      cleaned = loadTau();
    }
    this.tauSq += tauSq;
    const state = src.addPrev(cleaned); // S = prev + cleaned (prev + 1·cleaned, as axpy)
    const stateSq = sumSquares(state);
    this.stateSq += stateSq;
    if (cleaning) {
      const { leadSq, prevSq, cleanedSq } = cleaning;
      this.subspace.set(job.name, { leadSq, prevSq, crossDot: (stateSq - prevSq - cleanedSq) / 2, cleanedSq });
    }
    return { state, metrics: { task_norm: Math.sqrt(tauSq), ...metrics, state_norm: Math.sqrt(stateSq) } };
  }

  finish() {
    const prevNorms = (this.ctx.scalars.norms as number[] | undefined) ?? [];
    const norms = [...prevNorms, Math.sqrt(this.tauSq)];
    const avg = norms.reduce((a, b) => a + b, 0) / norms.length;
    // t = 1: M1 = θ1, i.e. λ = 1 (equal to ‖S‖/avg up to rounding; keep it exact)
    const lambda = this.ctx.t === 1 ? 1 : Math.sqrt(this.stateSq) / avg;
    const scalars: Scalars = { lambda, norms };
    const { tensors, interference } = this.interference(lambda);
    return {
      scalars,
      summary: {
        lambda,
        avg_task_vector_norm: avg,
        task_vector_norm: norms[norms.length - 1],
        merged_task_vector_norm: Math.sqrt(this.stateSq) / lambda,
        split_rank: this.splits,
        ...(interference === null ? {} : { interference }),
      },
      tensors,
    };
  }

  /**
   * Interference (design.md §6): ‖U_kᵀ Δ V_k‖ / ‖Δ‖ with Δ = M_t − M_{t−1} = S_t/λ_t − S_{t−1}/λ_{t−1}
   * and U_k, V_k the leading pairs of S_{t−1} (those of the previous merged task vector). The
   * cleaning removes U_kᵀ τ V_k whole, so U_kᵀ S_t V_k = diag(σ_1..σ_k) and U_kᵀ Δ V_k =
   * (1/λ_t − 1/λ_{t−1}) diag(σ_1..σ_k): what enters the old subspace is only the rescaling's.
   * ‖Δ‖² = a²‖S_{t−1}‖² + 2ab⟨S_{t−1}, cleaned⟩ + b²‖cleaned‖² with a = 1/λ_t − 1/λ_{t−1}, b = 1/λ_t.
   * Per linear tensor, and over all of them (`interference` in the summary).
   */
  private interference(lambda: number): { tensors: Record<string, TensorMetrics>; interference: number | null } {
    const tensors: Record<string, TensorMetrics> = {};
    if (this.subspace.size === 0) return { tensors, interference: null };
    const prevLambda = typeof this.ctx.scalars.lambda === 'number' ? this.ctx.scalars.lambda : 1;
    const a = 1 / lambda - 1 / prevLambda;
    const b = 1 / lambda;
    let lead = 0;
    let delta = 0;
    for (const [name, x] of this.subspace) {
      const l = a * a * x.leadSq;
      const d = Math.max(0, a * a * x.prevSq + 2 * a * b * x.crossDot + b * b * x.cleanedSq);
      tensors[name] = { interference: d > 0 ? Math.min(1, Math.sqrt(l / d)) : 0 };
      lead += l;
      delta += d;
    }
    return { tensors, interference: delta > 0 ? Math.min(1, Math.sqrt(lead / delta)) : 0 };
  }
}

export const opcm: Method<OpcmParams> = {
  name: 'opcm',
  defaults: { alpha: 0.5 },
  parseParams: (raw) => parseWith('opcm', opcmParams, raw),
  begin: (ctx) => new OpcmStep(ctx),
  output(_job, base, state, scalars) {
    const inv = 1 / (scalars.lambda as number);
    // in place: no tensor-sized result buffer (same arithmetic)
    return axpy(base, inv, state, state);
  },
};
