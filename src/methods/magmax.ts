import { z } from 'zod';
import { parseWith } from './params.js';
import type { Method, MethodStep } from './types.js';
import { axpy } from '../util/vec.js';

/** MagMax: τmax keeps, per element, the task-vector entry of largest magnitude (ties go to the
 * newer); M_t = θ0 + s·τmax. State: τmax. */
export const magmaxParams = z.object({ scaling_factor: z.number().finite().default(0.5) }).strict();
export type MagmaxParams = z.infer<typeof magmaxParams>;

export const magmax: Method<MagmaxParams> = {
  name: 'magmax',
  defaults: { scaling_factor: 0.5 },
  parseParams: (raw) => parseWith('magmax', magmaxParams, raw),
  begin(): MethodStep {
    return {
      analysisPasses: 0,
      async update(_job, base, prev, ckpt) {
        for (let i = 0; i < ckpt.length; i++) {
          const tv = Math.fround(ckpt[i] - base[i]);
          ckpt[i] = prev === null || Math.abs(tv) >= Math.abs(prev[i]) ? tv : prev[i];
        }
        return { state: ckpt };
      },
      finish: () => ({ scalars: {}, summary: {} }),
    };
  },
  output: (_job, base, state, _scalars, params) => axpy(base, params.scaling_factor, state),
};
