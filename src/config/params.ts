import { z } from 'zod';
import { ConfigError } from './errors.js';
import { toConfigIssues } from './issues.js';
import { dopParams } from '../methods/dop.js';
import { magmaxParams } from '../methods/magmax.js';
import { opcmParams } from '../methods/opcm.js';
import { taskArithmeticParams } from '../methods/task-arithmetic.js';
import { tiesParams } from '../methods/ties.js';
import { weightAverageParams } from '../methods/weight-average.js';

/**
 * Per-method parameters, validated by key and type with the methods' own schemas (one source of
 * truth for the CLI and the config); unknown keys are rejected (a typo such as `alpah` must not
 * silently fall back to a default). Defaults are the reference's (shared/reference/methods.py).
 */
export const paramSchemas = {
  opcm: opcmParams,
  dop: dopParams,
  task_arithmetic: taskArithmeticParams,
  ties: tiesParams,
  magmax: magmaxParams,
  weight_average: weightAverageParams,
} as const;

export type MethodName = keyof typeof paramSchemas;
export const METHOD_NAMES = Object.keys(paramSchemas) as MethodName[];

export type OpcmParams = z.output<typeof paramSchemas.opcm>;
export type DopParams = z.output<typeof paramSchemas.dop>;
export type TaskArithmeticParams = z.output<typeof paramSchemas.task_arithmetic>;
export type TiesParams = z.output<typeof paramSchemas.ties>;
export type MagmaxParams = z.output<typeof paramSchemas.magmax>;
export type WeightAverageParams = z.output<typeof paramSchemas.weight_average>;

/** Method name → its parameter type, for code that switches on `pipeline.method`. */
export interface MethodParams {
  opcm: OpcmParams;
  dop: DopParams;
  task_arithmetic: TaskArithmeticParams;
  ties: TiesParams;
  magmax: MagmaxParams;
  weight_average: WeightAverageParams;
}

/**
 * Validate and default-fill params outside a config file (e.g. `cmerge merge --params ...`);
 * `source` labels the ConfigError the way a file name would.
 */
export function parseParams<M extends MethodName>(method: M, params: unknown, source = 'params'): MethodParams[M] {
  const r = paramSchemas[method].safeParse(params ?? {});
  if (!r.success) throw new ConfigError(source, toConfigIssues(r.error, params));
  return r.data as MethodParams[M];
}
