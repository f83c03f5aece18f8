import type { z } from 'zod';
import { dop } from './dop.js';
import { magmax } from './magmax.js';
import { opcm } from './opcm.js';
import { taskArithmetic } from './task-arithmetic.js';
import { ties } from './ties.js';
import type { Method } from './types.js';
import { weightAverage } from './weight-average.js';

/**
 * Every merge method, by the name pipelines and `cmerge merge --method` use (the key must equal
 * the method's `name`). The one list of methods: the config schema, the command line and the
 * runner read names, parameter schemas and defaults from here. See docs/adding-a-method.md.
 */
export const methods = {
  opcm,
  dop,
  task_arithmetic: taskArithmetic,
  ties,
  magmax,
  weight_average: weightAverage,
} as const satisfies Record<string, Method<object>>;

export type MethodName = keyof typeof methods;

/** Method name → its parsed parameters (defaults filled), derived from the method's schema. */
export type MethodParams = { [M in MethodName]: z.output<(typeof methods)[M]['params']> };

export const METHOD_NAMES = Object.keys(methods) as MethodName[];

export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(methods, name);
}

export function getMethod(name: string): Method {
  if (!isMethodName(name)) throw new Error(`unknown method "${name}" (one of: ${METHOD_NAMES.join(', ')})`);
  return methods[name];
}
