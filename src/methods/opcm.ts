import { z } from 'zod';
import type { Cleaning } from '../engine/types.js';
import type { Method, MethodStep, Scalars, StepContext, TaskSource, TensorJob, TensorMetrics } from './types.js';
import { axpy, sumSquares } from '../util/vec.js';

/**
 * OPCM: orthogonal projection + adaptive scaling (docs/methods.md).
 * State: S, the unscaled sum of cleaned task vectors; scalars: lambda, norms (‖τ_i‖ per step).
 * M_t = θ0 + S_t / λ_t with λ_t = ‖S_t‖ / mean(norms).
 */
const params = z.strictObject({ alpha: z.number().gt(0).lt(1).default(0.5) });
export type OpcmParams = z.output<typeof params>;

/** One tensor's figures at this step. */
interface TensorSums {
  tauSq: number;
  /** ‖S_t‖² of the tensor */
  stateSq: number;
  /** linear tensors from t = 2: the split rank k */
  split?: number;
  /** linear tensors from t = 2: the sums that give its interference once λ_t is known (see finish) */
  subspace?: { leadSq: number; prevSq: number; crossDot: number; cleanedSq: number };
}

class OpcmStep implements MethodStep {
  readonly analysisPasses = 0;
  readonly engineWork = 'opcm-clean' as const;
  /**
   * Per tensor, in the order the runner started them: totals summed in this order do not depend
   * on which of the tensors in flight finished first (the same inputs give the same bits).
   */
  private readonly perTensor = new Map<string, TensorSums>();

  constructor(private readonly ctx: StepContext<OpcmParams>) {}

  /**
   * Memory: prev and τ share the runner's buffer (τ overwrites prev after the SVD) and the new
   * state S = prev + cleaned is formed by streaming prev back in (addPrev): one tensor-sized buffer
   * plus U for the largest tensor, not four.
   */
  async updateTask(job: TensorJob, src: TaskSource): Promise<{ state: Float32Array; metrics: TensorMetrics }> {
    const sums: TensorSums = { tauSq: 0, stateSq: 0 };
    this.perTensor.set(job.name, sums);
    const prev = src.prev();
    if (prev === null) {
      const { tau, sq } = src.tau();
      sums.tauSq = sq;
      sums.stateSq = sq;
      return { state: tau, metrics: { task_norm: Math.sqrt(sq) } };
    }
    const loadTau = () => {
      const { tau, sq } = src.tau();
      sums.tauSq = sq;
      return tau;
    };
    let cleaned: Float32Array;
    const metrics: TensorMetrics = {};
    let cleaning: Cleaning | null = null;
    if (job.kind === 'linear') {
      const [m, n] = job.shape;
      cleaning = await this.ctx.engine.opcmClean(prev, loadTau, m, n, this.ctx.params.alpha);
      cleaned = cleaning.cleaned;
      sums.split = cleaning.split;
      metrics.split_rank = cleaning.split;
      metrics.removed_share = sums.tauSq > 0 ? Math.sqrt(cleaning.removedSq / sums.tauSq) : 0;
    } else {
      cleaned = loadTau();
    }
    const state = src.addPrev(cleaned); // S = prev + cleaned (prev + 1·cleaned, as axpy)
    const stateSq = sumSquares(state);
    sums.stateSq = stateSq;
    if (cleaning) {
      const { leadSq, prevSq, cleanedSq } = cleaning;
      sums.subspace = { leadSq, prevSq, crossDot: (stateSq - prevSq - cleanedSq) / 2, cleanedSq };
    }
    return { state, metrics: { task_norm: Math.sqrt(sums.tauSq), ...metrics, state_norm: Math.sqrt(stateSq) } };
  }

  finish() {
    let tauSq = 0;
    let stateSq = 0;
    const splits: Record<string, number> = {};
    for (const [name, sums] of this.perTensor) {
      tauSq += sums.tauSq;
      stateSq += sums.stateSq;
      if (sums.split !== undefined) splits[name] = sums.split;
    }
    const prevNorms = (this.ctx.scalars.norms as number[] | undefined) ?? [];
    const norms = [...prevNorms, Math.sqrt(tauSq)];
    const avg = norms.reduce((a, b) => a + b, 0) / norms.length;
    // t = 1: M1 = θ1, i.e. λ = 1 (equal to ‖S‖/avg up to rounding; keep it exact)
    const lambda = this.ctx.t === 1 ? 1 : Math.sqrt(stateSq) / avg;
    const scalars: Scalars = { lambda, norms };
    const { tensors, interference } = this.interference(lambda);
    return {
      scalars,
      summary: {
        lambda,
        avg_task_vector_norm: avg,
        task_vector_norm: norms[norms.length - 1],
        merged_task_vector_norm: Math.sqrt(stateSq) / lambda,
        split_rank: splits,
        ...(interference === null ? {} : { interference }),
      },
      tensors,
    };
  }

  /**
   * Interference (docs/methods.md): ‖U_kᵀ Δ V_k‖ / ‖Δ‖ with Δ = M_t − M_{t−1} = S_t/λ_t − S_{t−1}/λ_{t−1}
   * and U_k, V_k the leading pairs of S_{t−1} (those of the previous merged task vector). The
   * cleaning removes U_kᵀ τ V_k whole, so U_kᵀ S_t V_k = diag(σ_1..σ_k) and U_kᵀ Δ V_k =
   * (1/λ_t − 1/λ_{t−1}) diag(σ_1..σ_k): what enters the old subspace is only the rescaling's.
   * ‖Δ‖² = a²‖S_{t−1}‖² + 2ab⟨S_{t−1}, cleaned⟩ + b²‖cleaned‖² with a = 1/λ_t − 1/λ_{t−1}, b = 1/λ_t.
   * Per linear tensor, and over all of them (`interference` in the summary).
   */
  private interference(lambda: number): { tensors: Record<string, TensorMetrics>; interference: number | null } {
    const tensors: Record<string, TensorMetrics> = {};
    const subspaces = [...this.perTensor].flatMap(([name, sums]) =>
      sums.subspace ? [[name, sums.subspace] as const] : [],
    );
    if (subspaces.length === 0) return { tensors, interference: null };
    const prevLambda = typeof this.ctx.scalars.lambda === 'number' ? this.ctx.scalars.lambda : 1;
    const a = 1 / lambda - 1 / prevLambda;
    const b = 1 / lambda;
    let lead = 0;
    let delta = 0;
    for (const [name, x] of subspaces) {
      const leadSq = a * a * x.leadSq;
      const deltaSq = Math.max(0, a * a * x.prevSq + 2 * a * b * x.crossDot + b * b * x.cleanedSq);
      tensors[name] = { interference: deltaSq > 0 ? Math.min(1, Math.sqrt(leadSq / deltaSq)) : 0 };
      lead += leadSq;
      delta += deltaSq;
    }
    return { tensors, interference: delta > 0 ? Math.min(1, Math.sqrt(lead / delta)) : 0 };
  }
}

export const opcm: Method<OpcmParams> = {
  name: 'opcm',
  params,
  begin: (ctx) => new OpcmStep(ctx),
  output(_job, base, state, scalars) {
    const inv = 1 / (scalars.lambda as number);
    // in place: no tensor-sized result buffer (same arithmetic)
    return axpy(base, inv, state, state);
  },
};
