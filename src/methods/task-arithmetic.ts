import { z } from 'zod';
import { elementwiseStep } from './elementwise.js';
import type { Method } from './types.js';

/** Continual task arithmetic (docs/methods.md): M_t = M_{t−1} + s·τ_t, M_0 = θ0. State: M. */
const params = z.strictObject({ scaling_factor: z.number().finite().default(0.3) });
export type TaskArithmeticParams = z.output<typeof params>;

export const taskArithmetic: Method<TaskArithmeticParams> = {
  name: 'task_arithmetic',
  params,
  begin({ params }) {
    const s = params.scaling_factor;
    return elementwiseStep((base, prev, ckpt) => {
      const from = prev ?? base;
      for (let i = 0; i < ckpt.length; i++) ckpt[i] = from[i] + s * (ckpt[i] - base[i]);
      return ckpt;
    });
  },
  output: (_job, _base, state) => state,
};
