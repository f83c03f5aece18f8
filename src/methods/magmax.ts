import { z } from 'zod';
import { elementwiseStep } from './elementwise.js';
import type { Method } from './types.js';
import { axpy } from '../util/vec.js';

/** MagMax (docs/methods.md): τmax keeps, per element, the task-vector entry of largest magnitude
 * (ties go to the newer); M_t = θ0 + s·τmax. State: τmax. */
const params = z.strictObject({ scaling_factor: z.number().finite().default(0.5) });
export type MagmaxParams = z.output<typeof params>;

export const magmax: Method<MagmaxParams> = {
  name: 'magmax',
  params,
  begin() {
    return elementwiseStep((base, prev, ckpt) => {
      for (let i = 0; i < ckpt.length; i++) {
        const tv = Math.fround(ckpt[i] - base[i]);
        ckpt[i] = prev === null || Math.abs(tv) >= Math.abs(prev[i]) ? tv : prev[i];
      }
      return ckpt;
    });
  },
  output: (_job, base, state, _scalars, params) => axpy(base, params.scaling_factor, state),
};
