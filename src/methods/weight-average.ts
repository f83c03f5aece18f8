import { z } from 'zod';
import { elementwiseStep } from './elementwise.js';
import type { Method } from './types.js';

/** Continual weight average (docs/methods.md): M_t = ((t−1)·M_{t−1} + θ_t) / t. State: M. */
const params = z.strictObject({});
export type WeightAverageParams = z.output<typeof params>;

export const weightAverage: Method<WeightAverageParams> = {
  name: 'weight_average',
  params,
  begin({ t }) {
    return elementwiseStep((_base, prev, ckpt) => {
      if (prev === null) return ckpt;
      for (let i = 0; i < ckpt.length; i++) ckpt[i] = (prev[i] * (t - 1) + ckpt[i]) / t;
      return ckpt;
    });
  },
  output: (_job, _base, state) => state,
};
