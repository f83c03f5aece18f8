import { addColumnDots, firstCumulativeIndex, scaleColumns, subtractInPlace } from '../../util/vec.js';
import type { Cleaning, Linalg } from '../types.js';

/**
 * OPCM's split of prev's spectrum s (descending), rank-aware (docs/methods.md#opcm): `rank`, the
 * number of singular values above σ_max · max(m, n) · 2⁻²³ (the others count as zero: their
 * singular vectors are an arbitrary basis, not part of the old tasks' subspace); k, the leading
 * block kept in Q, the first i < rank with cumsum/sum > α over those values (0 when none); and
 * ‖prev‖² = Σ σ_i², Σ_{i<k} σ_i². Every engine's cleaning takes it from here. For a full-rank prev
 * this is the reference's split.
 */
export function opcmSplit(
  s: Float64Array,
  alpha: number,
  m: number,
  n: number,
): { k: number; rank: number; prevSq: number; leadSq: number } {
  const rank = effectiveRank(s, m, n);
  const k = firstCumulativeIndex(s.subarray(0, rank), (ratio) => ratio > alpha, 0);
  let prevSq = 0;
  let leadSq = 0;
  for (let i = 0; i < s.length; i++) {
    prevSq += s[i] * s[i];
    if (i < k) leadSq += s[i] * s[i];
  }
  return { k, rank, prevSq, leadSq };
}

/** Singular values above σ_max · max(m, n) · 2⁻²³ (float32's epsilon); 0 for a zero matrix. */
export function effectiveRank(s: Float64Array, m: number, n: number): number {
  const max = s.length ? s[0] : 0;
  if (!(max > 0)) return 0;
  const cut = max * Math.max(m, n) * 2 ** -23;
  let rank = 0;
  for (let i = 0; i < s.length; i++) if (s[i] > cut) rank++;
  return rank;
}

/** A zero prev removes nothing: cleaned = τ, its ‖τ‖² summed in float64. */
export function uncleaned(tau: Float32Array, prevSq: number): Cleaning {
  let cleanedSq = 0;
  for (let i = 0; i < tau.length; i++) cleanedSq += tau[i] * tau[i];
  return { cleaned: tau, split: 0, removedSq: 0, cleanedSq, prevSq, leadSq: 0 };
}

/** Rows per block of the τ-side products: blocks of ~4 Mi elements (16 MB of float32). */
function blockRows(m: number, width: number): number {
  return Math.max(1, Math.min(m, Math.floor((4 << 20) / Math.max(1, width))));
}

/** Columns [0, k) of a rows×width row-major matrix, as a contiguous rows×k matrix. */
function leadingColumns(a: Float32Array, rows: number, width: number, k: number): Float32Array {
  const out = new Float32Array(rows * k);
  for (let i = 0; i < rows; i++) out.set(a.subarray(i * width, i * width + k), i * k);
  return out;
}

/**
 * OPCM's cleaning on a CPU engine (docs/methods.md#opcm). cleaned = τ − U Q Vᵀ, where Q keeps the leading k×k block and the diagonal of P = UᵀτV:
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
export async function opcmClean(
  engine: Linalg,
  prev: Float32Array,
  loadTau: () => Float32Array,
  m: number,
  n: number,
  alpha: number,
): Promise<Cleaning> {
  const r = Math.min(m, n);
  const { u, s, v } = await engine.svd(prev, m, n);
  const { k, rank, prevSq, leadSq } = opcmSplit(s, alpha, m, n);
  const tau = loadTau();
  if (rank === 0) return uncleaned(tau, prevSq);
  const rows = blockRows(m, Math.max(n, r));
  const d = new Float64Array(r);
  let pkk: Float32Array | null = k > 0 ? new Float32Array(k * k) : null;
  for (let i0 = 0; i0 < m; i0 += rows) {
    const b = Math.min(rows, m - i0);
    const ub = u.subarray(i0 * r, (i0 + b) * r);
    const tv = await engine.matmul(tau.subarray(i0 * n, (i0 + b) * n), v, b, n, r); // T_b = τ_b V, b×r
    addColumnDots(ub, tv, b, r, k, d);
    if (pkk !== null) {
      const block = await engine.matmul(leadingColumns(ub, b, r, k), leadingColumns(tv, b, r, k), k, b, k, {
        transA: true,
      });
      for (let i = 0; i < block.length; i++) pkk[i] += block[i];
    }
  }
  d.fill(0, rank); // only the diagonal terms i < rank are removed
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
  return { cleaned: tau, split: k, removedSq, cleanedSq, prevSq, leadSq };
}
