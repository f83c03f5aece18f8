import { z } from 'zod';
import { elementwise } from './elementwise.js';
import { MagnitudeSelector } from './radix-select.js';
import type { Method, MethodStep, StepContext, TensorJob } from './types.js';

/**
 * Continual TIES (docs/methods.md). State: M. t = 1: M = θ0 + s·τ1. t ≥ 2: a = M − θ0, b = τ_t,
 * each trimmed to its top entries by a global magnitude quantile over all merged tensors, signs
 * elected, disjoint merge; M_t = M_{t−1} + s·merged.
 * Passes: 0, 1 find both quantiles exactly (radix selection); 2 sums the elected signs (the sign
 * given to elements whose elected sign is 0); then the update pass.
 */
const params = z.strictObject({
  scaling_factor: z.number().finite().default(0.5),
  threshold: z.number().gt(0).max(100).default(20),
  merge_func: z.enum(['sum', 'mean', 'max']).default('sum'),
});
export type TiesParams = z.output<typeof params>;

function sign(x: number): number {
  return x > 0 ? 1 : x < 0 ? -1 : 0;
}

class TiesStep implements MethodStep {
  readonly analysisPasses: number;
  private selA!: MagnitudeSelector;
  private selB!: MagnitudeSelector;
  private thA = 0;
  private thB = 0;
  private signSum = 0;
  private fallbackSign = 0;

  constructor(private readonly ctx: StepContext<TiesParams>) {
    this.analysisPasses = ctx.t === 1 ? 0 : 3;
    if (ctx.t > 1) {
      const elements = ctx.tensors.reduce((acc, j) => acc + j.size, 0);
      const threshold = ctx.params.threshold;
      const keepShare = threshold > 1 ? threshold / 100 : threshold;
      // a keep share of 1 would ask for the 0th value: keep every entry instead
      const rank = Math.max(1, elements - Math.floor(elements * keepShare));
      this.selA = new MagnitudeSelector(rank);
      this.selB = new MagnitudeSelector(rank);
    }
  }

  analyze(pass: number, _job: TensorJob, base: Float32Array, prev: Float32Array | null, ckpt: Float32Array): void {
    const a = diff(prev!, base);
    const b = diff(ckpt, base);
    if (pass === 0) {
      this.selA.addHigh(a);
      this.selB.addHigh(b);
    } else if (pass === 1) {
      this.selA.addLow(a);
      this.selB.addLow(b);
    } else {
      const { thA, thB } = this;
      let s = 0;
      for (let i = 0; i < a.length; i++)
        s += sign((Math.abs(a[i]) >= thA ? a[i] : 0) + (Math.abs(b[i]) >= thB ? b[i] : 0));
      this.signSum += s;
    }
  }

  endAnalysis(pass: number): void {
    if (pass === 0) {
      this.selA.endHigh();
      this.selB.endHigh();
    } else if (pass === 1) {
      this.thA = this.selA.endLow();
      this.thB = this.selB.endLow();
    } else {
      this.fallbackSign = sign(this.signSum);
    }
  }

  readonly updateTask = elementwise((base, prev, ckpt) => this.merge(base, prev, ckpt));

  /** the new state M_t, into the checkpoint's buffer */
  private merge(base: Float32Array, prev: Float32Array | null, ckpt: Float32Array): Float32Array {
    const s = this.ctx.params.scaling_factor;
    if (prev === null) {
      for (let i = 0; i < ckpt.length; i++) ckpt[i] = base[i] + s * Math.fround(ckpt[i] - base[i]);
      return ckpt;
    }
    const { thA, thB, fallbackSign } = this;
    const func = this.ctx.params.merge_func;
    for (let i = 0; i < ckpt.length; i++) {
      const av = Math.fround(prev[i] - base[i]);
      const bv = Math.fround(ckpt[i] - base[i]);
      const ta = Math.abs(av) >= thA ? av : 0;
      const tb = Math.abs(bv) >= thB ? bv : 0;
      let sg = sign(Math.fround(ta + tb));
      if (sg === 0) sg = fallbackSign;
      // sign 0 even after the fallback keeps negative entries, as the reference's where() does
      const ka = sg > 0 ? ta > 0 : ta < 0;
      const kb = sg > 0 ? tb > 0 : tb < 0;
      const sa = ka ? ta : 0;
      const sb = kb ? tb : 0;
      let merged: number;
      if (func === 'sum') merged = sa + sb;
      else if (func === 'mean') merged = (sa + sb) / Math.max((sa !== 0 ? 1 : 0) + (sb !== 0 ? 1 : 0), 1);
      else merged = Math.max(Math.abs(sa), Math.abs(sb)) * sg;
      ckpt[i] = prev[i] + s * Math.fround(merged);
    }
    return ckpt;
  }

  finish() {
    return { scalars: {}, summary: this.ctx.t > 1 ? { threshold_merged: this.thA, threshold_new: this.thB } : {} };
  }
}

function diff(x: Float32Array, base: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] - base[i];
  return out;
}

export const ties: Method<TiesParams> = {
  name: 'ties',
  params,
  begin: (ctx) => new TiesStep(ctx),
  output: (_job, _base, state) => state,
};
