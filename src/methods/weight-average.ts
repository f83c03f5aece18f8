import { z } from 'zod';
import { parseWith } from './params.js';
import type { Method, MethodStep } from './types.js';

/** Continual weight average: M_t = ((t−1)·M_{t−1} + θ_t) / t. State: M. */
export const weightAverageParams = z.object({}).strict();
export type WeightAverageParams = z.infer<typeof weightAverageParams>;

export const weightAverage: Method<WeightAverageParams> = {
  name: 'weight_average',
  defaults: {},
  parseParams: (raw) => parseWith('weight_average', weightAverageParams, raw),
  begin({ t }): MethodStep {
    return {
      analysisPasses: 0,
      async update(_job, _base, prev, ckpt) {
        if (prev === null) return { state: ckpt };
        for (let i = 0; i < ckpt.length; i++) ckpt[i] = (prev[i] * (t - 1) + ckpt[i]) / t;
        return { state: ckpt };
      },
      finish: () => ({ scalars: {}, summary: {} }),
    };
  },
  output: (_job, _base, state) => state,
};
