import { z } from 'zod';
import type { Engine } from '../engine/types.js';
import { parseWith } from './params.js';
import type { Method, MethodStep, Scalars, StepContext, TaskSource, TensorJob, TensorMetrics } from './types.js';
import { addColumnDots, axpy, firstCumulativeIndex, scaleColumns, sub, subtractInPlace, sumSquares } from './vec.js';

/**
 * OPCM: orthogonal projection + adaptive scaling (design.md §2).
 * State: S, the unscaled sum of cleaned task vectors; scalars: lambda, norms (‖τ_i‖ per step).
 * M_t = θ0 + S_t / λ_t with λ_t = ‖S_t‖ / mean(norms).
 */
export const opcmParams = z.object({ alpha: z.number().gt(0).lt(1).default(0.5) }).strict();
export type OpcmParams = z.infer<typeof opcmParams>;

/** Rows per block of the τ-side products: blocks of ~4 Mi elements (16 MB of float32). */
function blockRows(m: number, width: number): number {
  return Math.max(1, Math.min(m, Math.floor((4 << 20) / Math.max(1, width))));
}

export interface Cleaning {
  /** τ − U Q Vᵀ, written over τ */
  cleaned: Float32Array;
  /** k: the leading block of P kept in Q */
  split: number;
  /** ‖U Q Vᵀ‖² and ‖cleaned‖² */
  removedSq: number;
  cleanedSq: number;
  /** ‖prev‖² = Σ σ_i², and Σ_{i<k} σ_i² */
  prevSq: number;
  leadSq: number;
}

/** Columns [0, k) of a rows×width row-major matrix, as a contiguous rows×k matrix. */
function leadingColumns(a: Float32Array, rows: number, width: number, k: number): Float32Array {
  const out = new Float32Array(rows * k);
  for (let i = 0; i < rows; i++) out.set(a.subarray(i * width, i * width + k), i * k);
  return out;
}

/**
 * cleaned = τ − U Q Vᵀ, where Q keeps the leading k×k block and the diagonal of P = UᵀτV:
 * the reference's full-matrices form U P Vᵀ with those entries zeroed, using only the r leading
 * singular vectors. Returns cleaned (written over τ) and the split rank k.
 *
 * Only the entries of P that Q keeps are formed: with T = τV, the diagonal d_i = Σ_rows U_ri T_ri
 * (accumulated in float64) and the block P_kk = U_kᵀ T_k. Then W = U Q is U with its first k
 * columns replaced by U_k P_kk and the others scaled by d_i (in place), and U Q Vᵀ = W Vᵀ: two
 * m×n×r products instead of four.
 *
 * Memory (a 32000×2048 lm_head is 262 MB per float32 copy): τ is loaded only after the SVD of
 * prev (it may reuse prev's buffer), so prev, the SVD's work space and τ are never resident
 * together; the products run over row blocks of τ, so no m×r or m×n temporary exists besides U
 * (which becomes W) itself.
 */
export async function opcmCleanLazy(engine: Engine, prev: Float32Array, loadTau: () => Float32Array, m: number, n: number, alpha: number): Promise<Cleaning> {
  const r = Math.min(m, n);
  let { u, s, v } = await engine.svd(prev, m, n);
  // argmax of (cumsum/sum > α) is 0 when nothing exceeds α (all-zero spectrum): same here
  const k = firstCumulativeIndex(s, (ratio) => ratio > alpha, 0);
  const tau = loadTau();
  const rows = blockRows(m, Math.max(n, r));
  const d = new Float64Array(r);
  let pkk: Float32Array | null = k > 0 ? new Float32Array(k * k) : null;
  for (let i0 = 0; i0 < m; i0 += rows) {
    const b = Math.min(rows, m - i0);
    const ub = u.subarray(i0 * r, (i0 + b) * r);
    const tv = await engine.matmul(tau.subarray(i0 * n, (i0 + b) * n), v, b, n, r); // T_b = τ_b V, b×r
    addColumnDots(ub, tv, b, r, k, d);
    if (pkk !== null) {
      const block = await engine.matmul(leadingColumns(ub, b, r, k), leadingColumns(tv, b, r, k), k, b, k, { transA: true });
      for (let i = 0; i < block.length; i++) pkk[i] += block[i];
    }
  }
  // W = U Q in place: leading k columns U_k P_kk (P_kk already holds its diagonal), others d_i u_i
  for (let i0 = 0; i0 < m; i0 += rows) {
    const b = Math.min(rows, m - i0);
    const ub = u.subarray(i0 * r, (i0 + b) * r);
    const lead = pkk === null ? null : await engine.matmul(leadingColumns(ub, b, r, k), pkk, b, k, k);
    if (lead !== null) for (let i = 0; i < b; i++) ub.set(lead.subarray(i * k, (i + 1) * k), i * r);
    scaleColumns(ub, b, r, k, d);
  }
  pkk = null;
  let removedSq = 0;
  let cleanedSq = 0;
  for (let i0 = 0; i0 < m; i0 += rows) {
    const b = Math.min(rows, m - i0);
    const removed = await engine.matmul(u.subarray(i0 * r, (i0 + b) * r), v, b, r, n, { transB: true }); // W_b Vᵀ, b×n
    const sq = subtractInPlace(tau.subarray(i0 * n, (i0 + b) * n), removed);
    removedSq += sq.subtrahendSq;
    cleanedSq += sq.resultSq;
  }
  u = v = new Float32Array(0);
  let prevSq = 0;
  let leadSq = 0;
  for (let i = 0; i < r; i++) {
    prevSq += s[i] * s[i];
    if (i < k) leadSq += s[i] * s[i];
  }
  return { cleaned: tau, split: k, removedSq, cleanedSq, prevSq, leadSq };
}

/** opcmClean with τ already resident (same arithmetic as opcmCleanLazy). */
export function opcmClean(engine: Engine, prev: Float32Array, tau: Float32Array, m: number, n: number, alpha: number): Promise<Cleaning> {
  return opcmCleanLazy(engine, prev, () => tau, m, n, alpha);
}

class OpcmStep implements MethodStep {
  readonly analysisPasses = 0;
  private tauSq = 0;
  private stateSq = 0;
  private readonly splits: Record<string, number> = {};
  /** per linear tensor: the sums that give its interference once λ_t is known (see finish) */
  private readonly subspace = new Map<string, { leadSq: number; prevSq: number; crossDot: number; cleanedSq: number }>();

  constructor(private readonly ctx: StepContext<OpcmParams>) {}

  update(job: TensorJob, base: Float32Array, prev: Float32Array | null, ckpt: Float32Array): Promise<{ state: Float32Array; metrics: TensorMetrics }> {
    // not async: base is dropped as soon as τ is formed (this frame ends before any await)
    const tau = sub(ckpt, base, ckpt);
    return this.updateTask(job, { prev: () => prev, tau: () => ({ tau, sq: sumSquares(tau) }), addPrev: (out) => axpy(prev!, 1, out, out) });
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
      cleaning = await opcmCleanLazy(this.ctx.engine, prev, loadTau, m, n, this.ctx.params.alpha);
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
      summary: { lambda, avg_task_vector_norm: avg, task_vector_norm: norms[norms.length - 1], merged_task_vector_norm: Math.sqrt(this.stateSq) / lambda, split_rank: this.splits, ...(interference === null ? {} : { interference }) },
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
