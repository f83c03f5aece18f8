import { dot, firstCumulativeIndex } from '../../util/vec.js';
import { EngineStoppedError } from '../errors.js';
import type { DopOptions, DopResult, Linalg, Svd } from '../types.js';

/** One side of the quadratic form: either a dense square matrix or its low-rank factors. */
export interface SideOp {
  /** dense A (rows×rows) with A = F diag(σ²) Fᵀ, used when cheaper than the factors */
  dense: Float32Array | null;
  /** F (rows×k) and σ² scaled copy G = F·diag(σ²) */
  f: Float32Array;
  g: Float32Array;
  k: number;
}

export interface Projection {
  w: Float32Array;
  left: SideOp | null;
  right: SideOp | null;
  rank: number;
}

/** k columns of a row-major rows×r matrix */
function leadingColumns(x: Float32Array, rows: number, r: number, k: number): Float32Array {
  if (k === r) return x;
  const out = new Float32Array(rows * k);
  for (let i = 0; i < rows; i++) out.set(x.subarray(i * r, i * r + k), i * k);
  return out;
}

function scaleColumns(x: Float32Array, rows: number, k: number, s: Float64Array): Float32Array {
  const out = new Float32Array(rows * k);
  for (let i = 0; i < rows; i++) for (let j = 0; j < k; j++) out[i * k + j] = x[i * k + j] * s[j] * s[j];
  return out;
}

async function side(
  engine: Linalg,
  vecs: Float32Array,
  rows: number,
  r: number,
  k: number,
  s: Float64Array,
  otherDim: number,
): Promise<SideOp | null> {
  if (k === 0) return null;
  const f = leadingColumns(vecs, rows, r, k);
  const g = scaleColumns(f, rows, k, s);
  // dense A·Δ costs rows²·other, the factored form 2·rows·k·other: take the cheaper
  const dense = rows <= 2 * k ? await engine.matmul(g, f, rows, k, rows, { transB: true }) : null;
  void otherDim;
  return { dense, f, g, k };
}

async function project(
  engine: Linalg,
  w: Float32Array,
  base: Float32Array,
  m: number,
  n: number,
  eps: number,
  space: DopOptions['svd_proj_space'],
): Promise<Projection> {
  const d = new Float32Array(w.length);
  for (let i = 0; i < d.length; i++) d[i] = w[i] - base[i];
  const svd: Svd = await engine.svd(d, m, n);
  const r = Math.min(m, n);
  // torch.searchsorted(ratio, ε) (left): the number of ratios below ε
  const total = svd.s.reduce((a, b) => a + b, 0);
  const k = total > 0 ? firstCumulativeIndex(svd.s, (ratio) => ratio >= Math.min(eps, 1), r) : 0;
  return {
    w,
    left: space === 'v' ? null : await side(engine, svd.u, m, r, k, svd.s, n),
    right: space === 'u' ? null : await side(engine, svd.v, n, r, k, svd.s, m),
    rank: k,
  };
}

/** gradient 2(AΔ + ΔB) and loss ⟨Δ, AΔ⟩ + ⟨Δ, ΔB⟩ */
async function gradLoss(
  engine: Linalg,
  p: Projection,
  wCur: Float32Array,
  m: number,
  n: number,
): Promise<{ g: Float32Array; loss: number }> {
  const delta = new Float32Array(wCur.length);
  for (let i = 0; i < delta.length; i++) delta[i] = wCur[i] - p.w[i];
  const g = new Float32Array(delta.length);
  let loss = 0;
  if (p.left) {
    const { dense, f, g: gs, k } = p.left;
    const ad = dense
      ? await engine.matmul(dense, delta, m, m, n)
      : await engine.matmul(gs, await engine.matmul(f, delta, k, m, n, { transA: true }), m, k, n);
    loss += dot(delta, ad);
    for (let i = 0; i < g.length; i++) g[i] = 2 * ad[i];
  }
  if (p.right) {
    const { dense, f, g: gs, k } = p.right;
    const db = dense
      ? await engine.matmul(delta, dense, m, n, n)
      : await engine.matmul(await engine.matmul(delta, f, m, n, k), gs, m, k, n, { transB: true });
    loss += dot(delta, db);
    for (let i = 0; i < g.length; i++) g[i] += 2 * db[i];
  }
  return { g, loss };
}

/** γ of the two-vector min-norm problem, on gradients normalised by their losses */
function minNormGamma(v11: number, v12: number, v22: number): number {
  if (v12 >= v11) return 0.999;
  if (v12 >= v22) return 0.001;
  return -1.0 * ((v12 - v22) / (v11 + v22 - 2 * v12));
}

/** The two projections of one tensor's DOP step: W_a's and W_b's quadratic forms (step 1-3 of docs/methods.md#dop). */
export async function dopProjections(
  engine: Linalg,
  base: Float32Array,
  wa: Float32Array,
  wb: Float32Array,
  m: number,
  n: number,
  opts: DopOptions,
): Promise<{ pa: Projection; pb: Projection }> {
  const pa = await project(engine, wa, base, m, n, opts.svd_epsilon, opts.svd_proj_space);
  const pb = await project(engine, wb, base, m, n, opts.svd_epsilon, opts.svd_proj_space);
  return { pa, pb };
}

/** The start point fl((W_a + W_b)/2). */
export function dopStart(wa: Float32Array, wb: Float32Array): Float32Array {
  const w = new Float32Array(wa.length);
  for (let i = 0; i < w.length; i++) w[i] = (wa[i] + wb[i]) / 2;
  return w;
}

/** Adam's per-step constants lr/(1 − β1^t) and sqrt(1 − β2^t), t = 1..num_steps, as the loop below computes them. */
export function adamConstants(opts: DopOptions): { stepSize: Float64Array; bc2sqrt: Float64Array } {
  const stepSize = new Float64Array(opts.num_steps);
  const bc2sqrt = new Float64Array(opts.num_steps);
  for (let step = 1; step <= opts.num_steps; step++) {
    stepSize[step - 1] = opts.lr / (1 - Math.pow(0.9, step));
    bc2sqrt[step - 1] = Math.sqrt(1 - Math.pow(0.999, step));
  }
  return { stepSize, bc2sqrt };
}

/**
 * The DOP optimisation for one linear tensor on a CPU engine (docs/methods.md#dop): Adam on W against two quadratic
 * losses loss_i(W) = ‖diag(σ_i) U_iᵀ Δ_i‖² + ‖Δ_i V_i diag(σ_i)‖², Δ_i = W − W_i, with MGDA
 * weighting and EMA. Gradients in closed form: ∇loss_i = 2 A_i Δ_i + 2 Δ_i B_i,
 * A_i = U_i diag(σ_i²) U_iᵀ, B_i = V_i diag(σ_i²) V_iᵀ.
 */
export async function dopOptimize(
  engine: Linalg,
  base: Float32Array,
  wa: Float32Array,
  wb: Float32Array,
  m: number,
  n: number,
  opts: DopOptions,
  stop: Int32Array | null = null,
): Promise<DopResult> {
  const { pa, pb } = await dopProjections(engine, base, wa, wb, m, n, opts);
  const w = dopStart(wa, wb);
  const mAvg = new Float32Array(w.length);
  const vAvg = new Float32Array(w.length);
  const beta1 = 0.9,
    beta2 = 0.999,
    adamEps = 1e-8;
  let ema: [number, number] = [opts.alpha, 1 - opts.alpha];
  let lossA = 0,
    lossB = 0;
  for (let step = 1; step <= opts.num_steps; step++) {
    if (stop && Atomics.load(stop, 0) !== 0) throw new EngineStoppedError();
    const a = await gradLoss(engine, pa, w, m, n);
    const b = await gradLoss(engine, pb, w, m, n);
    lossA = a.loss;
    lossB = b.loss;
    let sol: [number, number];
    if (opts.mgda) {
      // ĝ_i = g_i / loss_i; a zero loss (nothing to keep on that side) gives a zero direction
      const ia = a.loss > 0 ? 1 / a.loss : 0;
      const ib = b.loss > 0 ? 1 / b.loss : 0;
      const gamma = minNormGamma(dot(a.g, a.g) * ia * ia, dot(a.g, b.g) * ia * ib, dot(b.g, b.g) * ib * ib);
      sol = [gamma, 1 - gamma];
      if (opts.ema) {
        ema = [
          opts.ema_beta * ema[0] + (1 - opts.ema_beta) * sol[0],
          opts.ema_beta * ema[1] + (1 - opts.ema_beta) * sol[1],
        ];
        sol = ema;
      }
    } else {
      sol = [opts.alpha, 1 - opts.alpha];
    }
    // Adam exactly as torch.optim.Adam (no weight decay, no amsgrad)
    const bc1 = 1 - Math.pow(beta1, step);
    const bc2sqrt = Math.sqrt(1 - Math.pow(beta2, step));
    const stepSize = opts.lr / bc1;
    const ga = a.g,
      gb = b.g,
      wa0 = sol[0],
      wb0 = sol[1];
    for (let i = 0; i < w.length; i++) {
      const g = wa0 * ga[i] + wb0 * gb[i];
      const mi = (mAvg[i] = beta1 * mAvg[i] + (1 - beta1) * g);
      const vi = (vAvg[i] = beta2 * vAvg[i] + (1 - beta2) * g * g);
      w[i] -= (stepSize * mi) / (Math.sqrt(vi) / bc2sqrt + adamEps);
    }
    if (step === opts.num_steps) ema = opts.mgda ? sol : ema;
  }
  return { w, lossA, lossB, weights: opts.mgda ? ema : [opts.alpha, 1 - opts.alpha], rankA: pa.rank, rankB: pb.rank };
}
