import { dop } from './dop.js';
import { magmax } from './magmax.js';
import { opcm } from './opcm.js';
import { taskArithmetic } from './task-arithmetic.js';
import { ties } from './ties.js';
import type { Method } from './types.js';
import { weightAverage } from './weight-average.js';

export const methods: Readonly<Record<string, Method<any>>> = {
  opcm,
  dop,
  task_arithmetic: taskArithmetic,
  ties,
  magmax,
  weight_average: weightAverage,
};

export const methodNames = Object.keys(methods);

export function getMethod(name: string): Method<any> {
  const m = methods[name];
  if (!m) throw new Error(`unknown method "${name}" (one of: ${methodNames.join(', ')})`);
  return m;
}
