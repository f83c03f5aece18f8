import { z } from 'zod';
import { parseWith } from './params.js';
import type { Method, MethodStep, TensorJob } from './types.js';

/** Continual task arithmetic: M_t = M_{t−1} + s·τ_t, M_0 = θ0. State: M. */
export const taskArithmeticParams = z.object({ scaling_factor: z.number().finite().default(0.3) }).strict();
export type TaskArithmeticParams = z.infer<typeof taskArithmeticParams>;

export const taskArithmetic: Method<TaskArithmeticParams> = {
  name: 'task_arithmetic',
  defaults: { scaling_factor: 0.3 },
  parseParams: (raw) => parseWith('task_arithmetic', taskArithmeticParams, raw),
  begin({ params }): MethodStep {
    const s = params.scaling_factor;
    return {
      analysisPasses: 0,
      async update(_job: TensorJob, base, prev, ckpt) {
        const from = prev ?? base;
        for (let i = 0; i < ckpt.length; i++) ckpt[i] = from[i] + s * (ckpt[i] - base[i]);
        return { state: ckpt };
      },
      finish: () => ({ scalars: {}, summary: {} }),
    };
  },
  output: (_job, _base, state) => state,
};
