import { z } from 'zod';
import { ConfigError } from './errors.js';
import { toConfigIssues } from './issues.js';

/**
 * Per-method parameters, validated by key and type; unknown keys are rejected (a typo such as
 * `alpah` must not silently fall back to a default). Defaults are those of the executable
 * reference (shared/reference/methods.py), so a manifest always records the effective values.
 */
const unit = z.number().min(0).max(1);

export const paramSchemas = {
  opcm: z.strictObject({
    alpha: unit.default(0.5),
  }),
  dop: z.strictObject({
    lr: z.number().positive().default(1e-4),
    num_steps: z.number().int().min(0).default(200),
    mgda: z.boolean().default(true),
    ema: z.boolean().default(true),
    ema_beta: unit.default(0.999),
    alpha: unit.default(0.8),
    svd_epsilon: z.number().gt(0).max(1).default(0.99999),
    svd_proj_space: z.enum(['uv', 'u', 'v']).default('uv'),
  }),
  task_arithmetic: z.strictObject({
    scaling_factor: z.number().default(0.3),
  }),
  ties: z.strictObject({
    scaling_factor: z.number().default(0.5),
    /** percent of entries kept (top magnitudes), 0 < threshold ≤ 100 */
    threshold: z.number().gt(0).max(100).default(20),
    merge_func: z.enum(['sum', 'mean', 'max']).default('sum'),
  }),
  magmax: z.strictObject({
    scaling_factor: z.number().default(0.5),
  }),
  weight_average: z.strictObject({}),
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
